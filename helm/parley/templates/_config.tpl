{{/*
homeserver.toml, rendered from values; shared by the ConfigMap and the migration Job.
Every key here must exist in homeserver/src/config.rs (it denies unknown fields).
*/}}
{{- define "parley.homeserverToml" -}}
{{- $c := .Values.config -}}
{{- $f := .Values.federation -}}
# Rendered by the parley Helm chart; edit values.yaml, not this file.
server_name = {{ .Values.serverName | toJson }}

[listen]
client = "0.0.0.0:{{ int $c.listen.clientPort }}"
workers = {{ int $c.listen.workers }}

[tls]
cert = "/etc/parley/tls/tls.crt"
key = "/etc/parley/tls/tls.key"

[database]
# Set from a Secret through PARLEY_DATABASE__URL.
url = "postgres://unset@localhost/unset"
pool_size = {{ int $c.database.poolSize }}
pool_timeout_ms = {{ int64 $c.database.poolTimeoutMs }}

[registration]
enabled = {{ $c.registration.enabled }}

[limits]
max_body_bytes = {{ int64 $c.limits.maxBodyBytes }}
login_failures_per_account_and_address_per_minute = {{ int64 $c.limits.loginFailuresPerAccountAndAddressPerMinute }}
login_failures_per_account_per_hour = {{ int64 $c.limits.loginFailuresPerAccountPerHour }}
login_attempts_per_address_per_minute = {{ int64 $c.limits.loginAttemptsPerAddressPerMinute }}
key_package_claims_per_account_per_minute = {{ int64 $c.limits.keyPackageClaimsPerAccountPerMinute }}
messages_per_device_per_minute = {{ int64 $c.limits.messagesPerDevicePerMinute }}
max_message_bytes = {{ int64 $c.limits.maxMessageBytes }}
max_group_size = {{ int64 $c.limits.maxGroupSize }}
past_epochs_accepted = {{ int64 $c.limits.pastEpochsAccepted }}
expiry_sweep_interval_secs = {{ int64 $c.limits.expirySweepIntervalSecs }}

[log]
format = {{ $c.log.format | toJson }}
level = {{ $c.log.level | toJson }}
{{- if include "parley.metricsEnabled" . }}

[metrics]
token_file = {{ include "parley.metricsTokenPath" . | toJson }}
{{- end }}


[second_factor]
{{- if .Values.secondFactor.existingSecret }}
key_file = {{ include "parley.secondFactorKeyPath" . | toJson }}
{{- else }}
enabled = false
{{- end }}

[transparency]
{{- if include "parley.transparencyEnabled" . }}
vrf_key_file = {{ include "parley.transparencyVrfKeyPath" . | toJson }}
{{- else }}
enabled = false
{{- end }}
{{- if .Values.admin.enabled }}

[admin]
listen = "127.0.0.1:{{ int .Values.admin.port }}"
token_file = {{ include "parley.adminTokenPath" . | toJson }}
{{- end }}
{{- if $f.enabled }}

[federation]
listen = "0.0.0.0:{{ int $f.port }}"
signing_key = {{ include "parley.signingKeyPath" . | toJson }}
{{- if $f.trustRoots.existingSecret }}
trust_roots = "/etc/parley/federation-ca/ca.crt"
{{- end }}
key_document_validity_secs = {{ int64 $f.keyDocumentValiditySecs }}
{{- if $f.wellKnownServer }}
well_known_server = {{ $f.wellKnownServer | toJson }}
{{- end }}
{{- if $f.allow }}
allow = {{ $f.allow | toJson }}
{{- end }}
deny = {{ $f.deny | default list | toJson }}
requests_per_origin_per_minute = {{ int64 $f.requestsPerOriginPerMinute }}
max_transaction_messages = {{ int64 $f.maxTransactionMessages }}
max_transaction_bytes = {{ int64 $f.maxTransactionBytes }}
retry_initial_ms = {{ int64 $f.retryInitialMs }}
retry_max_secs = {{ int64 $f.retryMaxSecs }}

[federation.peers]
{{- range $name, $addr := $f.peers }}
{{ $name | toJson }} = {{ $addr | toJson }}
{{- end }}
{{- end }}
{{- end }}
