// Package revalidation is the pure core of authsvc: the solver-authorization
// revalidation state machine. It does no I/O and reads no clock;
// Machine.Step maps (state, input, now) to (new state, audit rows, log
// lines, "check the node now"). The loop, the store and the RPCs wrap it.
// The rules are written down in docs/authorization.md; this comment is the
// map of the code.
//
// # States
//
//	                initial check passes (took_dispute): no audit row
//	    ┌─────────┐ ─────────────────────────────────────────► ┌────────────┐
//	───►│ Unknown │ ◄──────────────────────────────────────────│ Authorized │
//	    └─────────┘   a replica starts and the proof is old     └────────────┘
//	         │ initial check fails   (Started: a fresh initial   ▲        │
//	         │ (attempt 1:            check)                     │        │ loss reported, or a take
//	         │  auth_retry_attempt)                              │        │ refused or unanswered:
//	         ▼                                                   │        │ attempt 1 of a FRESH
//	  ┌──────────────┐  an attempt succeeds: auth_retry_recovered│        │ cycle (auth_retry_attempt)
//	  │ Unauthorized │ ──────────────────────────────────────────┘        │
//	  │              │ ◄──────────────────────────────────────────────────┘
//	  └──────────────┘ ◄──┐ an attempt fails: auth_retry_attempt;
//	         │  │         │ the wait doubles up to the max interval
//	         │  └─────────┘
//	         │ budget spent after a failed retry (attempt >= 2):
//	         │ auth_retry_terminated (exactly once)
//	         ▼
//	  ┌────────────┐  Reset (operator): back to Unauthorized, a fresh
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
// # The numbers
//
// Attempt 1 is the initial check (or the failure that starts a fresh
// cycle). After failed attempt n the wait is Config.InitialInterval doubled
// n-1 times, capped at Config.MaxInterval (60, 120, 240, 480, 960, 1920,
// 3600, 3600, … with the defaults). An attempt that starts adds its wait
// to the cycle's cumulative wait. After each failed retry (n >= 2) and its
// auth_retry_attempt {"attempt":n,"error":…} row: if n >= MaxAttempts or
// the cumulative wait >= MaxTotal, the state becomes Terminated with
// exactly one auth_retry_terminated {"attempt":n,"cumulative_secs":s}
// reporting that same attempt n. Attempt 1 never terminates a cycle, so
// MaxAttempts = 1 still runs attempt 2. A success writes
// auth_retry_recovered {"attempt":n}, except the initial check passing
// (Unknown → Authorized), which writes nothing.
//
// # What an attempt checks
//
// Mostro has no "am I a solver?" query. An attempt therefore
//
//  1. checks the node: its kind 38385 info event, fetched by relaygw, must
//     exist and advertise protocol version 1 or 2 (else the attempt fails
//     with evidence node_unreachable);
//  2. uses fresh take evidence: the newest take outcome reported after the
//     previous attempt ended. admin-took-dispute proves registration
//     (success); cant-do invalid_pubkey (for a dispute still initiated),
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
// the answer reveals the registration (the client side is pkg/authprobe).
// The probe id is published in the state, a prober claims it for a dispute
// (the first claimer wins; only the winner repeating its own claim for the
// same dispute is granted again), takes the dispute and reports the
// outcome with the probe id.
//
// Bounds: in Unauthorized the probe expires ProbeWait after it was granted
// if nobody claims it, and ClaimWait after a claim if no outcome arrives;
// the attempt then fails with evidence probe_unclaimed or probe_unanswered
// and the cycle backs off. In Unknown the probe is standing: no deadline
// until claimed (a quiet node has simply not been asked yet), and a
// claimed standing probe that is not answered within ClaimWait is replaced
// without counting an attempt.
//
// A report that names a probe that is no longer open (expired, replaced)
// is still a real take outcome and is treated as a plain observation.
package revalidation
