// Command chart-render renders a Helm chart the way `helm template` does, without helm:
// Go's text/template with sprig and Helm's own functions (include, tpl, toYaml, fromYaml,
// fromYamlArray, toJson, required, fail, lookup), the .Values, .Release, .Chart,
// .Capabilities, .Template and .Files (Get) objects, missingkey=zero and "<no value>" removed. Helm's
// engine is this same stack; the chart tests (test/charts/) use it where no helm binary is
// available. Build: tools/chart-render/build.sh (Debian golang-go and
// golang-github-masterminds-sprig-dev, GOPATH mode, no network).
//
//	chart-render -chart charts/isthmus-hub [-f values.yaml]... [-name r] [-namespace ns]
//	             [-kube-version v1.30.0] [-api-versions a/v1]... [-notes]
//
// Prints every manifest document as `---\n# Source: <chart>/templates/<file>\n<text>`
// (empty ones left out) in file-name order, and with -notes the rendered NOTES.txt only. Errors go to
// stderr, prefixed with the template and line, and exit with code 1.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"sigs.k8s.io/yaml"
)

// documentSeparator splits a template's output into YAML documents.
var documentSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type options struct {
	chart       string
	values      listFlag
	name        string
	namespace   string
	kubeVersion string
	apiVersions listFlag
	notes       bool
}

func main() {
	var o options
	flag.StringVar(&o.chart, "chart", "", "chart folder (required)")
	flag.Var(&o.values, "f", "values file merged over the chart's values.yaml (repeatable)")
	flag.StringVar(&o.name, "name", "release-name", "release name")
	flag.StringVar(&o.namespace, "namespace", "default", "release namespace")
	flag.StringVar(&o.kubeVersion, "kube-version", "v1.30.0", "Kubernetes version of .Capabilities")
	flag.Var(&o.apiVersions, "api-versions", "extra API version of .Capabilities.APIVersions (repeatable)")
	flag.BoolVar(&o.notes, "notes", false, "print the rendered NOTES.txt instead of the manifests")
	flag.Parse()
	if o.chart == "" {
		fmt.Fprintln(os.Stderr, "chart-render: -chart is required")
		os.Exit(2)
	}
	out, err := render(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "chart-render: %v\n", err)
		os.Exit(1)
	}
	os.Stdout.WriteString(out)
}

func render(o options) (string, error) {
	chartMeta, err := readYamlMap(filepath.Join(o.chart, "Chart.yaml"))
	if err != nil {
		return "", err
	}
	chartName, _ := chartMeta["name"].(string)
	if chartName == "" {
		return "", fmt.Errorf("%s: name is missing", filepath.Join(o.chart, "Chart.yaml"))
	}
	values, err := readYamlMap(filepath.Join(o.chart, "values.yaml"))
	if err != nil {
		return "", err
	}
	for _, file := range o.values {
		override, err := readYamlMap(file)
		if err != nil {
			return "", err
		}
		values = mergeValues(values, override)
	}
	files, err := templateFiles(o.chart)
	if err != nil {
		return "", err
	}
	root := template.New("chart")
	root.Option("missingkey=zero")
	root.Funcs(funcMap(root))
	for _, file := range files {
		text, err := os.ReadFile(filepath.Join(o.chart, "templates", file))
		if err != nil {
			return "", err
		}
		if _, err := root.New(chartName + "/templates/" + file).Parse(string(text)); err != nil {
			return "", err
		}
	}
	top := map[string]interface{}{
		"Values":       values,
		"Chart":        helmChart(chartMeta),
		"Release":      release(o),
		"Capabilities": capabilities(o),
		"Files":        chartFiles{root: o.chart},
	}
	var out strings.Builder
	for _, file := range files {
		isNotes := file == "NOTES.txt"
		if strings.HasPrefix(file, "_") || isNotes != o.notes {
			continue
		}
		name := chartName + "/templates/" + file
		text, err := execute(root, name, withTemplate(top, name, chartName))
		if err != nil {
			return "", err
		}
		if o.notes {
			return text, nil
		}
		// As helm: each document of a template gets its own separator and Source line.
		for _, doc := range documentSeparator.Split(text, -1) {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", name, strings.TrimRight(doc, "\n"))
		}
	}
	return out.String(), nil
}

// execute runs one named template and drops "<no value>" as Helm does.
func execute(root *template.Template, name string, data interface{}) (string, error) {
	var buf bytes.Buffer
	if err := root.ExecuteTemplate(&buf, name, data); err != nil {
		return "", err
	}
	return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
}

// templateFiles lists templates/ (not its subfolders, which these charts do not use), sorted.
func templateFiles(chart string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(chart, "templates"))
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		if e.IsDir() {
			return nil, fmt.Errorf("%s: subfolders of templates/ are not supported", e.Name())
		}
		files = append(files, e.Name())
	}
	sort.Strings(files)
	return files, nil
}

func readYamlMap(file string) (map[string]interface{}, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	out := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	if out == nil {
		out = map[string]interface{}{}
	}
	return out, nil
}

// mergeValues is Helm's coalescing of user values over chart values: maps merge key by
// key, anything else replaces, and null removes the key.
func mergeValues(base, override map[string]interface{}) map[string]interface{} {
	out := map[string]interface{}{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range override {
		if v == nil {
			delete(out, k)
			continue
		}
		baseMap, baseIsMap := out[k].(map[string]interface{})
		overMap, overIsMap := v.(map[string]interface{})
		if baseIsMap && overIsMap {
			out[k] = mergeValues(baseMap, overMap)
		} else {
			out[k] = v
		}
	}
	return out
}

// helmChart gives Chart.yaml's fields the capitalised names templates use (.Chart.AppVersion).
func helmChart(meta map[string]interface{}) map[string]interface{} {
	out := map[string]interface{}{}
	for k, v := range meta {
		out[strings.ToUpper(k[:1])+k[1:]] = v
	}
	return out
}

func release(o options) map[string]interface{} {
	return map[string]interface{}{
		"Name": o.name, "Namespace": o.namespace, "Service": "Helm",
		"IsInstall": true, "IsUpgrade": false, "Revision": 1,
	}
}

// withTemplate adds .Template (Name, BasePath) for one template file.
func withTemplate(top map[string]interface{}, name, chartName string) map[string]interface{} {
	out := map[string]interface{}{}
	for k, v := range top {
		out[k] = v
	}
	out["Template"] = map[string]interface{}{"Name": name, "BasePath": chartName + "/templates"}
	return out
}

// chartFiles is .Files: Get reads a file of the chart by its path in the chart, as Helm's
// does (the dashboards a ConfigMap ships); a missing file is "", as in Helm.
type chartFiles struct{ root string }

func (f chartFiles) Get(name string) string {
	b, err := os.ReadFile(filepath.Join(f.root, filepath.FromSlash(name)))
	if err != nil {
		return ""
	}
	return string(b)
}
