{{/*
The chart name, overridable.
*/}}
{{- define "parley.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The resource name prefix: fullnameOverride, else "<release>-<chart>" (just the release name
when it already contains the chart name). Kept short enough for suffixes like "-federation".
*/}}
{{- define "parley.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "parley.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "parley.labels" -}}
helm.sh/chart: {{ include "parley.chart" . }}
{{ include "parley.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: parley
{{- end }}

{{/*
Labels selecting the homeserver pods.
*/}}
{{- define "parley.selectorLabels" -}}
app.kubernetes.io/name: {{ include "parley.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: homeserver
{{- end }}

{{- define "parley.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "parley.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "parley.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* Secret names, each defaulting to "<fullname>-<purpose>". */}}
{{- define "parley.tlsSecret" -}}
{{- default (printf "%s-tls" (include "parley.fullname" .)) .Values.tls.existingSecret }}
{{- end }}
{{- define "parley.signingKeySecret" -}}
{{- default (printf "%s-signing-key" (include "parley.fullname" .)) .Values.federation.signingKey.existingSecret }}
{{- end }}
{{- define "parley.postgresqlPasswordSecret" -}}
{{- default (printf "%s-postgresql" (include "parley.fullname" .)) .Values.postgresql.passwordSecret.name }}
{{- end }}
{{- define "parley.adminSecret" -}}
{{- default (printf "%s-admin" (include "parley.fullname" .)) .Values.admin.tokenSecret.name }}
{{- end }}

{{/* Paths inside the container. */}}
{{- define "parley.configPath" -}}/etc/parley/config/homeserver.toml{{- end }}
{{- define "parley.privateDir" -}}/var/lib/parley/private{{- end }}
{{- define "parley.signingKeyPath" -}}/var/lib/parley/private/server.key{{- end }}
{{- define "parley.adminTokenPath" -}}/var/lib/parley/private/admin-token{{- end }}
{{- define "parley.secondFactorKeyPath" -}}/var/lib/parley/private/second-factor.key{{- end }}
{{- define "parley.transparencyVrfKeyPath" -}}/var/lib/parley/private/transparency-vrf.key{{- end }}
{{- /* The key directory needs [federation] and one VRF key shared by every replica (a Secret). */ -}}
{{- define "parley.transparencyEnabled" -}}{{ if and .Values.federation.enabled .Values.transparency.existingSecret }}true{{ end }}{{- end }}
{{- define "parley.metricsTokenPath" -}}/var/lib/parley/private/metrics-token{{- end }}
{{- /* /metrics is served with a token: when asked for, or when the ServiceMonitor scrapes it. */ -}}
{{- define "parley.metricsEnabled" -}}{{ if or .Values.metrics.enabled .Values.serviceMonitor.enabled }}true{{ end }}{{- end }}
{{- define "parley.metricsSecret" -}}
{{- default (printf "%s-metrics" (include "parley.fullname" .)) .Values.metrics.tokenSecret.name }}
{{- end }}

{{/*
The environment carrying the database URL (PARLEY_DATABASE__URL) and other secrets, shared
by the Deployment and the migration Job.
*/}}
{{- define "parley.secretEnv" -}}
{{- if .Values.postgresql.existingSecret }}
- name: PARLEY_DATABASE__URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.postgresql.existingSecret }}
      key: {{ .Values.postgresql.key }}
{{- else }}
- name: DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "parley.postgresqlPasswordSecret" . }}
      key: {{ .Values.postgresql.passwordSecret.key }}
{{- /* An HA cluster: every node, and only the primary will do. */}}
{{- $hosts := printf "%s:%v" .Values.postgresql.host .Values.postgresql.port }}
{{- $primaryOnly := "" }}
{{- if .Values.postgresql.hosts }}
{{- $hosts = join "," .Values.postgresql.hosts }}
{{- $primaryOnly = "&target_session_attrs=read-write" }}
{{- end }}
- name: PARLEY_DATABASE__URL
  value: {{ printf "postgres://%s:$(DATABASE_PASSWORD)@%s/%s?sslmode=%s%s%s" .Values.postgresql.user $hosts .Values.postgresql.database .Values.postgresql.tls.sslMode $primaryOnly (ternary "&sslrootcert=/etc/parley/postgresql-ca/ca.crt" "" (not (empty .Values.postgresql.tls.caSecret))) | quote }}
{{- end }}
{{- if .Values.config.registration.inviteToken.existingSecret }}
- name: PARLEY_REGISTRATION__INVITE_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.config.registration.inviteToken.existingSecret }}
      key: {{ .Values.config.registration.inviteToken.key }}
{{- end }}
{{- end }}

{{/*
Checks that fail the render with a clear message.
*/}}
{{- define "parley.validate" -}}
{{- if not .Values.serverName }}
{{- fail "serverName is required: the domain this homeserver owns (users are name@serverName)" }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled .Values.podDisruptionBudget.maxUnavailable .Values.podDisruptionBudget.minAvailable }}
{{- fail "podDisruptionBudget: set maxUnavailable or minAvailable, not both" }}
{{- end }}
{{- if not (has .Values.service.federation.type (list "ClusterIP" "LoadBalancer" "NodePort")) }}
{{- fail "service.federation.type must be LoadBalancer, NodePort or ClusterIP (behind a TLS-passthrough proxy)" }}
{{- end }}
{{- if not (has .Values.service.client.type (list "ClusterIP" "LoadBalancer" "NodePort")) }}
{{- fail "service.client.type must be ClusterIP, LoadBalancer or NodePort" }}
{{- end }}
{{- if not (has .Values.podAntiAffinity (list "" "soft" "hard")) }}
{{- fail "podAntiAffinity must be \"soft\", \"hard\" or \"\"" }}
{{- end }}
{{- end }}
