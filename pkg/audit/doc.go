// Package audit is the contract of Serbero's audit trail, the Postgres
// table mediation_events (migration 00002): the only code that names the
// table in SQL. Services append rows with Append inside the transaction
// that does what the row records, and read them with the helpers below.
// The rules are in docs/architecture.md#the-audit-trail; in short:
//
// # Writers
//
//   - mediationsvc: the mediation kinds (start attempts, verdicts, takes,
//     sessions, classifications, outbound messages, summaries,
//     escalations, reasoning failures, closures, the resolution report).
//   - pkg/handoff: handoff_prepared, with the handoff's queue row (only
//     there: Enqueue).
//   - escalationsvc: the phase 4 kinds, one family per handoff, keyed by
//     the payload's handoff_event_id.
//   - authsvc: the auth_retry_* kinds of the revalidation loop.
//
// (Until its wave-2 move, intakesvc still writes superseded_by_human and
// session_closed when Mostro resolves a dispute; mediationsvc takes that
// over by reacting to intakesvc's dispute stream.)
//
// # Kinds and payloads
//
// Every kind has a payload type here (two or three for a kind whose
// variants have different keys), so a key cannot be misspelt: the JSON
// keys are the reference daemon's, byte for byte, checked by a golden
// test. Kinds the reference defines but never writes have constants and
// no payload type.
//
// # Scope
//
// A row is session-scoped (session_id set), dispute-scoped (session_id
// NULL and payload_json->>'dispute_id' names the dispute: no session
// existed yet), or daemon-scoped (session_id NULL, about Serbero itself,
// the auth loop). Each payload type fixes its scope and Append refuses an
// event whose session_id contradicts it, or a dispute-scoped one without
// a dispute_id. The trail of a dispute is the rows of its sessions plus
// its dispute-scoped rows (Trail). An index on
// (payload_json->>'dispute_id', kind) WHERE session_id IS NULL serves the
// dispute-scoped lookups, and one on (payload_json->>'handoff_event_id')
// the phase 4 dedup probe (HasForHandoff).
//
// # Ordering
//
// Row ids grow in insert order; readers order by id. occurred_at is the
// writer's clock (unix seconds), kept for the record, never for ordering.
package audit
