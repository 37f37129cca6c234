// Package relaygw is the Nostr gateway: it owns every relay connection and
// the only copy of Serbero's secret key. Every other service asks it to send
// (DMs, Mostro requests, chat lines) and subscribes to what it receives
// (dispute events, chat lines). docs/relaygw.md describes the gateway
// (its shape, failure reasons, bounds, idempotency keys, retention) and
// docs/mostro-protocol.md the protocol rules it applies.
//
// Shape. relaygw.go holds Deps, New, Register and Run; config.go its
// Config (mapped from the configuration file in internal/runner); the gRPC
// handlers live in internal/server, the SQL in internal/store, and each
// internal package below decides one thing. Failures callers must classify
// carry a relaygwv1.SendErrorReason (internal/reason; callers use
// pkg/relaygwclient).
//
// Key custody (internal/identity). Serbero's secret key comes in as a
// config.Secret (hex or nsec), is parsed once and never leaves the
// Identity: no accessor returns it, every print shows the public key, a bad
// key is reported without echoing it. Idempotency fingerprints are HMACs
// under a key derived from the secret (HKDF), so the database never holds
// DM or chat bodies in clear or in a guessable hash.
//
// Relay pool (internal/pool). One connection loop per relay (capped
// exponential backoff with jitter) on relaygw's own websocket client,
// pkg/mostro/relayconn (messages above 128 KiB dropped unread, each
// subscription's undelivered events bounded in bytes, drops counted in
// serbero_relaygw_relay_messages_dropped_total). Each subscription is a
// Spec, sent as its own REQ, whose filters are rebuilt on every
// (re)subscribe: from a durable per-relay cursor in relaygw_cursors
// (newest created_at handled, capped at now, minus
// [relaygw].resubscribe_margin_seconds) for dispute events; from now minus
// [relaygw].giftwrap_lookback_seconds for gift wraps (back-dated up to two
// days). Relays cap what they answer per REQ (newest first), so the dispute
// and chat subscriptions page backwards (until + limit) until a page
// brings nothing new, and a cursor moves only once the whole window was
// read. A handler error (a transient failure, e.g. the database is down)
// ends the subscription on that relay; it is re-sent after a backoff from
// the unchanged cursor, so the event comes again. Events are deduplicated
// by id in memory and durably where it matters (dispute event ids, chat
// inner ids). Publishing fans out to every relay and reports each outcome;
// a send succeeds when one relay accepted it. Health: GetRelayStatus and
// serbero_relaygw_relay_* metrics. The rules: docs/relaygw.md.
//
// Everything a relay delivers is checked before it is trusted (kind,
// author, id, signature, size bounds and storable text: internal/verify;
// the protocol's chat validation order; transport.Open's checks for Mostro
// replies); refusals are logged with ids only and counted in
// serbero_relaygw_events_rejected_total and
// serbero_relaygw_chat_lines_rejected_total, never retried.
//
// DMs (internal/dm): NIP-17 via pkg/mostro/dm; the signed gift wrap is
// stored under the idempotency key before it is published, so a retry
// republishes the identical event (or answers duplicate when it was
// delivered) and never sends a second, different message. Keys are
// validated first (internal/reason). Concurrent Sends share one insert
// statement (group commit; a record Postgres refuses is retried alone, so
// it fails alone) and delivery marks are written in batches. `go test -run '^$' -bench . -benchtime 20000x
// ./services/relaygw/internal/dm/` on the 2-core development machine: a
// DM costs ~0.22 ms of raw crypto (Serbero's conversation keys cached) and
// ~0.26-0.28 ms through the gateway, an overhead of 15-19 % (about 3700
// DMs/s per core).
//
// Dispute stream (internal/disputes): verified kind 38386 events stored
// once under a bigserial cursor (appends serialised by an advisory lock,
// so cursors become visible in order); StreamDisputeEvents replays after
// the caller's cursor, then follows new ones. The first start (no cursor
// anywhere) reads from now minus the margin, or minus
// [relaygw].dispute_backfill_seconds; events created before it are
// streamed with backfill set (table relaygw_dispute_start).
//
// Mostro requests (internal/mostroreq, internal/mostroinfo): v1 or v2 and
// the proof of work from the node's cached kind 38385 event; replies
// correlated by sender, message id, freshness and dispute id.
// MostroAction has no fund-moving value; pkg/mostro/transport refuses to
// build admin-settle and admin-cancel anyway.
//
// Chat (internal/chat): channels registered durably by trade pubkey, keys
// re-derived at start, retired by RetireChatChannels (durably); the active
// ones split into chunks of at most 100 channels, each chunk its own v2
// and v1 REQs; v2 cursors per channel and relay (relaygw_chat_cursors).
// Inbound lines are verified before the rate limit, which counts only the
// verified sender's lines per form; stored once per inner id; outbound
// lines idempotent like DMs.
//
// Retention (internal/retention): old dispute events, chat lines and
// idempotency records are deleted in batches under an advisory lock,
// never what dedup or a recent consumer still needs.
//
// Dev mode (devrelay): with Deps.Dev and no [[relays]], Run starts an
// embedded relay on [relaygw].dev_relay_listen and connects to it.
package relaygw
