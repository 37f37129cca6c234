// Package dispatcher is escalationsvc's engine: the claim loop over the
// handoff queue (pkg/handoff) and the per-handoff pipeline. The rules are
// written in docs/escalation.md; this is how the code follows them.
//
// # The loop (Run)
//
// A replica claims at most as many handoffs as it has free workers, so
// work spreads over replicas and no handoff waits behind one replica's
// backlog. It wakes on:
//   - a NOTIFY on handoff.Channel (pkg/pglisten: a dedicated connection,
//     reconnected with backoff; after each reconnect it claims once, for
//     what committed meanwhile);
//   - a worker finishing while the last claim filled every free worker;
//   - the next parked row or claim deadline coming due;
//   - the poll ([escalation].dispatch_interval_seconds, jittered ±20 %),
//     the guarantee when notifications are lost.
//
// On each poll it also returns expired claims to the queue (the rescuer),
// and a heartbeat extends this replica's own claims every third of the
// claim timeout, so only a dead replica's claims expire.
//
// # The pipeline (Process)
//
// parse → dispute lookup (intakesvc's GetDispute) → supersession gate →
// route → body → sends → record, in the reference's order. Each ends in
// one queue transition, committed with its audit rows:
//
//	parse failure / orphan dispute   → escalation_dispatch_parse_failed, done
//	dispute resolved                 → escalation_superseded (once), parked
//	no recipient                     → escalation_dispatch_unroutable (once), parked
//	sends done                       → escalation_dispatches + escalation_dispatched +
//	                                   notifications, done (dispatched | send_failed)
//	DB error, intakesvc or relaygw   → pending again after a backoff (1 s doubling to 5 min),
//	unreachable                        retried until the outage ends (failed only when
//	                                   MaxErrors is set)
//
// An orphan is only ever intakesvc answering NotFound; intakesvc down, slow
// or failing is a transient error, so a handoff is never consumed or routed
// without the dispute's real state.
//
// Parked handoffs are evaluated again after a backoff (dispatch interval ×
// 2^(attempt−1), at most 1 h); unroutable ones at once when a replica starts
// with a routable configuration. Sends happen outside any transaction, one
// recipient after another, each with the idempotency key
// escalation_handoff:<handoff_event_id>:<recipient hex>: relaygw never sends
// a second DM for a key it has seen, so a handoff retried after a crash
// between send and record (at-least-once) reaches nobody twice.
//
// The dispatch's time is taken once, before the first send: it is the
// dispatch row's created_at and dispatched_at, the audit row's occurred_at
// and every notification's sent_at, as in the reference.
package dispatcher
