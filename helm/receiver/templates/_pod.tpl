{{/* The pod template shared by the Deployment and the StatefulSet. */}}
{{- define "receiver.podTemplate" -}}
{{- include "receiver.checkGracePeriod" . -}}
metadata:
  labels:
    {{- include "receiver.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include "receiver.toml" . | sha256sum }}
    checksum/secret: {{ .Values.secrets | toJson | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "receiver.serviceAccountName" . }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: receiver
      image: {{ include "receiver.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - serve
        - --config
        - /etc/receiver/receiver.toml
      {{- with .Values.env }}
      env:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.envFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      ports:
        - name: http
          containerPort: {{ .Values.config.server.port }}
          protocol: TCP
        {{- if and .Values.config.admin .Values.config.admin.enabled }}
        - name: admin
          containerPort: {{ .Values.config.admin.port }}
          protocol: TCP
        {{- end }}
      startupProbe:
        httpGet:
          path: /livez
          port: http
        periodSeconds: {{ .Values.probes.startup.periodSeconds }}
        timeoutSeconds: {{ .Values.probes.startup.timeoutSeconds }}
        failureThreshold: {{ .Values.probes.startup.failureThreshold }}
      livenessProbe:
        httpGet:
          path: /livez
          port: http
        initialDelaySeconds: {{ .Values.probes.liveness.initialDelaySeconds }}
        periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
        timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
        failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        initialDelaySeconds: {{ .Values.probes.readiness.initialDelaySeconds }}
        periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
        timeoutSeconds: {{ .Values.probes.readiness.timeoutSeconds }}
        failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
      {{- if gt (int .Values.preStopSleepSeconds) 0 }}
      lifecycle:
        preStop:
          exec:
            command: ["sleep", {{ .Values.preStopSleepSeconds | toString | quote }}]
      {{- end }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/receiver/receiver.toml
          subPath: receiver.toml
          readOnly: true
        - name: secrets
          mountPath: {{ include "receiver.secretDir" . }}
          readOnly: true
        - name: data
          mountPath: {{ include "receiver.dataDir" . }}
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: config
      configMap:
        name: {{ include "receiver.fullname" . }}
        items:
          - key: receiver.toml
            path: receiver.toml
    - name: secrets
      secret:
        secretName: {{ include "receiver.secretName" . }}
        defaultMode: 0440
        {{- if .Values.secrets.existingSecret }}
        {{- $k := .Values.secrets.existingSecretKeys }}
        items:
          - key: {{ $k.keys }}
            path: keys
          {{- if include "receiver.hasAkSk" . }}
          - key: {{ $k.ak }}
            path: ak
          - key: {{ $k.sk }}
            path: sk
          {{- end }}
          {{- if include "receiver.hasIamPassword" . }}
          - key: {{ $k.iamPassword }}
            path: iam_password
          {{- end }}
          {{- with include "receiver.intakeUrlKey" . }}
          - key: {{ . }}
            path: intake_url
          {{- end }}
          {{- with include "receiver.consoleTokensKey" . }}
          - key: {{ . }}
            path: console_tokens
          {{- end }}
          {{- range include "receiver.sinkSecrets" . | fromJsonArray }}
          - key: {{ .key }}
            path: {{ .file }}
          {{- end }}
        {{- end }}
    - name: tmp
      emptyDir:
        sizeLimit: {{ .Values.tmpSizeLimit }}
    {{- if not (include "receiver.stateful" .) }}
    - name: data
      emptyDir: {}
    {{- end }}
  {{- if .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml .Values.topologySpreadConstraints | nindent 4 }}
  {{- else if .Values.topologySpread.enabled }}
  topologySpreadConstraints:
    {{- range .Values.topologySpread.topologyKeys }}
    - maxSkew: {{ $.Values.topologySpread.maxSkew }}
      topologyKey: {{ . }}
      whenUnsatisfiable: {{ $.Values.topologySpread.whenUnsatisfiable }}
      labelSelector:
        matchLabels:
          {{- include "receiver.selectorLabels" $ | nindent 10 }}
    {{- end }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
