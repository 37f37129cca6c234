{{- /*
serbero.alertGroups: Serbero's Prometheus alert rules (the "groups:" of a rule
file), thresholds from .Values.prometheusRule. The one source of both the
PrometheusRule (prometheusrule.yaml) and deploy/monitoring/serbero-rules.yaml,
which is this rendered with the default values (make rules-generate; a chart
test fails when they differ). What each alert means and what to do:
docs/deploy.md#alerts.
*/ -}}
{{- define "serbero.alertGroups" -}}
{{- $p := .Values.prometheusRule -}}
{{- $t := $p.thresholds -}}
{{- $job := $p.jobRegex | default (printf "%s-.*" (include "serbero.fullname" .)) -}}
{{- $ctx := dict "p" $p -}}
groups:
  - name: serbero.relaygw
    rules:
      - alert: SerberoRelayDisconnected
        expr: serbero_relaygw_relay_connected == 0
        for: {{ $t.relayDisconnectedFor }}
        {{- include "serbero.alertMeta" (merge (dict "alert" "SerberoRelayDisconnected" "severity" "warning") $ctx) }}
          summary: >-
            {{`relaygw is not connected to {{ $labels.relay }}`}}
          description: >-
            {{`relaygw has been disconnected from {{ $labels.relay }} for`}} {{ $t.relayDisconnectedFor }}{{` or more; it keeps reconnecting with backoff. Dispute events and DM acknowledgements from this relay are missed until it is back.`}}
      - alert: SerberoNoRelayConnected
        expr: max by (namespace, job) (serbero_relaygw_relay_connected) == 0
        for: {{ $t.noRelayConnectedFor }}
        {{- include "serbero.alertMeta" (merge (dict "alert" "SerberoNoRelayConnected" "severity" "critical") $ctx) }}
          summary: >-
            relaygw is connected to no relay
          description: >-
            {{`relaygw ({{ $labels.job }}) has been connected to none of its relays for`}} {{ $t.noRelayConnectedFor }}{{` or more: no dispute is detected and every DM is undelivered.`}}
      - alert: SerberoRelaygwMissing
        expr: absent(serbero_relaygw_relay_connected{job=~{{ $job | quote }}})
        for: {{ $t.relaygwMissingFor }}
        {{- include "serbero.alertMeta" (merge (dict "alert" "SerberoRelaygwMissing" "severity" "critical") $ctx) }}
          summary: >-
            no relaygw is being scraped
          description: >-
            {{`No series of serbero_relaygw_relay_connected for`}} {{ $t.relaygwMissingFor }}{{`: relaygw is not running (scaled to 0, pending, crash-looping) or not scraped, so the other alerts on it cannot fire.`}}
      - alert: SerberoMostroDisputeStreamSilent
        expr: time() - max by (namespace, job) (serbero_relaygw_dispute_last_event_timestamp_seconds) > {{ mul $t.disputeSilenceMinutes 60 }}
        for: 1m
        {{- include "serbero.alertMeta" (merge (dict "alert" "SerberoMostroDisputeStreamSilent" "severity" "warning") $ctx) }}
          summary: >-
            no new dispute event from the Mostro node for {{ $t.disputeSilenceMinutes }} minutes
          description: >-
            {{`relaygw has stored no new dispute event (kind 38386) of the Mostro node for {{ $value | humanizeDuration }} (threshold`}} {{ $t.disputeSilenceMinutes }}{{` minutes, counted from relaygw's start): the node may be down, or the relays may have stopped carrying its events. On a quiet node this can be normal.`}}
      - alert: SerberoDMDeliveryFailing
        expr: |
          sum by (namespace, job) (rate(serbero_relaygw_dms_total{result=~"undelivered|republished_undelivered"}[{{ $t.dmFailureWindow }}]))
            / sum by (namespace, job) (rate(serbero_relaygw_dms_total[{{ $t.dmFailureWindow }}]))
            > {{ $t.dmFailureRatio }}
        for: {{ $t.dmFailureFor }}
        {{- include "serbero.alertMeta" (merge (dict "alert" "SerberoDMDeliveryFailing" "severity" "warning") $ctx) }}
          summary: >-
            relaygw DMs are not reaching any relay
          description: >-
            {{`{{ $value | humanizePercentage }} of relaygw's DMs over the last`}} {{ $t.dmFailureWindow }}{{` were accepted by no relay (threshold`}} {{ mulf $t.dmFailureRatio 100 }}{{`%).`}}
  - name: serbero.intakesvc
    rules:
      - alert: SerberoSolverNotificationsFailing
        expr: |
          sum by (namespace, job) (rate(serbero_intakesvc_notifications_failed_total[{{ $t.dmFailureWindow }}]))
            / (
              sum by (namespace, job) (rate(serbero_intakesvc_notifications_failed_total[{{ $t.dmFailureWindow }}]))
              + (sum by (namespace, job) (rate(serbero_intakesvc_notifications_sent_total[{{ $t.dmFailureWindow }}]))
                 or 0 * sum by (namespace, job) (rate(serbero_intakesvc_notifications_failed_total[{{ $t.dmFailureWindow }}])))
            )
            > {{ $t.dmFailureRatio }}
        for: {{ $t.dmFailureFor }}
        {{- include "serbero.alertMeta" (merge (dict "alert" "SerberoSolverNotificationsFailing" "severity" "warning") $ctx) }}
          summary: >-
            solver notifications are failing
          description: >-
            {{`{{ $value | humanizePercentage }} of intakesvc's solver notification DMs over the last`}} {{ $t.dmFailureWindow }}{{` failed (threshold`}} {{ mulf $t.dmFailureRatio 100 }}{{`%); they are retried, but solvers are not told about new disputes meanwhile.`}}
  - name: serbero.escalationsvc
    rules:
      - alert: SerberoEscalationDispatchFailing
        expr: |
          sum by (namespace, job) (rate(serbero_escalationsvc_send_failed_total[{{ $t.dmFailureWindow }}]))
            / (
              sum by (namespace, job) (rate(serbero_escalationsvc_send_failed_total[{{ $t.dmFailureWindow }}]))
              + sum by (namespace, job) (rate(serbero_escalationsvc_dispatched_total[{{ $t.dmFailureWindow }}]))
            )
            > {{ $t.dmFailureRatio }}
        for: {{ $t.dmFailureFor }}
        {{- include "serbero.alertMeta" (merge (dict "alert" "SerberoEscalationDispatchFailing" "severity" "warning") $ctx) }}
          summary: >-
            escalation handoffs reach no recipient
          description: >-
            {{`{{ $value | humanizePercentage }} of the handoffs escalationsvc dispatched over the last`}} {{ $t.dmFailureWindow }}{{` reached no recipient (send_failed; threshold`}} {{ mulf $t.dmFailureRatio 100 }}{{`%).`}}
      - alert: SerberoHandoffQueueStale
        expr: max by (namespace, job) (serbero_escalationsvc_oldest_pending_age_seconds) > {{ mul $t.handoffQueueAgeMinutes 60 }}
        for: 1m
        {{- include "serbero.alertMeta" (merge (dict "alert" "SerberoHandoffQueueStale" "severity" "warning") $ctx) }}
          summary: >-
            the oldest due handoff has waited more than {{ $t.handoffQueueAgeMinutes }} minutes
          description: >-
            {{`The oldest due handoff has waited {{ $value | humanizeDuration }} (threshold`}} {{ $t.handoffQueueAgeMinutes }}{{` minutes): escalationsvc is not dispatching (down, not ready, relaygw failing) or cannot keep up.`}}
      - alert: SerberoHandoffsFailed
        expr: sum by (namespace, job) (serbero_escalationsvc_queue_depth{status="failed"}) > 0
        for: {{ $t.handoffsFailedFor }}
        {{- include "serbero.alertMeta" (merge (dict "alert" "SerberoHandoffsFailed" "severity" "warning") $ctx) }}
          summary: >-
            handoffs were given up on
          description: >-
            {{`{{ $value }} handoff(s) are in status failed: escalationsvc gave up after repeated errors and an operator must look at them.`}}
  - name: serbero.authsvc
    rules:
      - alert: SerberoSolverNotAuthorized
        expr: max by (namespace, job) (serbero_authsvc_state{state=~"unknown|unauthorized"}) == 1
        for: {{ $t.notAuthorizedFor }}
        {{- include "serbero.alertMeta" (merge (dict "alert" "SerberoSolverNotAuthorized" "severity" "warning") $ctx) }}
          summary: >-
            Serbero is not authorized as a solver
          description: >-
            {{`authsvc has answered unknown or unauthorized for`}} {{ $t.notAuthorizedFor }}{{` or more: mediationsvc opens no mediation session meanwhile. unknown on a quiet node ends with the first dispute taken; unauthorized means the node refused Serbero as a solver and the retry cycle is running.`}}
      - alert: SerberoSolverAuthorizationTerminated
        expr: max by (namespace, job) (serbero_authsvc_state{state="terminated"}) == 1
        for: {{ $t.terminatedFor }}
        {{- include "serbero.alertMeta" (merge (dict "alert" "SerberoSolverAuthorizationTerminated" "severity" "critical") $ctx) }}
          summary: >-
            the solver authorization retry cycle terminated
          description: >-
            {{`authsvc spent its retry budget without proof that Serbero is a solver on the Mostro node; nothing retries until an operator runs serbero ctl auth reset. No mediation session opens meanwhile.`}}
  - name: serbero.mediationsvc
    rules:
      - alert: SerberoReasoningUnhealthy
        expr: serbero_mediationsvc_reasoning_healthy == 0
        for: {{ $t.reasoningUnhealthyFor }}
        {{- include "serbero.alertMeta" (merge (dict "alert" "SerberoReasoningUnhealthy" "severity" "warning") $ctx) }}
          summary: >-
            {{`the reasoning provider {{ $labels.provider }} fails its health check`}}
          description: >-
            {{`mediationsvc's health check of the reasoning provider {{ $labels.provider }} has failed for`}} {{ $t.reasoningUnhealthyFor }}{{` or more; mediation cannot classify or summarise meanwhile.`}}
  - name: serbero.services
    rules:
      - alert: SerberoTargetDown
        expr: up{job=~{{ $job | quote }}} == 0
        for: {{ $t.downFor }}
        {{- include "serbero.alertMeta" (merge (dict "alert" "SerberoTargetDown" "severity" "critical") $ctx) }}
          summary: >-
            {{`{{ $labels.job }} {{ $labels.instance }} is down`}}
          description: >-
            {{`Prometheus has failed to scrape {{ $labels.instance }} of {{ $labels.job }} for`}} {{ $t.downFor }}{{` or more: the process is not running or its metrics port is unreachable.`}}
      - alert: SerberoNotReady
        expr: serbero_ready == 0
        for: {{ $t.notReadyFor }}
        {{- include "serbero.alertMeta" (merge (dict "alert" "SerberoNotReady" "severity" "warning") $ctx) }}
          summary: >-
            {{`{{ $labels.job }} {{ $labels.instance }} is not ready`}}
          description: >-
            {{`{{ $labels.instance }} of {{ $labels.job }} has failed its readiness check (Postgres reachable, schema at the version the binary expects) for`}} {{ $t.notReadyFor }}{{` or more, so it receives no traffic.`}}
{{- end }}

{{- /* serbero.alertMeta: an alert's labels and the start of its annotations (runbook_url; summary and description follow). */ -}}
{{- define "serbero.alertMeta" }}
        labels:
          severity: {{ .severity }}
          {{- with .p.alertLabels }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
        annotations:
          runbook_url: {{ printf "%s#%s" .p.runbookBaseURL (lower .alert) }}
{{- end }}
