// Package handoff is the contract between the producer of escalation
// handoffs (mediationsvc) and their consumer (escalationsvc): the
// HandoffPackage JSON codec of the reference (format and decoding rules in
// docs/architecture.md#the-handoff-queue) and the Postgres queue table
// handoffs (migration 00003) with its Go API.
//
// # Producing
//
// The producer calls Enqueue inside the transaction that records its
// escalation (the transactional outbox). Enqueue appends the
// handoff_prepared audit row through pkg/audit (its id is the reference's
// handoff_event_id, the dedup key of everything phase 4 records), inserts
// the queue row, and issues pg_notify on Channel, which Postgres delivers
// only when the transaction commits. Nothing is queued if it rolls back.
//
// # Consuming
//
// Any number of consumers call Claim: a CTE selects due rows (pending, or
// parked whose retry time has come), oldest due first, with FOR UPDATE SKIP
// LOCKED, and an UPDATE … RETURNING marks them claimed by the caller until a
// claim deadline. Concurrent claimers never get the same row. A claim is a
// Lease (row id, owner, attempt number); every later transition (Complete,
// Park, Retry, Fail, Extend) names the lease and fails with ErrLeaseLost
// when the claim is no longer the caller's, so a consumer that lost its
// claim rolls back instead of recording twice. Rescue returns rows whose
// claim deadline passed (their claimer died) to the queue.
//
// Notifications are hints: they may be lost (a dropped LISTEN connection)
// and coalesce. Consumers must also poll.
//
// # States
//
//	pending --Claim--> claimed --Complete--> done     (dispatched, send_failed, parse failures)
//	                           --Park-----> parked   (unroutable, superseded; claimable again at next_attempt_at)
//	                           --Retry----> pending  (transient error, with a delay) or failed after too many
//	                           --Fail-----> failed
//	                           --Release--> pending  (the consumer is stopping; no error counted)
//	claimed --Rescue (deadline passed)--> pending, or failed after too many consecutive errors
//	parked, failed --Requeue (operator)--> pending
//
// Parked rows are ordered by their retry time like every other row, so
// they never starve rows that became due before them.
package handoff
