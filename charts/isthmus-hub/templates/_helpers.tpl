{{/*
Chart name, truncated to 63 characters (the DNS label limit of Kubernetes names).
*/}}
{{- define "isthmus-hub.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, truncated to 63 characters. The release name is used alone when
it already contains the chart name.
*/}}
{{- define "isthmus-hub.fullname" -}}
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
{{- define "isthmus-hub.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "isthmus-hub.labels" -}}
helm.sh/chart: {{ include "isthmus-hub.chart" . }}
{{ include "isthmus-hub.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: isthmus
{{- end }}

{{/*
Selector labels (immutable once a Deployment exists).
*/}}
{{- define "isthmus-hub.selectorLabels" -}}
app.kubernetes.io/name: {{ include "isthmus-hub.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: hub
{{- end }}

{{/*
Name of the ServiceAccount.
*/}}
{{- define "isthmus-hub.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "isthmus-hub.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Container image: by digest when image.digest is set (the tag is then ignored), else by tag,
which defaults to the chart's appVersion.
*/}}
{{- define "isthmus-hub.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Secret holding the server certificate (tls.crt, tls.key), or "" when the hub issues its own.
*/}}
{{- define "isthmus-hub.tlsSecretName" -}}
{{- if .Values.tls.existingSecret }}
{{- .Values.tls.existingSecret }}
{{- else if .Values.tls.certPem }}
{{- printf "%s-tls" (include "isthmus-hub.fullname" .) }}
{{- end }}
{{- end }}

{{/*
Secret holding the admin token.
*/}}
{{- define "isthmus-hub.adminTokenSecretName" -}}
{{- if .Values.adminToken.existingSecret }}
{{- .Values.adminToken.existingSecret }}
{{- else }}
{{- printf "%s-admin-token" (include "isthmus-hub.fullname" .) }}
{{- end }}
{{- end }}

{{/*
PersistentVolumeClaim of the data directory.
*/}}
{{- define "isthmus-hub.claimName" -}}
{{- if .Values.persistence.existingClaim }}
{{- .Values.persistence.existingClaim }}
{{- else }}
{{- printf "%s-data" (include "isthmus-hub.fullname" .) }}
{{- end }}
{{- end }}

{{/*
Key of the admin token in its Secret.
*/}}
{{- define "isthmus-hub.adminTokenSecretKey" -}}
{{- if .Values.adminToken.existingSecret }}
{{- .Values.adminToken.existingSecretKey }}
{{- else }}
{{- print "token" }}
{{- end }}
{{- end }}
