// Package escalationsvc turns escalation handoffs into escalation_handoff/v1
// DMs to human solvers (phase 4; the rules are in docs/escalation.md).
//
// Handoffs arrive in the shared handoff queue (pkg/handoff), written by
// mediationsvc in the transaction of its escalation. Any number of
// escalationsvc replicas claim them (FOR UPDATE SKIP LOCKED), woken by
// LISTEN/NOTIFY within milliseconds of the commit and by a jittered poll
// every [escalation].dispatch_interval_seconds as the fallback. Each handoff
// goes through the reference's pipeline (parse, dispute lookup over
// intakesvc's GetDispute, supersession gate, routing, body, sends through
// relaygw with idempotency keys, one transaction recording the dispatch
// and its audit row and consuming the queue row). Handoffs that cannot be
// routed yet, or whose dispute is resolved, are parked with a backoff
// instead of being rescanned first, so they never starve newer ones. The
// admin API (internal/server) lists, shows and requeues handoffs, and
// answers even with [escalation].enabled = false.
//
// Layout: escalationsvc.go (Deps, New, Register, Run), config.go (Config),
// internal/server (gRPC handlers), internal/dispatcher (the loop and the
// pipeline), internal/route (who receives a handoff, the DM body),
// internal/store (SQL), internal/metrics (Prometheus collectors).
package escalationsvc
