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
Labels that select the server pods only (not the training, migration or test pods).
*/}}
{{- define "privsynth.serverSelectorLabels" -}}
{{ include "privsynth.selectorLabels" . }}
app.kubernetes.io/component: server
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
{{- if gt (int .Values.replicaCount) 1 }}
{{- if and (not .Values.objectStore.enabled) (not (and .Values.persistence.enabled (has "ReadWriteMany" .Values.persistence.accessModes))) }}
{{- fail "replicaCount > 1 needs shared artifacts: enable objectStore (a bucket; then persistence.enabled=false is fine) or use a ReadWriteMany volume (persistence.accessModes)" }}
{{- end }}
{{- if and .Values.persistence.enabled (not (has "ReadWriteMany" .Values.persistence.accessModes)) }}
{{- fail "replicaCount > 1 cannot share a ReadWriteOnce data volume: with objectStore set persistence.enabled=false (each pod gets an emptyDir for checkpoints), or use ReadWriteMany" }}
{{- end }}
{{- if and .Values.objectStore.enabled (not .Values.userIdKey.existingSecret) }}
{{- fail "replicaCount > 1 on an object store needs userIdKey.existingSecret: each pod would otherwise generate its own user-id key on its own disk" }}
{{- end }}
{{- end }}
{{- if .Values.objectStore.enabled }}
{{- if not .Values.objectStore.url }}
{{- fail "objectStore.enabled needs objectStore.url (s3://bucket/prefix)" }}
{{- end }}
{{- end }}
{{- if .Values.tls.enabled }}
{{- if not .Values.tls.existingSecret }}
{{- fail "tls.enabled needs tls.existingSecret: a kubernetes.io/tls Secret with the server certificate" }}
{{- end }}
{{- if has (int .Values.tls.healthPort) (list (int .Values.config.grpcPort) (int .Values.config.metricsPort)) }}
{{- fail "tls.healthPort must differ from config.grpcPort and config.metricsPort" }}
{{- end }}
{{- else if .Values.tls.clientCA.existingSecret }}
{{- fail "tls.clientCA (mutual TLS) needs tls.enabled and a server certificate" }}
{{- end }}
{{- if and .Values.tests.enabled .Values.tls.clientCA.existingSecret (not .Values.tests.clientSecret) }}
{{- fail "with mutual TLS the helm test needs tests.clientSecret (a client certificate signed by tls.clientCA), or set tests.enabled=false" }}
{{- end }}
{{- if eq (include "privsynth.migrationJob" .) "true" }}
{{- if not (include "privsynth.externalDatabase" .) }}
{{- fail "migrations.mode=job needs an external database (PostgreSQL): the hook Job cannot open SQLite on the pod's ReadWriteOnce volume" }}
{{- end }}
{{- end }}
{{- with .Values.podDisruptionBudget }}
{{- if and .enabled (eq (toString .maxUnavailable) "") (eq (toString .minAvailable) "") }}
{{- fail "podDisruptionBudget: set one of maxUnavailable and minAvailable" }}
{{- else if and .enabled (ne (toString .maxUnavailable) "") (ne (toString .minAvailable) "") }}
{{- fail "podDisruptionBudget: set only one of maxUnavailable and minAvailable (the other \"\")" }}
{{- end }}
{{- end }}
{{- if and .Values.grpcRoute.enabled (not .Values.grpcRoute.parentRefs) }}
{{- fail "grpcRoute.enabled needs grpcRoute.parentRefs: the Gateway to attach to" }}
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
{{- if and .Values.gpu.enabled (eq .Values.config.device "cpu") }}
{{- fail "gpu.enabled with config.device=cpu would hold a GPU the server never uses: set config.device to auto or cuda, or gpu.enabled=false" }}
{{- end }}
{{- end }}

{{/*
PRIVSYNTH_DEVICE: config.device, where auto becomes cuda on GPU pods (a pod given a GPU that its
torch cannot use should stop at start-up, not train on the CPU).
*/}}
{{- define "privsynth.device" -}}
{{- if and .Values.gpu.enabled (eq .Values.config.device "auto") }}cuda{{ else }}{{ .Values.config.device }}{{ end }}
{{- end }}

{{/*
The server container's resources: .Values.resources, plus gpu.count of gpu.resourceName in the
limits when gpu.enabled (YAML; empty when there are none).
*/}}
{{- define "privsynth.resources" -}}
{{- $resources := deepCopy (.Values.resources | default dict) }}
{{- if .Values.gpu.enabled }}
{{- $limits := get $resources "limits" | default dict }}
{{- $_ := set $limits .Values.gpu.resourceName (int .Values.gpu.count) }}
{{- $_ := set $resources "limits" $limits }}
{{- end }}
{{- with $resources }}{{ toYaml . }}{{ end }}
{{- end }}

{{/*
Render a number for an env var, keeping one decimal for integral floats
(10 -> "10.0", 2.5 -> "2.5") so float settings read as floats.
*/}}
{{- define "privsynth.float" -}}
{{- $v := float64 . }}
{{- if eq $v (floor $v) }}{{ printf "%.1f" $v }}{{ else }}{{ $v }}{{ end }}
{{- end }}

{{/*
"true" when migrations run in the pre-install/pre-upgrade hook Job (mode job, or auto with an
external database), "" when each server migrates at start.
*/}}
{{- define "privsynth.migrationJob" -}}
{{- if eq .Values.migrations.mode "job" }}true
{{- else if and (eq .Values.migrations.mode "auto") (include "privsynth.externalDatabase" .) }}true
{{- end }}
{{- end }}

{{/*
The gRPC port the kubelet probes: the plaintext health port when gRPC speaks TLS.
*/}}
{{- define "privsynth.probePort" -}}
{{- if .Values.tls.enabled }}{{ int .Values.tls.healthPort }}{{ else }}{{ int .Values.config.grpcPort }}{{ end }}
{{- end }}

{{/*
The database URL as an env entry (from the Secret), for pods that cannot use the ConfigMap.
*/}}
{{- define "privsynth.databaseEnv" -}}
{{- if .Values.database.existingSecret -}}
- name: PRIVSYNTH_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret }}
      key: {{ .Values.database.existingSecretKey }}
{{- end }}
{{- end }}

{{/*
The object store's access key pair as env entries (server and training pods).
*/}}
{{- define "privsynth.objectStoreEnv" -}}
{{- if and .Values.objectStore.enabled .Values.objectStore.credentials.existingSecret -}}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .Values.objectStore.credentials.existingSecret }}
      key: {{ .Values.objectStore.credentials.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.objectStore.credentials.existingSecret }}
      key: {{ .Values.objectStore.credentials.secretAccessKeyKey }}
{{- end }}
{{- end }}

{{/*
fsspec options of the object store (PRIVSYNTH_ARTIFACT_STORE_OPTIONS), as JSON.
*/}}
{{- define "privsynth.objectStoreOptions" -}}
{{- $options := deepCopy .Values.objectStore.options }}
{{- with .Values.objectStore.endpoint }}{{ $_ := set $options "endpoint_url" . }}{{ end }}
{{- with .Values.objectStore.region }}
{{- $client := default dict (get $options "client_kwargs") }}
{{- $_ := set $client "region_name" . }}
{{- $_ := set $options "client_kwargs" $client }}
{{- end }}
{{- toJson $options }}
{{- end }}
