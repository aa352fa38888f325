{{/*
Names, labels, and the values the chart derives from the release so that the controller's
settings agree with the objects the chart creates (its Service URL, its Lease).
*/}}

{{- define "modelgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "modelgate.fullname" -}}
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

{{- define "modelgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The Helm-standard `app.kubernetes.io/managed-by: Helm` label matters on the Gateway: the
controller treats only objects labelled `managed-by: modelgate` as its own.
*/}}
{{- define "modelgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "modelgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "modelgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "modelgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "modelgate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Where gateways download the module: this release's Service unless set. */}}
{{- define "modelgate.serviceUrl" -}}
{{- if .Values.settings.serviceUrl }}
{{- .Values.settings.serviceUrl }}
{{- else }}
{{- printf "http://%s.%s.svc.cluster.local:%d" (include "modelgate.fullname" .) .Release.Namespace (int .Values.service.port) }}
{{- end }}
{{- end }}

{{- define "modelgate.leaseName" -}}
{{- default (printf "%s-leader" (include "modelgate.fullname" .)) .Values.run.leaseName }}
{{- end }}

{{/* The extension object's name (WasmPlugin or TrafficExtension): fixed by the controller. */}}
{{- define "modelgate.extensionName" -}}
modelgate
{{- end }}

{{/*
The extension kinds settings.extensionKind lets the controller write (permissions.rs,
Condition::WritesWasmPlugin and WritesTrafficExtension), as a JSON list of resources:
auto may settle on either.
*/}}
{{- define "modelgate.extensionResources" -}}
{{- $kind := .Values.settings.extensionKind | default "auto" }}
{{- $resources := list }}
{{- if ne $kind "wasm-plugin" }}{{ $resources = append $resources "trafficextensions" }}{{ end }}
{{- if ne $kind "traffic-extension" }}{{ $resources = append $resources "wasmplugins" }}{{ end }}
{{- toJson $resources }}
{{- end }}

{{/*
The controller's config file. Empty strings are "not set" and left out (the controller
treats a present key as a value); the chart adds what it derives from the release.
*/}}
{{- define "modelgate.config" -}}
{{- $config := dict }}
{{- range $key, $value := .Values.settings }}
{{- if not (and (kindIs "string" $value) (eq $value "")) }}
{{- $_ := set $config $key $value }}
{{- end }}
{{- end }}
{{- $_ := set $config "serviceUrl" (include "modelgate.serviceUrl" .) }}
{{- $run := dict }}
{{- range $key, $value := .Values.run }}
{{- if not (and (kindIs "string" $value) (eq $value "")) }}
{{- $_ := set $run $key $value }}
{{- end }}
{{- end }}
{{- $_ := set $run "listen" (printf "0.0.0.0:%d" (int .Values.containerPort)) }}
{{- $_ := set $run "leaseName" (include "modelgate.leaseName" .) }}
{{- $_ := set $run "leaseNamespace" .Release.Namespace }}
{{- $_ := set $config "run" $run }}
{{- toYaml $config }}
{{- end }}

{{/*
The CRDs the controller checks for at start-up (run.rs, required_crds): it may read
exactly these CustomResourceDefinitions.
*/}}
{{- define "modelgate.requiredCrds" -}}
- seldondeployments.machinelearning.seldon.io
- virtualservices.networking.istio.io
- destinationrules.networking.istio.io
- gateways.networking.istio.io
{{- range include "modelgate.extensionResources" . | fromJsonArray }}
- {{ . }}.extensions.istio.io
{{- end }}
{{- if .Values.settings.authorizationPolicy }}
- authorizationpolicies.security.istio.io
{{- end }}
{{- if eq (.Values.settings.routing | default "istio") "gateway-api" }}
- httproutes.gateway.networking.k8s.io
{{- end }}
{{- end }}

{{/* `settings.defaultGateway` split into namespace and name, for the chart's Gateway. */}}
{{- define "modelgate.gatewayNamespace" -}}
{{- $parts := splitList "/" .Values.settings.defaultGateway }}
{{- if or (ne (len $parts) 2) (eq .Values.settings.defaultGateway "mesh") }}
{{- fail (printf "gateway.create needs settings.defaultGateway as <namespace>/<name>, not %q: the chart cannot create a Gateway in every model's namespace, and `mesh` is no Gateway" .Values.settings.defaultGateway) }}
{{- end }}
{{- index $parts 0 }}
{{- end }}

{{- define "modelgate.gatewayName" -}}
{{- $parts := splitList "/" .Values.settings.defaultGateway }}
{{- index $parts 1 }}
{{- end }}
