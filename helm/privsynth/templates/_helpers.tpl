{{/*
Chart name, truncated to the 63-char DNS label limit.
*/}}
{{- define "privsynth.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name. If the release name already contains the chart name
it is used as is.
*/}}
{{- define "privsynth.fullname" -}}
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
Chart name and version as used by the helm.sh/chart label.
*/}}
{{- define "privsynth.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "privsynth.labels" -}}
helm.sh/chart: {{ include "privsynth.chart" . }}
{{ include "privsynth.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: privsynth
{{- end }}

{{/*
Selector labels (immutable once deployed).
*/}}
{{- define "privsynth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "privsynth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
ServiceAccount name.
*/}}
{{- define "privsynth.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "privsynth.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
ConfigMap holding the PRIVSYNTH_* environment.
*/}}
{{- define "privsynth.configMapName" -}}
{{- printf "%s-config" (include "privsynth.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Name of the PVC backing the data dir (existing or chart-managed).
*/}}
{{- define "privsynth.pvcName" -}}
{{- if .Values.persistence.existingClaim }}
{{- .Values.persistence.existingClaim }}
{{- else }}
{{- printf "%s-data" (include "privsynth.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
Container image reference: digest wins over tag; tag defaults to appVersion.
*/}}
{{- define "privsynth.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}
{{- end }}

{{/*
True ("true") when an external database (not SQLite) is configured.
*/}}
{{- define "privsynth.externalDatabase" -}}
{{- if or .Values.database.existingSecret .Values.config.databaseUrl }}true{{ end }}
{{- end }}

{{/*
Fail early on settings that cannot work.
*/}}
{{- define "privsynth.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not (include "privsynth.externalDatabase" .)) }}
{{- fail "replicaCount > 1 needs PostgreSQL (config.databaseUrl or database.existingSecret): the default SQLite database on a ReadWriteOnce volume supports a single pod" }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) .Values.persistence.enabled (has "ReadWriteOnce" .Values.persistence.accessModes) }}
{{- fail "replicaCount > 1 needs a shared data volume: set persistence.accessModes to [ReadWriteMany]" }}
{{- end }}
{{- if .Values.localModels.enabled }}
{{- if not .Values.localModels.existingClaim }}
{{- fail "localModels.enabled needs localModels.existingClaim: the name of a PVC holding the Hugging Face model directories" }}
{{- end }}
{{- if has (clean .Values.localModels.mountPath) (list (clean .Values.config.dataDir) "/tmp") }}
{{- fail "localModels.mountPath must differ from config.dataDir and /tmp" }}
{{- end }}
{{- end }}
{{- if le (int .Values.terminationGracePeriodSeconds) (int .Values.config.shutdownGraceSeconds) }}
{{- fail "terminationGracePeriodSeconds must be greater than config.shutdownGraceSeconds" }}
{{- end }}
{{- end }}

{{/*
Render a number for an env var, keeping one decimal for integral floats
(10 -> "10.0", 2.5 -> "2.5") so float settings read as floats.
*/}}
{{- define "privsynth.float" -}}
{{- $v := float64 . }}
{{- if eq $v (floor $v) }}{{ printf "%.1f" $v }}{{ else }}{{ $v }}{{ end }}
{{- end }}
