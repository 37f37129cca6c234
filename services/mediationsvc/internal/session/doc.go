// Package session is the pure core of a mediation session: its states and
// the legal moves between them, rounds and staleness, the transcript the
// model sees, the party-response timeout, the solver routing rule, the
// start backoff and the exact texts sent to parties and solvers. It does no
// I/O and reads no clock (times are passed in as Unix seconds); the engine
// and its store wrap it. The rules are written down in docs/mediation.md
// (Session states); this comment is the map of the code.
//
// # States
//
//	    ┌─────────┐ (reserved: a session is inserted at
//	    │ opening │  awaiting_response, after a successful take)
//	    └─────────┘
//	         │
//	         ▼
//	┌───────────────────┐  follow-up sent  ┌───────────────────┐
//	│ awaiting_response │ ◄─────────────── │ follow_up_pending │
//	└───────────────────┘                  └───────────────────┘
//	         │ the model says summarize              ▲
//	         ▼                                       │
//	  ┌────────────┐  ask again (reserved)           │
//	  │ classified │ ────────────────────────────────┘
//	  └────────────┘
//	         │ summary requested
//	         ▼
//	┌─────────────────┐  solver DM sent  ┌───────────────────┐       ┌────────┐
//	│ summary_pending │ ───────────────► │ summary_delivered │ ────► │ closed │
//	└─────────────────┘                  └───────────────────┘       └────────┘
//	                                                                  ▲    ▲
//	any live state ──► ┌────────────────────────┐                     │    │
//	(escalate)         │ escalation_recommended │ ────────────────────┘    │
//	                   └────────────────────────┘                          │
//	any live state ──► ┌─────────────────────┐                             │
//	(resolved          │ superseded_by_human │ ────────────────────────────┘
//	 outside)          └─────────────────────┘
//
// The live states are opening, awaiting_response, classified,
// follow_up_pending and summary_pending (State.Live): a live session is
// polled for replies, swept for timeouts and blocks a new session for its
// dispute. The same five are the ones that may escalate or be superseded
// (State.Escalatable). Only closed is terminal; no state moves to itself.
// CanTransition is the whole table; Sources(to) is its column, for the
// conditional UPDATE that makes every move exactly-once in the database
// (an escalation that finds the row already escalated changes nothing).
//
// # Rounds
//
// A round is one fresh reply from each party: RoundCount is the smaller of
// the two parties' fresh-reply counts. A reply is stale (IsStale) when it
// is strictly older than the newest one already seen from its party; stale
// replies are kept for audit but count for nothing. RoundLimitReached is
// round_count >= max_rounds, so max_rounds 0 escalates on the first fresh
// reply.
//
// # Transcript
//
// Transcript keeps the newest TranscriptCap non-stale messages, oldest
// first by inner created_at then row id, and tags them serbero (outbound)
// or by the inbound party. Inbound rows of no known party are dropped.
//
// # Timeout, routing, backoff
//
// PartyTimedOut measures from the latest of the session start and the two
// parties' last-seen times; either party's activity restarts it for both.
// Recipients targets the dispute's assigned solver when it is configured,
// and otherwise broadcasts to every configured solver (FellBack says a set
// but unknown assignee was ignored). StartBackoff doubles the wait between
// failed start attempts of a dispute up to a cap.
//
// # Texts
//
// OpeningBody, FollowUpBody, SummaryDM, SessionEscalationDM,
// DisputeEscalationDM, Narrative and ReportDM build every text byte for
// byte as docs/mediation.md shows them (the dash is U+2014).
package session
