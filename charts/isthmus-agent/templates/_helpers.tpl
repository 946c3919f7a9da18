{{/*
Chart name, truncated to 63 characters (the DNS label limit of Kubernetes names).
*/}}
{{- define "isthmus-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, truncated to 63 characters. The release name is used alone when
it already contains the chart name.
*/}}
{{- define "isthmus-agent.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "isthmus-agent.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "isthmus-agent.labels" -}}
helm.sh/chart: {{ include "isthmus-agent.chart" . }}
{{ include "isthmus-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: isthmus
{{- end }}

{{/*
Selector labels (immutable once a Deployment exists).
*/}}
{{- define "isthmus-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "isthmus-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end }}

{{/*
Name of the ServiceAccount.
*/}}
{{- define "isthmus-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "isthmus-agent.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Container image: by digest when image.digest is set (the tag is then ignored), else by tag,
which defaults to the chart's appVersion.
*/}}
{{- define "isthmus-agent.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Secret holding the bootstrap token (bootstrap-token) and the hub CA (hub-ca.crt).
*/}}
{{- define "isthmus-agent.bootstrapSecretName" -}}
{{- if .Values.existingSecret }}
{{- .Values.existingSecret }}
{{- else }}
{{- printf "%s-bootstrap" (include "isthmus-agent.fullname" .) }}
{{- end }}
{{- end }}

{{/*
Secret the agent keeps its enrolled client certificate and key in (it creates it itself). The
name is fixed in the agent (IDENTITY_SECRET in packages/agent/src/identity.ts); the chart only
names it in the Role and NOTES.txt.
*/}}
{{- define "isthmus-agent.identitySecretName" -}}
isthmus-agent-identity
{{- end }}
