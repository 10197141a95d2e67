{{/*
The release's base name: the release name when it already says ipv6-migration-operator, so that the release
"ipv6-migration-operator" names every object as config/default does.
*/}}
{{- define "ipv6-migration-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ipv6-migration-operator.managerName" -}}
{{- printf "%s-controller-manager" (include "ipv6-migration-operator.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ipv6-migration-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ipv6-migration-operator.managerName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* What selects the manager's pods: the Deployment, the metrics Service and the anti-affinity. */}}
{{- define "ipv6-migration-operator.selectorLabels" -}}
control-plane: controller-manager
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ipv6-migration-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "ipv6-migration-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Three quarters of the memory limit (Mi or Gi), unless node.maxOldSpaceSize says otherwise. */}}
{{- define "ipv6-migration-operator.maxOldSpaceSize" -}}
{{- if .Values.node.maxOldSpaceSize -}}
{{- .Values.node.maxOldSpaceSize -}}
{{- else -}}
{{- $limit := toString (dig "limits" "memory" "" .Values.resources) -}}
{{- $mib := 0 -}}
{{- if hasSuffix "Gi" $limit -}}
{{- $mib = mul (trimSuffix "Gi" $limit | atoi) 1024 -}}
{{- else if hasSuffix "Mi" $limit -}}
{{- $mib = trimSuffix "Mi" $limit | atoi -}}
{{- end -}}
{{- if gt (int $mib) 0 -}}
{{- div (mul $mib 3) 4 -}}
{{- end -}}
{{- end -}}
{{- end -}}
