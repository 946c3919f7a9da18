package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"sigs.k8s.io/yaml"
)

// funcMap is sprig's text functions without env and expandenv (a chart must not read the
// renderer's environment, as in Helm), plus Helm's own functions. include and tpl close
// over the template set, so they see every define of the chart.
func funcMap(root *template.Template) template.FuncMap {
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	includeDepth := map[string]int{}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		// Helm stops a template that includes itself without end.
		if includeDepth[name] > 1000 {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		includeDepth[name]++
		defer func() { includeDepth[name]-- }()
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", fmt.Errorf("cannot parse tpl text: %v", err)
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, data); err != nil {
			return "", err
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	funcs["toYaml"] = toYaml
	funcs["fromYaml"] = fromYaml
	funcs["fromYamlArray"] = fromYamlArray
	funcs["toJson"] = toJSON
	funcs["required"] = func(message string, value interface{}) (interface{}, error) {
		if value == nil {
			return nil, errors.New(message)
		}
		if s, ok := value.(string); ok && s == "" {
			return nil, errors.New(message)
		}
		return value, nil
	}
	funcs["fail"] = func(message string) (string, error) { return "", errors.New(message) }
	// No cluster to ask: lookup finds nothing, as in `helm template`.
	funcs["lookup"] = func(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	return funcs
}

// toYaml is Helm's: YAML of the value, without the final newline; "" when it cannot be encoded.
func toYaml(v interface{}) string {
	data, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

// fromYaml is Helm's: a map, or a map holding "Error" when the text is not a YAML mapping.
func fromYaml(text string) map[string]interface{} {
	out := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(text), &out); err != nil {
		out["Error"] = err.Error()
	}
	return out
}

func fromYamlArray(text string) []interface{} {
	var out []interface{}
	if err := yaml.Unmarshal([]byte(text), &out); err != nil {
		out = []interface{}{err.Error()}
	}
	return out
}

func toJSON(v interface{}) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(data)
}

// kubeVersion is .Capabilities.KubeVersion: Version, Major, Minor and GitVersion, as in Helm.
type kubeVersion struct {
	Version    string
	Major      string
	Minor      string
	GitVersion string
}

func (k kubeVersion) String() string { return k.Version }

// apiVersions is .Capabilities.APIVersions with Helm's Has ("v1", "apps/v1" or
// "apps/v1/Deployment").
type apiVersions []string

func (a apiVersions) Has(version string) bool {
	for _, v := range a {
		if v == version {
			return true
		}
	}
	return false
}

// builtinAPIVersions are the groups every supported cluster serves, as Helm's defaults list.
var builtinAPIVersions = []string{
	"v1", "apps/v1", "batch/v1", "policy/v1", "networking.k8s.io/v1",
	"rbac.authorization.k8s.io/v1", "coordination.k8s.io/v1", "discovery.k8s.io/v1",
	"apiextensions.k8s.io/v1", "autoscaling/v2", "storage.k8s.io/v1",
}

func capabilities(o options) map[string]interface{} {
	version := o.kubeVersion
	if !strings.HasPrefix(version, "v") {
		version = "v" + version
	}
	parts := strings.SplitN(strings.TrimPrefix(version, "v"), ".", 3)
	major, minor := parts[0], ""
	if len(parts) > 1 {
		minor = parts[1]
	}
	apis := append(apiVersions{}, builtinAPIVersions...)
	apis = append(apis, o.apiVersions...)
	return map[string]interface{}{
		"KubeVersion": kubeVersion{Version: version, Major: major, Minor: minor, GitVersion: version},
		"APIVersions": apis,
	}
}
