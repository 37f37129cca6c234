-- Phase 4 (escalationsvc).
--
-- handoffs: the queue between mediationsvc (producer, pkg/handoff.Enqueue in
-- the same transaction as its escalation) and escalationsvc (consumer, any
-- number of replicas claiming with FOR UPDATE SKIP LOCKED). One row per
-- handoff_prepared audit event; handoff_event_id is that event's id, the
-- reference's dedup key. payload_json is the package exactly as the producer
-- wrote it (text, not jsonb: a malformed payload must survive to be reported
-- as deserialize_failed); the typed columns are filled from it when it
-- parses, for operators and the admin API.
--
-- escalation_dispatches: one row per dispatched handoff (docs/architecture.md).
-- Append-only. fallback_broadcast keeps the reference's 0/1 semantics.

-- +goose Up
CREATE TABLE handoffs (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    handoff_event_id   BIGINT NOT NULL UNIQUE REFERENCES mediation_events (id),
    -- HandoffPackage fields; NULL only when payload_json does not parse
    -- (dispute_id then holds the best-effort id, if any).
    dispute_id         TEXT,
    session_id         TEXT REFERENCES mediation_sessions (session_id),
    trigger            TEXT,
    evidence_refs      TEXT[],
    prompt_bundle_id   TEXT,
    policy_hash        TEXT,
    rationale_refs     TEXT[],
    assembled_at       BIGINT,
    payload_json       TEXT NOT NULL,
    -- Queue state. pending -> claimed -> done | parked | failed | pending
    -- (transient error); parked -> claimed when next_attempt_at comes;
    -- claimed -> pending when claim_deadline passes (the rescuer).
    status             TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'claimed', 'done', 'parked', 'failed')),
    attempts           INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    consecutive_errors INTEGER NOT NULL DEFAULT 0 CHECK (consecutive_errors >= 0),
    next_attempt_at    TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    claimed_by         TEXT,
    claimed_at         TIMESTAMPTZ,
    claim_deadline     TIMESTAMPTZ,
    parked_reason      TEXT CHECK (parked_reason IN ('unroutable', 'superseded')),
    last_error         TEXT,
    outcome            TEXT
        CHECK (outcome IN ('dispatched', 'send_failed', 'deserialize_failed', 'orphan_dispute_reference')),
    created_at         TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    finished_at        TIMESTAMPTZ,
    CONSTRAINT handoffs_claim_state CHECK (
        (status = 'claimed') = (claimed_by IS NOT NULL AND claim_deadline IS NOT NULL)),
    CONSTRAINT handoffs_done_state CHECK ((status = 'done') = (outcome IS NOT NULL)),
    CONSTRAINT handoffs_parked_state CHECK ((status = 'parked') = (parked_reason IS NOT NULL))
);
-- The claim scan: due rows, oldest due first.
CREATE INDEX idx_handoffs_due ON handoffs (next_attempt_at, id) WHERE status IN ('pending', 'parked');
-- The rescuer: expired claims.
CREATE INDEX idx_handoffs_claimed ON handoffs (claim_deadline) WHERE status = 'claimed';
CREATE INDEX idx_handoffs_status ON handoffs (status, id);
CREATE INDEX idx_handoffs_dispute ON handoffs (dispute_id);

CREATE TABLE escalation_dispatches (
    dispatch_id        TEXT PRIMARY KEY,
    dispute_id         TEXT NOT NULL REFERENCES disputes (dispute_id),
    session_id         TEXT REFERENCES mediation_sessions (session_id),
    handoff_event_id   BIGINT NOT NULL REFERENCES mediation_events (id),
    target_solver      TEXT NOT NULL,
    dispatched_at      BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    status             TEXT NOT NULL DEFAULT 'dispatched' CHECK (status IN ('dispatched', 'send_failed')),
    fallback_broadcast SMALLINT NOT NULL DEFAULT 0 CHECK (fallback_broadcast IN (0, 1))
);
CREATE INDEX idx_escalation_dispatches_dispute ON escalation_dispatches (dispute_id);
CREATE UNIQUE INDEX idx_escalation_dispatches_handoff ON escalation_dispatches (handoff_event_id);

-- +goose Down
DROP TABLE escalation_dispatches;
DROP TABLE handoffs;
