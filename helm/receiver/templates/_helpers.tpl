{{/* Names */}}
{{- define "receiver.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "receiver.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "receiver.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "receiver.version" -}}
{{- default .Chart.AppVersion .Values.image.tag | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels */}}
{{- define "receiver.selectorLabels" -}}
app.kubernetes.io/name: {{ include "receiver.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ .Values.component }}
{{- end -}}

{{- define "receiver.labels" -}}
{{ include "receiver.selectorLabels" . }}
app.kubernetes.io/version: {{ include "receiver.version" . | quote }}
app.kubernetes.io/part-of: {{ .Values.partOf }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "receiver.chart" . }}
{{- end -}}

{{- define "receiver.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "receiver.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "receiver.secretName" -}}
{{- default (printf "%s-secrets" (include "receiver.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "receiver.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The sqlite intake is one embedded file: a StatefulSet with one replica and a volume. */}}
{{- define "receiver.stateful" -}}
{{- if eq .Values.config.intake.backend "sqlite" -}}true{{- end -}}
{{- end -}}

{{/* Where the pod finds its files */}}
{{- define "receiver.secretDir" -}}/etc/receiver/secrets{{- end -}}
{{- define "receiver.dataDir" -}}/var/lib/receiver{{- end -}}

{{/* Which optional secret files exist: "true" or "". */}}
{{- define "receiver.hasAkSk" -}}
{{- if .Values.secrets.existingSecret -}}
{{- if and .Values.secrets.existingSecretKeys.ak .Values.secrets.existingSecretKeys.sk -}}true{{- end -}}
{{- else if and .Values.secrets.metastudio.ak .Values.secrets.metastudio.sk -}}true
{{- else if or .Values.secrets.metastudio.ak .Values.secrets.metastudio.sk -}}
{{- fail "secrets.metastudio: give both ak and sk, or neither" -}}
{{- end -}}
{{- end -}}

{{- define "receiver.hasIamPassword" -}}
{{- if .Values.secrets.existingSecret -}}
{{- if .Values.secrets.existingSecretKeys.iamPassword -}}true{{- end -}}
{{- else if .Values.secrets.metastudio.iamPassword -}}true
{{- end -}}
{{- end -}}

{{/* The data key of the Secret that holds the nats/redis intake URL, "" when it is in config. */}}
{{- define "receiver.intakeUrlKey" -}}
{{- if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingSecretKeys.intakeUrl | default "" -}}
{{- else if .Values.secrets.intakeUrl -}}intake_url
{{- end -}}
{{- end -}}

{{/* The data key of the Secret that holds the console tokens, "" when there are none. */}}
{{- define "receiver.consoleTokensKey" -}}
{{- if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingSecretKeys.consoleTokens | default "" -}}
{{- else if .Values.secrets.consoleTokens -}}console_tokens
{{- end -}}
{{- end -}}

{{/* The console is served through adminService: check what that needs. */}}
{{- define "receiver.checkAdminService" -}}
{{- if .Values.adminService.enabled -}}
{{- $admin := .Values.config.admin | default dict -}}
{{- if not $admin.enabled -}}
{{- fail "adminService.enabled needs config.admin.enabled" -}}
{{- end -}}
{{- if has (toString $admin.host) (list "127.0.0.1" "localhost" "::1") -}}
{{- fail "adminService.enabled needs config.admin.host 0.0.0.0 (a loopback console is reached with kubectl port-forward only)" -}}
{{- end -}}
{{- if not (include "receiver.consoleTokensKey" .) -}}
{{- fail "adminService.enabled needs console tokens: secrets.consoleTokens (or secrets.existingSecretKeys.consoleTokens)" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The sinks' secret files, a JSON list of {sink, field, file, key, value}: field is url or secret,
file the name under the secret directory (sink-<name>-<field>), key the Secret's data key and
value the content (only when the chart creates the Secret).
*/}}
{{- define "receiver.sinkSecrets" -}}
{{- $existing := ne (.Values.secrets.existingSecret | default "") "" -}}
{{- $source := .Values.secrets.sinks | default dict -}}
{{- if $existing }}{{ $source = .Values.secrets.existingSecretKeys.sinks | default dict }}{{ end -}}
{{- $out := list -}}
{{- range $name := keys $source | sortAlpha -}}
{{- $entry := index $source $name | default dict -}}
{{- range $field := list "url" "secret" -}}
{{- $given := index $entry $field | default "" -}}
{{- if $given -}}
{{- $file := printf "sink-%s-%s" $name $field -}}
{{- $item := dict "sink" $name "field" $field "file" $file "key" $file "value" $given -}}
{{- if $existing }}{{ $item = dict "sink" $name "field" $field "file" $file "key" $given "value" "" }}{{ end -}}
{{- $out = append $out $item -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* The callback URL as registered at MetaStudio. */}}
{{- define "receiver.publicUrl" -}}
{{- $server := .Values.config.server -}}
{{- if $server.public_url -}}
{{- $server.public_url -}}
{{- else if and .Values.ingress.enabled .Values.ingress.host -}}
{{- printf "%s://%s%s" (ternary "https" "http" .Values.ingress.tls.enabled) .Values.ingress.host $server.path -}}
{{- end -}}
{{- end -}}

{{/*
A stopping pod sleeps preStopSleepSeconds, then drains for graceful_shutdown_seconds (the
receiver's default is 20) and releases its leases: Kubernetes must not kill it before.
*/}}
{{- define "receiver.checkGracePeriod" -}}
{{- $server := .Values.config.server | default dict -}}
{{- $drain := 20.0 -}}
{{- if not (kindIs "invalid" $server.graceful_shutdown_seconds) -}}
{{- $drain = float64 $server.graceful_shutdown_seconds -}}
{{- end -}}
{{- $sleep := float64 (.Values.preStopSleepSeconds | default 0) -}}
{{- $grace := float64 .Values.terminationGracePeriodSeconds -}}
{{- if le $grace (addf $drain $sleep) -}}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be above config.server.graceful_shutdown_seconds (%v) + preStopSleepSeconds (%v) = %v, or the pod is killed before it has drained (and, with nats or redis, released its leases): raise it to at least %v" $grace $drain $sleep (addf $drain $sleep) (add1 (floor (addf $drain $sleep)))) -}}
{{- end -}}
{{- end -}}

{{/* The configuration with the keys the chart owns filled in. */}}
{{- define "receiver.settings" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $dir := include "receiver.secretDir" . -}}
{{- $_ := set $cfg.server "host" "0.0.0.0" -}}
{{- $url := include "receiver.publicUrl" . -}}
{{- if $url }}{{ $_ := set $cfg.server "public_url" $url }}{{ end -}}
{{- $types := .Values.config.auth.type | default list -}}
{{- $types = ternary (list $types) $types (kindIs "string" $types) -}}
{{- if and (not $url) (or (has "MSS_A" $types) (has "MSS_A_HEAD" $types)) -}}
{{- fail "config.server.public_url (or ingress.enabled with ingress.host) is required with a signed config.auth.type: signatures are checked against the callback URL exactly as registered at MetaStudio" -}}
{{- end -}}
{{- $_ := set $cfg.auth "keys_file" (printf "%s/keys" $dir) -}}
{{- if include "receiver.hasAkSk" . -}}
{{- $_ := set $cfg.metastudio "ak_file" (printf "%s/ak" $dir) -}}
{{- $_ := set $cfg.metastudio "sk_file" (printf "%s/sk" $dir) -}}
{{- end -}}
{{- if include "receiver.hasIamPassword" . -}}
{{- $_ := set $cfg.metastudio "iam_password_file" (printf "%s/iam_password" $dir) -}}
{{- end -}}
{{- if include "receiver.intakeUrlKey" . -}}
{{- $_ := set $cfg.intake "url_file" (printf "%s/intake_url" $dir) -}}
{{- end -}}
{{- if include "receiver.consoleTokensKey" . -}}
{{- $_ := set $cfg.admin "tokens_file" (printf "%s/console_tokens" $dir) -}}
{{- end -}}
{{- $where := ternary "secrets.existingSecretKeys.sinks" "secrets.sinks" (ne (.Values.secrets.existingSecret | default "") "") -}}
{{- $sinks := $cfg.sinks | default list -}}
{{- range $f := include "receiver.sinkSecrets" . | fromJsonArray -}}
{{- $found := false -}}
{{- range $sink := $sinks -}}
{{- if eq (toString $sink.name) $f.sink -}}
{{- $found = true -}}
{{- $types := ternary (list "http") (list "nats" "rabbitmq" "redis" "http") (eq $f.field "secret") -}}
{{- if not (has (toString $sink.type) $types) -}}
{{- fail (printf "%s.%s.%s: a %s sink has no %s (%s only)" $where $f.sink $f.field $sink.type $f.field (join ", " $types)) -}}
{{- end -}}
{{- if index $sink $f.field -}}
{{- fail (printf "sink %s: its %s comes from %s.%s.%s, leave it out of config.sinks" $f.sink $f.field $where $f.sink $f.field) -}}
{{- end -}}
{{- $_ := set $sink (printf "%s_file" $f.field) (printf "%s/%s" $dir $f.file) -}}
{{- end -}}
{{- end -}}
{{- if not $found -}}
{{- fail (printf "%s.%s: config.sinks has no sink named %s" $where $f.sink $f.sink) -}}
{{- end -}}
{{- end -}}
{{- range $sink := $sinks -}}
{{- if and (eq (toString $sink.type) "http") (not $sink.url) (not $sink.url_file) -}}
{{- fail (printf "the http sink %s needs a url: in config.sinks or in %s.%s.url" $sink.name $where $sink.name) -}}
{{- end -}}
{{- end -}}
{{- toJson $cfg -}}
{{- end -}}

{{/*
A small TOML writer: strings are JSON strings (valid TOML basic strings), whole numbers are
written as integers (Helm reads every number as a float), null values are left out.
*/}}
{{- define "receiver.toml.value" -}}
{{- $kind := kindOf . -}}
{{- if eq $kind "string" -}}
{{- toJson . -}}
{{- else if eq $kind "bool" -}}
{{- . -}}
{{- else if or (eq $kind "float64") (eq $kind "float32") -}}
{{- if eq (float64 (int64 .)) (float64 .) -}}{{- int64 . -}}{{- else -}}{{- . -}}{{- end -}}
{{- else if hasPrefix "int" $kind -}}
{{- . -}}
{{- else if eq $kind "slice" -}}
[{{- range $i, $item := . -}}{{- if $i }}, {{ end -}}{{- include "receiver.toml.value" $item -}}{{- end -}}]
{{- else -}}
{{- fail (printf "config: cannot write a %s as a TOML value" $kind) -}}
{{- end -}}
{{- end -}}

{{- define "receiver.toml.isTable" -}}
{{- if eq (kindOf .) "map" -}}true{{- end -}}
{{- end -}}

{{- define "receiver.toml.isTableArray" -}}
{{- if and (eq (kindOf .) "slice") (gt (len .) 0) -}}
{{- if eq (kindOf (first .)) "map" -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{/* (list "dotted.name" map "[" "]") → the table's header, plain keys, then sub-tables. */}}
{{- define "receiver.toml.table" -}}
{{- $name := index . 0 -}}
{{- $table := index . 1 -}}
{{ index . 2 }}{{ $name }}{{ index . 3 }}
{{- range $key := keys $table | sortAlpha -}}
{{- $value := index $table $key -}}
{{- if and (ne (kindOf $value) "invalid") (not (include "receiver.toml.isTable" $value)) (not (include "receiver.toml.isTableArray" $value)) }}
{{ $key }} = {{ include "receiver.toml.value" $value }}
{{- end -}}
{{- end -}}
{{- range $key := keys $table | sortAlpha -}}
{{- $value := index $table $key -}}
{{- if include "receiver.toml.isTable" $value }}

{{ include "receiver.toml.table" (list (printf "%s.%s" $name $key) $value "[" "]") }}
{{- else if include "receiver.toml.isTableArray" $value -}}
{{- range $item := $value }}

{{ include "receiver.toml.table" (list (printf "%s.%s" $name $key) $item "[[" "]]") }}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "receiver.toml" -}}
{{- $cfg := include "receiver.settings" . | fromJson -}}
# receiver.toml rendered by the {{ include "receiver.chart" . }} chart from its values.
# Secrets are files under {{ include "receiver.secretDir" . }}, never in this file.
{{- range $section := list "server" "auth" "intake" "pipeline" "metastudio" "enrichment" "reconcile" "dead_letters" "logging" "tracing" "admin" }}
{{- if hasKey $cfg $section }}

{{ include "receiver.toml.table" (list $section (index $cfg $section) "[" "]") }}
{{- end }}
{{- end }}
{{- range $section := list "sinks" "routes" }}
{{- range $item := index $cfg $section }}

{{ include "receiver.toml.table" (list $section $item "[[" "]]") }}
{{- end }}
{{- end }}
{{- end -}}
