// Package engine is the mediation engine (phase 3): it follows
// intakesvc's change feed, opens a session for each eligible dispute
// (reasoning verdict first, then admin-take-dispute through relaygw, then
// the session), talks to both parties through the dispute chat, and ends
// every session in a summary for the solver or a handoff to a human
// (pkg/handoff, in the same transaction as the session's state change).
// It never moves funds and never closes disputes: the only Mostro action
// it sends is admin-take-dispute.
//
// Pieces, one file each:
//
//	feed.go     the change feed: new disputes, takeovers, resolutions
//	start.go    one start attempt: claim, gates, verdict, take, session
//	worker.go   one held session: outbox, ingest, rounds, timeout
//	chat.go     relaygw chat streams for the held sessions, and ingest
//	round.go    the mid-session evaluation and the party-message outbox
//	summary.go  the cooperative summary path
//	escalate.go the handoff chokepoint (recommend)
//	resolve.go  resolution and takeover: superseded_by_human, the report
//	report.go   the final resolution report, and the session leases
//	notify.go   solver DMs through relaygw, recorded in notifications
//
// Replicas share the work through the database: a start is claimed per
// dispute (mediation_disputes), a live session is leased to one replica
// at a time (mediation_sessions.lease_*, every write fenced by the lease
// term), and at most one live session exists per dispute (a unique
// index). Party messages and solver DMs carry relaygw idempotency keys, so
// a resend after a crash or a takeover is the same Nostr event. The state
// machine of a session is in package session; the behaviour is described
// in docs/mediation.md#the-engine.
package engine
