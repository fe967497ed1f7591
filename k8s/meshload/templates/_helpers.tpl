{{/* Names ---------------------------------------------------------------------------------------- */}}

{{- define "meshload.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "meshload.fullname" -}}
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

{{/* "<fullname>-<suffix>", cut so that the whole stays a valid 63-character name. */}}
{{- define "meshload.componentName" -}}
{{- $root := index . 0 }}{{- $suffix := index . 1 }}
{{- printf "%s-%s" (include "meshload.fullname" $root | trunc (int (sub 62 (len $suffix)))) $suffix | trimSuffix "-" }}
{{- end }}

{{- define "meshload.workerName" -}}{{ include "meshload.componentName" (list . "worker") }}{{- end }}
{{- define "meshload.redisName" -}}{{ include "meshload.componentName" (list . "redis") }}{{- end }}
{{- define "meshload.coordinatorName" -}}{{ include "meshload.componentName" (list . "coordinator") }}{{- end }}
{{- define "meshload.testEchoName" -}}{{ include "meshload.componentName" (list . "test-echo") }}{{- end }}

{{- define "meshload.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels ------------------------------------------------------------------------------------------
Every object carries the app.kubernetes.io/* set; `component` says which part of meshload it is.
Call as (include "meshload.labels" (dict "root" $ "component" "worker")). */}}

{{- define "meshload.selectorLabels" -}}
app.kubernetes.io/name: {{ include "meshload.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "meshload.labels" -}}
{{ include "meshload.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: meshload
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ include "meshload.chart" .root }}
{{- end }}

{{/* The labels every meshload pod of this release has (and nothing else has): the NetworkPolicy lets
exactly these pods reach Redis. */}}
{{- define "meshload.releasePodLabels" -}}
app.kubernetes.io/name: {{ include "meshload.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Pod metadata: labels, the mesh-exclusion label/annotations, and the pod's own extras.
Call with (dict "root" $ "component" "worker" "labels" .Values.worker.podLabels "annotations" ...). */}}
{{- define "meshload.podMetadata" -}}
labels:
  {{- include "meshload.labels" . | nindent 2 }}
  {{- if .root.Values.meshExclusion.enabled }}
  sidecar.istio.io/inject: "false"
  istio.io/dataplane-mode: none
  {{- end }}
  {{- with .labels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- if or .root.Values.meshExclusion.enabled .annotations }}
annotations:
  {{- if .root.Values.meshExclusion.enabled }}
  linkerd.io/inject: disabled
  consul.hashicorp.com/connect-inject: "false"
  {{- end }}
  {{- with .annotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* Security --------------------------------------------------------------------------------------- */}}

{{/* Pod securityContext from a {runAsUser, runAsGroup, fsGroup} value; non-root and RuntimeDefault always. */}}
{{- define "meshload.podSecurityContext" -}}
runAsNonRoot: true
{{- range $key := list "runAsUser" "runAsGroup" "fsGroup" }}
{{- if not (kindIs "invalid" (index $.ids $key)) }}
{{ $key }}: {{ index $.ids $key }}
{{- end }}
{{- end }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "meshload.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* A number as a command-line argument: whole numbers without a decimal point or an exponent
(values arrive as floats, and 1000000 would print as 1e+06). */}}
{{- define "meshload.number" -}}
{{- if eq (float64 .) (floor .) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- end }}

{{/* Images --------------------------------------------------------------------------------------- */}}

{{- define "meshload.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Redis ---------------------------------------------------------------------------------------- */}}

{{- define "meshload.redisSecretName" -}}
{{- if eq .Values.redis.mode "external" }}
{{- required "redis.external.existingSecret is required when redis.mode is external: a Secret holding the Redis URL" .Values.redis.external.existingSecret }}
{{- else }}
{{- default (include "meshload.redisName" .) .Values.redis.auth.existingSecret }}
{{- end }}
{{- end }}

{{- define "meshload.redisHost" -}}
{{- printf "%s.%s.svc" (include "meshload.redisName" .) .Release.Namespace }}
{{- end }}

{{/* The environment that gives a meshload container its Redis URL in MESHLOAD_REDIS (read by `meshload
run`, `study` and `worker`). The password comes from the Secret into an environment variable and is
spliced into the URL by Kubernetes ($(VAR) expansion): it is never on a command line or in the spec. */}}
{{- define "meshload.redisEnv" -}}
{{- if eq .Values.redis.mode "external" }}
- name: MESHLOAD_REDIS
  valueFrom:
    secretKeyRef:
      name: {{ include "meshload.redisSecretName" . }}
      key: {{ .Values.redis.external.urlKey }}
{{- else }}
- name: MESHLOAD_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "meshload.redisSecretName" . }}
      key: {{ .Values.redis.auth.passwordKey }}
- name: MESHLOAD_REDIS
  value: {{ printf "redis://:$(MESHLOAD_REDIS_PASSWORD)@%s:%d/0" (include "meshload.redisHost" .) (int .Values.redis.port) | quote }}
{{- end }}
{{- end }}

{{/* Environment every meshload container gets: a writable HOME on the /tmp volume (the root filesystem
is read-only), unbuffered logs, and where the pod runs (a worker's node goes into the report). */}}
{{- define "meshload.commonEnv" -}}
- name: HOME
  value: /tmp
- name: PYTHONUNBUFFERED
  value: "1"
- name: MESHLOAD_NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: MESHLOAD_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: MESHLOAD_POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end }}

{{/* Workers -------------------------------------------------------------------------------------- */}}

{{/* The hosts and CIDRs a worker accepts as targets (--allow-target): the values' targets, and the
echo Service of `helm test`. */}}
{{- define "meshload.allowTargets" -}}
{{- $allowed := list }}
{{- range .Values.targets }}
{{- if .cidr }}{{ $allowed = append $allowed .cidr }}{{ end }}
{{- range (default list .hosts) }}{{ $allowed = append $allowed . }}{{ end }}
{{- end }}
{{- if .Values.tests.enabled }}
{{- $allowed = append $allowed (include "meshload.testEchoName" .) }}
{{- end }}
{{- toJson (uniq $allowed) }}
{{- end }}

{{/* The worker pods' label selector as text ("k=v,k=v"), for the coordinator's pod listing. */}}
{{- define "meshload.workerSelector" -}}
{{- $labels := include "meshload.selectorLabels" (dict "root" . "component" "worker") | fromYaml }}
{{- $pairs := list }}
{{- range $key, $value := $labels }}{{ $pairs = append $pairs (printf "%s=%s" $key $value) }}{{ end }}
{{- join "," $pairs }}
{{- end }}

{{/* NetworkPolicy egress rules every meshload client needs: to Redis (this release's, or the
external one's addresses) and to cluster DNS. */}}
{{- define "meshload.egressToRedis" -}}
{{- if eq .Values.redis.mode "internal" }}
- to:
    - podSelector:
        matchLabels:
          {{- include "meshload.selectorLabels" (dict "root" . "component" "redis") | nindent 10 }}
  ports:
    - port: {{ .Values.redis.port }}
      protocol: TCP
{{- else }}
{{- range .Values.redis.external.egress }}
- to:
    - ipBlock:
        cidr: {{ .cidr }}
  ports:
    {{- range .ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- define "meshload.egressToDNS" -}}
- to:
    - namespaceSelector:
        {{- toYaml .Values.networkPolicy.dns.namespaceSelector | nindent 8 }}
      podSelector:
        {{- toYaml .Values.networkPolicy.dns.podSelector | nindent 8 }}
  ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- end }}

{{/* Coordinator ---------------------------------------------------------------------------------- */}}

{{/* The ServiceAccount of the coordinator (bound to the Role when rbac.create). */}}
{{- define "meshload.coordinatorServiceAccount" -}}{{ include "meshload.coordinatorName" . }}{{- end }}

{{- define "meshload.reportsClaim" -}}
{{- default (include "meshload.componentName" (list . "reports")) .Values.coordinator.reports.persistence.existingClaim }}
{{- end }}

{{/* The pod template of a coordinator run, shared by the Job and the CronJob.
Call with (dict "root" $ "run" .Values.job "planConfigMap" NAME "component" "coordinator"). */}}
{{- define "meshload.coordinatorPodTemplate" -}}
{{- $root := .root }}
{{- $values := $root.Values }}
{{- $run := .run }}
{{- $metrics := and $values.coordinator.metrics.enabled (eq $run.command "run") }}
{{- $podAnnotations := $values.coordinator.podAnnotations }}
{{- if $metrics }}
{{- $podAnnotations = merge (dict "prometheus.io/scrape" "true" "prometheus.io/port" (toString $values.coordinator.metrics.port) "prometheus.io/path" "/metrics") $podAnnotations }}
{{- end }}
metadata:
  {{- include "meshload.podMetadata" (dict "root" $root "component" "coordinator" "labels" $values.coordinator.podLabels "annotations" $podAnnotations) | nindent 2 }}
spec:
  serviceAccountName: {{ include "meshload.coordinatorServiceAccount" $root }}
  automountServiceAccountToken: {{ $values.rbac.create }}
  restartPolicy: Never
  securityContext:
    {{- include "meshload.podSecurityContext" (dict "ids" $values.securityContext) | nindent 4 }}
  {{- with $values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: coordinator
      image: {{ include "meshload.image" $root }}
      imagePullPolicy: {{ $values.image.pullPolicy }}
      workingDir: /reports
      args:
        {{- if eq $run.command "run" }}
        - run
        - --scenario
        - /etc/meshload/plan/plan.yaml
        {{- /* The worker Deployment scaled to at least N for the run, and back after it. */}}
        - --workers
        - {{ printf "k8s:%d" ($run.workers | int64) | quote }}
        {{- if $metrics }}
        - --metrics-port
        - {{ $values.coordinator.metrics.port | int64 | quote }}
        - --metrics-address
        - 0.0.0.0
        {{- end }}
        {{- else }}
        - study
        - /etc/meshload/plan/plan.yaml
        {{- end }}
        {{- range $run.args }}
        - {{ . | quote }}
        {{- end }}
      env:
        {{- include "meshload.redisEnv" $root | trim | nindent 8 }}
        {{- include "meshload.commonEnv" $root | nindent 8 }}
        - name: MESHLOAD_K8S_WORKER_DEPLOYMENT
          value: {{ include "meshload.workerName" $root }}
        - name: MESHLOAD_K8S_WORKER_SELECTOR
          value: {{ include "meshload.workerSelector" $root | quote }}
        {{- /* 0: not kept (meshload keeps a run's results in a Redis it was given by default). */}}
        - name: MESHLOAD_RESULTS_TTL
          value: {{ ternary $values.coordinator.resultsInRedis.ttl "0" $values.coordinator.resultsInRedis.enabled | quote }}
        {{- with $values.coordinator.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- if $metrics }}
      ports:
        - name: metrics
          containerPort: {{ $values.coordinator.metrics.port }}
          protocol: TCP
      {{- end }}
      resources:
        {{- toYaml $values.coordinator.resources | nindent 8 }}
      securityContext:
        {{- include "meshload.containerSecurityContext" $root | nindent 8 }}
      volumeMounts:
        - name: plan
          mountPath: /etc/meshload/plan
          readOnly: true
        - name: reports
          mountPath: /reports
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: plan
      configMap:
        name: {{ .planConfigMap }}
    - name: reports
      {{- if $values.coordinator.reports.persistence.enabled }}
      persistentVolumeClaim:
        claimName: {{ include "meshload.reportsClaim" $root }}
      {{- else }}
      emptyDir: {}
      {{- end }}
    - name: tmp
      emptyDir: {}
  {{- with $values.coordinator.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $values.coordinator.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $values.coordinator.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
