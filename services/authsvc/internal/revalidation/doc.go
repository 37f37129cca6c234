// Package revalidation is the pure core of authsvc: the solver-authorization
// revalidation state machine of the reference daemon (spec 20 §3), made real.
// It does no I/O and reads no clock; Machine.Step maps (state, input, now) to
// (new state, audit rows, log lines, "check the node now"). The loop, the
// store and the RPCs wrap it.
//
// # States
//
//	                initial check passes (took_dispute): no audit row
//	    ┌─────────┐ ─────────────────────────────────────────► ┌────────────┐
//	───►│ Unknown │                                             │ Authorized │
//	    └─────────┘                                             └────────────┘
//	         │ initial check fails                               ▲        │
//	         │ (attempt 1: auth_retry_attempt)                   │        │ loss reported, or a take
//	         ▼                                                   │        │ refused or unanswered:
//	  ┌──────────────┐  an attempt succeeds: auth_retry_recovered│        │ attempt 1 of a FRESH
//	  │ Unauthorized │ ──────────────────────────────────────────┘        │ cycle (auth_retry_attempt)
//	  │              │ ◄──────────────────────────────────────────────────┘
//	  └──────────────┘ ◄──┐ an attempt fails: auth_retry_attempt;
//	         │  │         │ the wait doubles up to the max interval
//	         │  └─────────┘
//	         │ budget spent after a failed attempt:
//	         │ auth_retry_terminated (exactly once)
//	         ▼
//	  ┌────────────┐  ResetTerminated (operator): back to Unauthorized, a fresh
//	  │ Terminated │  cycle (attempt counter and waits at 0), attempt 1 at once
//	  └────────────┘
//
// Evidence against that was observed before the proof the Authorized
// answer rests on (a late report of an older take) is stale: it is logged
// and counted, and changes nothing.
//
// Reports while Unauthorized or Terminated change nothing (a take outcome
// is remembered as the newest observation; fresh proof while Unauthorized
// only brings the next attempt forward to now, so recovery still goes
// through an attempt and its auth_retry_recovered row).
//
// # The numbers (the reference's, wired from [mediation])
//
// Attempt 1 is the initial check. After failed attempt n the wait is
// solver_auth_retry_initial_seconds doubled n-1 times, capped at
// solver_auth_retry_max_interval_seconds (60, 120, 240, 480, 960, 1920,
// 3600, 3600, …). An attempt that starts adds its wait to the cycle's
// cumulative wait. After each failed attempt and its auth_retry_attempt
// {"attempt":n,"error":…} row: if n >= solver_auth_retry_max_attempts or the
// cumulative wait >= solver_auth_retry_max_total_seconds, the state becomes
// Terminated with exactly one auth_retry_terminated
// {"attempt":n,"cumulative_secs":s} reporting that same attempt n. A success
// writes auth_retry_recovered {"attempt":n}, except the initial check
// passing (Unknown → Authorized), which writes nothing.
//
// # What an attempt checks
//
// Mostro has no "am I a solver?" query (spec 30 §1.7). An attempt therefore
//
//  1. checks the node: its kind 38385 info event, fetched by relaygw, must
//     exist and advertise protocol version 1 or 2 (else the attempt fails
//     with evidence node_unreachable);
//  2. uses fresh take evidence: the newest take outcome reported after the
//     previous attempt ended. admin-took-dispute proves registration
//     (success); cant-do invalid_pubkey (for an initiated dispute),
//     cant-do not_authorized, or no reply are evidence against (failure,
//     with that evidence as the error). Other cant-do reasons, and
//     invalid_pubkey for a dispute that was no longer initiated (Mostro
//     refuses every solver those), prove nothing;
//  3. without fresh conclusive evidence, grants mediationsvc one probe.
//
// # Probes
//
// A probe is permission for mediationsvc to take, for real, the next
// dispute it would mediate anyway, although the gate is not Authorized, so
// the answer reveals the registration. The probe id is published in the
// state (AuthState.probe_id), so every mediationsvc replica's prober sees it
// through WatchState. A prober that has an eligible dispute claims the probe
// for it with its claimer id (ClaimProbe; the first claim wins, the row lock
// makes it atomic, and a repeated claim is granted again only to the same
// claimer for the same dispute, so two replicas that picked the same dispute
// do not both take it), sends admin-take-dispute through relaygw, and
// reports the outcome with the probe id. If the take succeeded mediationsvc simply goes on with that
// dispute's session: the probe wastes nothing.
//
// Bounds: in Unauthorized the probe expires ProbeWait after it was granted
// if nobody claims it, and ClaimWait after a claim if no outcome arrives;
// the attempt then fails with evidence probe_unclaimed ("no eligible
// dispute, or no prober running") or probe_unanswered ("mediationsvc never
// answered"), counts like any failed attempt and the cycle backs off. So a
// cycle with no disputes at all terminates on its budget, as the reference
// does, and an operator resets it.
//
// In Unknown (the initial check, after the node check passed) the probe is
// standing: it has no deadline until claimed, because a fresh installation
// with no disputes has simply learned nothing yet, and the honest answer is
// Unknown, not a failure that would run the cycle out while the node is
// quiet. A claimed standing probe that is not answered within ClaimWait is
// replaced by a fresh one without counting an attempt.
//
// A report that names a probe that is no longer open (expired, replaced)
// is still a real take outcome and is treated as a plain observation.
package revalidation
