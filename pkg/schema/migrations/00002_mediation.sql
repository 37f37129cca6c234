-- Phase 3 (mediationsvc) tables, as the reference daemon has them, plus the
-- parties' trade pubkeys so relaygw can re-derive chat keys after any
-- restart (no secret is stored). mediation_events is the audit trail
-- (contract: pkg/audit, docs/architecture.md#the-audit-trail); the id of a
-- handoff_prepared row is the handoff's handoff_event_id.

-- +goose Up
CREATE TABLE mediation_sessions (
    session_id                 TEXT PRIMARY KEY,
    dispute_id                 TEXT NOT NULL REFERENCES disputes (dispute_id),
    state                      TEXT NOT NULL CHECK (state IN (
        'opening', 'awaiting_response', 'classified', 'follow_up_pending', 'summary_pending',
        'summary_delivered', 'escalation_recommended', 'superseded_by_human', 'closed')),
    round_count                BIGINT NOT NULL DEFAULT 0,
    prompt_bundle_id           TEXT NOT NULL,
    policy_hash                TEXT NOT NULL,
    instructions_version       TEXT,
    assigned_solver            TEXT,
    current_classification     TEXT,
    current_confidence         DOUBLE PRECISION,
    buyer_shared_pubkey        TEXT,
    seller_shared_pubkey       TEXT,
    buyer_trade_pubkey         TEXT,
    seller_trade_pubkey        TEXT,
    buyer_last_seen_inner_ts   BIGINT,
    seller_last_seen_inner_ts  BIGINT,
    started_at                 BIGINT NOT NULL,
    last_transition_at         BIGINT NOT NULL,
    round_count_last_evaluated BIGINT NOT NULL DEFAULT 0,
    consecutive_eval_failures  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX idx_mediation_sessions_dispute_id ON mediation_sessions (dispute_id);
CREATE INDEX idx_mediation_sessions_state ON mediation_sessions (state);

CREATE TABLE mediation_messages (
    id                     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id             TEXT NOT NULL REFERENCES mediation_sessions (session_id),
    direction              TEXT NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    party                  TEXT NOT NULL CHECK (party IN ('buyer', 'seller')),
    shared_pubkey          TEXT NOT NULL,
    inner_event_id         TEXT NOT NULL,
    inner_event_created_at BIGINT NOT NULL,
    outer_event_id         TEXT,
    content                TEXT NOT NULL,
    prompt_bundle_id       TEXT,
    policy_hash            TEXT,
    persisted_at           BIGINT NOT NULL,
    stale                  SMALLINT NOT NULL DEFAULT 0 CHECK (stale IN (0, 1))
);
CREATE UNIQUE INDEX uq_mediation_messages_inner_event ON mediation_messages (session_id, inner_event_id);
CREATE INDEX idx_mediation_messages_session ON mediation_messages (session_id);
CREATE INDEX idx_mediation_messages_direction ON mediation_messages (direction);

CREATE TABLE reasoning_rationales (
    rationale_id     TEXT PRIMARY KEY,
    session_id       TEXT REFERENCES mediation_sessions (session_id),
    provider         TEXT NOT NULL,
    model            TEXT NOT NULL,
    prompt_bundle_id TEXT NOT NULL,
    policy_hash      TEXT NOT NULL,
    rationale_text   TEXT NOT NULL,
    generated_at     BIGINT NOT NULL
);
CREATE INDEX idx_reasoning_rationales_session ON reasoning_rationales (session_id);

CREATE TABLE mediation_summaries (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id          TEXT NOT NULL REFERENCES mediation_sessions (session_id),
    dispute_id          TEXT NOT NULL REFERENCES disputes (dispute_id),
    classification      TEXT NOT NULL,
    confidence          DOUBLE PRECISION NOT NULL,
    suggested_next_step TEXT NOT NULL,
    summary_text        TEXT NOT NULL,
    prompt_bundle_id    TEXT NOT NULL,
    policy_hash         TEXT NOT NULL,
    rationale_id        TEXT REFERENCES reasoning_rationales (rationale_id),
    generated_at        BIGINT NOT NULL
);
CREATE INDEX idx_mediation_summaries_session ON mediation_summaries (session_id);

CREATE TABLE mediation_events (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id       TEXT REFERENCES mediation_sessions (session_id),
    kind             TEXT NOT NULL,
    payload_json     JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(payload_json) = 'object'),
    rationale_id     TEXT REFERENCES reasoning_rationales (rationale_id),
    prompt_bundle_id TEXT,
    policy_hash      TEXT,
    occurred_at      BIGINT NOT NULL
);
CREATE INDEX idx_mediation_events_session_kind ON mediation_events (session_id, kind);
-- Dispute-scoped events are found by payload_json->>'dispute_id'.
CREATE INDEX idx_mediation_events_dispute_scoped ON mediation_events ((payload_json ->> 'dispute_id'), kind)
    WHERE session_id IS NULL;
CREATE INDEX idx_mediation_events_handoff ON mediation_events (((payload_json ->> 'handoff_event_id')::bigint), kind)
    WHERE payload_json ? 'handoff_event_id';

-- +goose Down
DROP TABLE mediation_events;
DROP TABLE mediation_summaries;
DROP TABLE reasoning_rationales;
DROP TABLE mediation_messages;
DROP TABLE mediation_sessions;
