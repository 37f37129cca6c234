{{/*
Names, labels, the component table and the per-component values.

Every workload is one `serbero serve --target=<component>` Deployment built by
templates/deployment.yaml from the same code path; what differs between
components is only the static table below (health service, peers, callers) and
the component's values block.
*/}}

{{- define "serbero.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "serbero.fullname" -}}
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

{{- define "serbero.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels shared by every object. */}}
{{- define "serbero.labels" -}}
helm.sh/chart: {{ include "serbero.chart" . }}
app.kubernetes.io/name: {{ include "serbero.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: serbero
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of the whole release (every component). */}}
{{- define "serbero.selectorLabels" -}}
app.kubernetes.io/name: {{ include "serbero.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of one component. Call with (dict "root" $ "component" "relaygw"). */}}
{{- define "serbero.componentLabels" -}}
{{ include "serbero.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Labels of a component's pod template: the selector labels and part-of, never the
chart's version or appVersion, so a chart upgrade that changes nothing in the
pods restarts nothing (the image tag and checksum/config are what roll them).
Call with (dict "root" $ "component" "relaygw").
*/}}
{{- define "serbero.podLabels" -}}
{{ include "serbero.componentSelectorLabels" . }}
app.kubernetes.io/part-of: serbero
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component. Call with (dict "root" $ "component" "relaygw"). */}}
{{- define "serbero.componentSelectorLabels" -}}
{{ include "serbero.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Name of one component's Deployment, Service, PDB, HPA and NetworkPolicy. */}}
{{- define "serbero.componentName" -}}
{{- printf "%s-%s" (include "serbero.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The components, in start order. */}}
{{- define "serbero.componentOrder" -}}
relaygw intakesvc authsvc mediationsvc escalationsvc
{{- end }}

{{/*
What the chart knows about each component (not configurable):
  healthService: the grpc.health.v1 service name that is SERVING only when
                 Postgres is reachable and the schema is current (readiness);
  peers:         the services it dials (SERBERO_<PEER>_ADDR is set for each);
  holdsKey:      whether it reads Serbero's Nostr secret key (relaygw only).
Who may call a component is derived from the peers lists.
*/}}
{{- define "serbero.componentTable" -}}
relaygw:
  healthService: serbero.relaygw.v1.RelayGatewayService
  peers: []
  holdsKey: true
intakesvc:
  healthService: serbero.intakesvc.v1.IntakeService
  peers: [relaygw]
  holdsKey: false
authsvc:
  healthService: serbero.authsvc.v1.AuthService
  peers: [relaygw]
  holdsKey: false
mediationsvc:
  healthService: serbero.mediationsvc.v1.MediationService
  peers: [relaygw, authsvc, intakesvc]
  holdsKey: false
escalationsvc:
  healthService: serbero.escalationsvc.v1.EscalationService
  peers: [relaygw, intakesvc]
  holdsKey: false
{{- end }}

{{/* The enabled components, as a space-separated list. */}}
{{- define "serbero.enabledComponents" -}}
{{- $out := list }}
{{- range $name := splitList " " (include "serbero.componentOrder" .) }}
{{- if (index $.Values $name).enabled }}
{{- $out = append $out $name }}
{{- end }}
{{- end }}
{{- join " " $out }}
{{- end }}

{{/*
The enabled callers of a component, as a space-separated list: every enabled
component whose peers include it. Call with (dict "root" $ "component" "relaygw").
*/}}
{{- define "serbero.callers" -}}
{{- $table := include "serbero.componentTable" .root | fromYaml }}
{{- $out := list }}
{{- range $name := splitList " " (include "serbero.componentOrder" .root) }}
{{- if and (index $.root.Values $name).enabled (has $.component (index $table $name).peers) }}
{{- $out = append $out $name }}
{{- end }}
{{- end }}
{{- join " " $out }}
{{- end }}

{{/*
The effective values of one component, as YAML: every key of `defaults`,
replaced (not merged) by the same key in the component's block, plus the
component-only keys. The extra* lists are concatenated (defaults first) and
podAnnotations/podLabels are merged (the component wins).
Call with (dict "root" $ "component" "relaygw") and read it with fromYaml.
*/}}
{{- define "serbero.componentValues" -}}
{{- $defaults := .root.Values.defaults }}
{{- $own := index .root.Values .component }}
{{- $out := dict }}
{{- range $k, $v := $defaults }}
{{- if hasKey $own $k }}
{{- $_ := set $out $k (index $own $k) }}
{{- else }}
{{- $_ := set $out $k $v }}
{{- end }}
{{- end }}
{{- range $k, $v := $own }}
{{- if not (hasKey $defaults $k) }}
{{- $_ := set $out $k $v }}
{{- end }}
{{- end }}
{{- range $k := list "extraEnv" "extraEnvFrom" "extraVolumes" "extraVolumeMounts" "initContainers" "extraContainers" }}
{{- $_ := set $out $k (concat (index $defaults $k | default list) (index $own $k | default list)) }}
{{- end }}
{{- range $k := list "podAnnotations" "podLabels" }}
{{- $_ := set $out $k (merge (deepCopy (index $own $k | default dict)) (deepCopy (index $defaults $k | default dict))) }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/* The image reference. Call with (dict "root" $ "image" <image values>). */}}
{{- define "serbero.image" -}}
{{- $img := .image }}
{{- $tag := $img.tag | default .root.Chart.AppVersion }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository $tag }}
{{- end }}
{{- end }}

{{/*
The ServiceAccount of one component (each has its own, so workload identity,
Vault or a CSI driver can give the Nostr key to relaygw alone): with
serviceAccount.create, <component>.serviceAccount.name or <fullname>-<component>;
without, <component>.serviceAccount.name or serviceAccount.name (required).
Call with (dict "root" $ "component" "relaygw"); "migrate" and "test" are the hooks'.
*/}}
{{- define "serbero.componentServiceAccountName" -}}
{{- $own := index .root.Values .component | default dict }}
{{- $sa := $own.serviceAccount | default dict }}
{{- if .root.Values.serviceAccount.create }}
{{- $sa.name | default (include "serbero.componentName" .) }}
{{- else }}
{{- required (printf "%s.serviceAccount.name or serviceAccount.name is required when serviceAccount.create is false" .component) ($sa.name | default .root.Values.serviceAccount.name) }}
{{- end }}
{{- end }}

{{/* The Secret holding the service-to-service token. */}}
{{- define "serbero.authSecretName" -}}
{{- if .Values.auth.existingSecret }}
{{- .Values.auth.existingSecret }}
{{- else }}
{{- printf "%s-auth-token" (include "serbero.fullname" .) }}
{{- end }}
{{- end }}

{{- define "serbero.authSecretKey" -}}
{{- if .Values.auth.existingSecret }}{{ .Values.auth.key }}{{ else }}token{{ end }}
{{- end }}

{{/*
The rendered config.toml (also hashed into checksum/config): configToml as given
(a reference config.toml, verbatim), else .Values.config rendered. Secrets never
go into the ConfigMap: a configToml with the Nostr key, the service token or a
Postgres URL is refused.
*/}}
{{- define "serbero.configToml" -}}
{{- if .Values.configToml }}
{{- if regexMatch "(?m)^\\s*private_key\\s*=" .Values.configToml }}
{{- fail "configToml holds private_key: remove it; the Nostr key comes from the Secret relaygw.privateKey.existingSecret" }}
{{- end }}
{{- if regexMatch "(?m)^\\s*auth_token\\s*=" .Values.configToml }}
{{- fail "configToml holds auth_token: remove it; the service token comes from auth.existingSecret or the chart's Secret" }}
{{- end }}
{{- if regexMatch "(?m)^\\s*url\\s*=\\s*[\"']postgres(ql)?://" .Values.configToml }}
{{- fail "configToml holds a Postgres url: remove it; the database URL comes from the Secret database.existingSecret" }}
{{- end }}
{{- .Values.configToml }}
{{- else }}
{{- include "serbero.configTomlRendered" . }}
{{- end }}
{{- end }}

{{- define "serbero.configTomlRendered" -}}
# Rendered by the serbero Helm chart from .Values.config. Secrets are not here:
# the database URL, the service token, the reasoning API key and the Nostr key
# reach the pods as files from Secrets (SERBERO_*_FILE). Listen and peer
# addresses are set per pod through the environment.
{{ include "serbero.toml" .Values.config }}
{{- end }}

{{/*
Environment variable naming the reasoning API key file. The key itself is
read from the variable named by [reasoning].api_key_env, or from the file
named by <that name>_FILE.
*/}}
{{- define "serbero.reasoningKeyEnv" -}}
{{- $cfg := .Values.config.reasoning | default dict }}
{{- printf "%s_FILE" ($cfg.api_key_env | default "SERBERO_REASONING_API_KEY") }}
{{- end }}

{{/* Security contexts of every container, the migration Job's included. */}}
{{- define "serbero.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{- define "serbero.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext }}
{{- end }}

{{/*
Cross-value checks JSON Schema cannot express. Included by the ConfigMap, so
a bad combination fails `helm install`/`helm template` with a clear message.
*/}}
{{- define "serbero.validate" -}}
{{- $enabled := splitList " " (include "serbero.enabledComponents" .) }}
{{- $table := include "serbero.componentTable" . | fromYaml }}
{{- range $name := $enabled }}
{{- range $peer := (index $table $name).peers }}
{{- if not (has $peer $enabled) }}
{{- fail (printf "%s.enabled is true but it calls %s, which is disabled: enable %s or disable %s" $name $peer $peer $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- $mediation := .Values.config.mediation | default dict }}
{{- if and $mediation.enabled (not .Values.mediationsvc.enabled) }}
{{- fail "config.mediation.enabled is true but mediationsvc.enabled is false: nothing would mediate" }}
{{- end }}
{{- $escalation := .Values.config.escalation | default dict }}
{{- if and $escalation.enabled (not .Values.escalationsvc.enabled) }}
{{- fail "config.escalation.enabled is true but escalationsvc.enabled is false: handoffs would never be dispatched" }}
{{- end }}
{{- if and .Values.mediationsvc.reasoning.enabled (not .Values.mediationsvc.reasoning.existingSecret) }}
{{- fail "mediationsvc.reasoning.enabled needs mediationsvc.reasoning.existingSecret (a Secret holding the reasoning API key)" }}
{{- end }}
{{- $as := .Values.escalationsvc.autoscaling }}
{{- if and $as.enabled (gt (int $as.minReplicas) (int $as.maxReplicas)) }}
{{- fail (printf "escalationsvc.autoscaling.minReplicas (%d) is above maxReplicas (%d)" (int $as.minReplicas) (int $as.maxReplicas)) }}
{{- end }}
{{- $server := .Values.config.server | default dict }}
{{- $drain := 5 }}
{{- if hasKey $server "drain_seconds" }}{{ $drain = int $server.drain_seconds }}{{ end }}
{{- $grace := 10 }}
{{- if hasKey $server "shutdown_grace_seconds" }}{{ $grace = int $server.shutdown_grace_seconds }}{{ end }}
{{- range $name := $enabled }}
{{- $c := include "serbero.componentValues" (dict "root" $ "component" $name) | fromYaml }}
{{- if le (int $c.terminationGracePeriodSeconds) (add $drain $grace | int) }}
{{- fail (printf "%s: terminationGracePeriodSeconds (%d) must exceed config.server.drain_seconds + shutdown_grace_seconds (%d), or pods are killed mid-drain" $name (int $c.terminationGracePeriodSeconds) (add $drain $grace | int)) }}
{{- end }}
{{- end }}
{{- end }}
