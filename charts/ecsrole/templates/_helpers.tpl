{{/* Chart name, possibly overridden. */}}
{{- define "ecsrole.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, with the chart name unless the release name contains it. */}}
{{- define "ecsrole.fullname" -}}
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

{{- define "ecsrole.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "ecsrole.labels" -}}
helm.sh/chart: {{ include "ecsrole.chart" . }}
{{ include "ecsrole.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ecsrole
{{- end }}

{{/* Labels selecting the operator pods (immutable in a Deployment: never add to these). */}}
{{- define "ecsrole.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ecsrole.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ecsrole.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ecsrole.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository:tag@digest when a digest is pinned. */}}
{{- define "ecsrole.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The operator configuration document; clusterName is required. */}}
{{- define "ecsrole.config" -}}
{{- $config := deepCopy .Values.config }}
{{- $_ := set $config "clusterName" (required "config.clusterName is required: a name unique to this cluster among all clusters that manage the same AWS accounts (it is part of every role's ownership tags)" .Values.config.clusterName) }}
{{- toYaml $config }}
{{- end }}

{{/* Refuses an extraEnv list naming a variable twice (the API server would keep the last one
silently; JSON Schema cannot express uniqueness by key). Renders nothing. */}}
{{- define "ecsrole.uniqueEnvNames" -}}
{{- $seen := dict }}
{{- range . }}
{{- if hasKey $seen .name }}
{{- fail (printf "extraEnv names %s more than once" .name) }}
{{- end }}
{{- $_ := set $seen .name true }}
{{- end }}
{{- end }}
{{/* Sharding (shards.*, docs/sharding.md): the Deployments to render, as a YAML list of
{name, selector, replicas}. Without shards one Deployment serves every resource. With shards,
each serves the resources labelled `<labelKey>: <name>`, and the main one those without the
label, the way Flux shards its controllers. */}}
{{- define "ecsrole.deployments" -}}
{{- $key := .Values.shards.labelKey }}
{{- $deployments := list }}
{{- if .Values.shards.deployments }}
{{- $deployments = append $deployments (dict "name" "" "selector" (printf "!%s" $key) "replicas" .Values.replicas) }}
{{- $seen := dict }}
{{- range .Values.shards.deployments }}
{{- if hasKey $seen .name }}
{{- fail (printf "shards.deployments: the shard name %q appears twice" .name) }}
{{- end }}
{{- $_ := set $seen .name true }}
{{- $replicas := $.Values.replicas }}
{{- if hasKey . "replicas" }}
{{- $replicas = .replicas }}
{{- end }}
{{- $deployments = append $deployments (dict "name" .name "selector" (printf "%s=%s" $key .name) "replicas" $replicas) }}
{{- end }}
{{- else }}
{{- $deployments = append $deployments (dict "name" "" "selector" "" "replicas" .Values.replicas) }}
{{- end }}
{{- toYaml $deployments }}
{{- end }}

