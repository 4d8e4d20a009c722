{{/* The release's object name: "<release>" when it already names the chart, else "<release>-tracedapp-operator", cut to 63. */}}
{{- define "tracedapp-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tracedapp-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tracedapp-operator.labels" -}}
{{ include "tracedapp-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "tracedapp-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tracedapp-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The rules the operator needs on TracedApps and their children, nothing more. */}}
{{- define "tracedapp-operator.rules" -}}
# TracedApps: read and watch; write only their status.
- apiGroups: [tracedapp.dev]
  resources: [tracedapps]
  verbs: [get, list, watch]
- apiGroups: [tracedapp.dev]
  resources: [tracedapps/status]
  verbs: [patch]
# Children, read from watches and applied server-side (creating one by apply needs create
# as well as patch); `get` only for a name that is not in the watch cache, to make sure an
# existing object of that name is this TracedApp's before anything is applied.
# Collector ConfigMaps of old configs are deleted. Nothing else is ever deleted: owner
# references let the garbage collector remove children with their TracedApp.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [services, serviceaccounts]
  verbs: [get, list, watch, create, patch]
# Deployments are deleted once, with their pods left running (propagationPolicy Orphan), when
# one made by an older operator must move to the current selector (selectors cannot change).
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
# ReplicaSets' metadata: the owner chain that tells an app's own pods from look-alikes.
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [list, watch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, patch]
# Their pods: read from a watch, to say why they are not ready and where each collector
# serves its own metrics (read over the pod network for export health; the NetworkPolicy
# above admits only the operator to that port).
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
# Events about TracedApps.
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end -}}
