-- mediationsvc's engine state (docs/mediation.md#the-engine): what the
-- engine knows of each dispute from intakesvc's change feed and where its
-- start attempts stand, its place in that feed, the per-session lease that
-- lets replicas share sessions, and the party-message outbox.

-- +goose Up

-- One row per dispute the engine heard of through WatchDisputes: the
-- snapshot it acts on (never read from intakesvc's disputes table) and the
-- start bookkeeping. start_state:
--   pending    may be attempted once next_attempt_at has passed;
--   started    a session was opened (it blocks while live);
--   escalated  escalated before any take (blocks for good);
--   summarized its session ended with a delivered summary (blocks until a
--              new initiated revision arrives);
--   superseded another solver took it over;
--   resolved   Mostro resolved it.
-- report_state: none, pending (the final resolution report is due), sent.
CREATE TABLE mediation_disputes (
    dispute_id       TEXT PRIMARY KEY,
    initiator_role   TEXT NOT NULL,
    lifecycle_state  TEXT NOT NULL,
    dispute_status   TEXT NOT NULL,
    newest_event_id  TEXT NOT NULL DEFAULT '',
    detected_at      BIGINT NOT NULL,
    event_timestamp  BIGINT NOT NULL,
    start_state      TEXT NOT NULL DEFAULT 'pending' CHECK (start_state IN (
        'pending', 'started', 'escalated', 'summarized', 'superseded', 'resolved')),
    summarized_event_id TEXT,
    attempts         INT NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_stop_reason TEXT,
    claim_holder     TEXT NOT NULL DEFAULT '',
    claim_expires_at TIMESTAMPTZ NOT NULL DEFAULT '-infinity',
    report_state     TEXT NOT NULL DEFAULT 'none' CHECK (report_state IN ('none', 'pending', 'sent')),
    report_status    TEXT,
    report_event_id  TEXT,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_mediation_disputes_due ON mediation_disputes (next_attempt_at) WHERE start_state = 'pending';
CREATE INDEX idx_mediation_disputes_report ON mediation_disputes (dispute_id) WHERE report_state = 'pending';

-- The engine's position in intakesvc's change feed, shared by every
-- replica (each change is handled idempotently, so the highest position
-- any replica finished is a safe resume point for all).
CREATE TABLE mediation_feed_cursor (
    singleton    BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    after_cursor BIGINT NOT NULL
);

ALTER TABLE mediation_sessions
    ADD COLUMN initiator_role    TEXT NOT NULL DEFAULT 'unknown',
    -- The in-progress revision Serbero's own take caused; any other later
    -- in-progress revision is a takeover (superseded_by_human).
    ADD COLUMN take_event_id     TEXT,
    -- relaygw chat-stream position of the last line handled for the session.
    ADD COLUMN chat_cursor       BIGINT NOT NULL DEFAULT 0,
    -- The lease: only the holder of the current term writes the session.
    ADD COLUMN lease_holder      TEXT NOT NULL DEFAULT '',
    ADD COLUMN lease_term        BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN lease_expires_at  TIMESTAMPTZ NOT NULL DEFAULT '-infinity',
    -- Metrics: when intakesvc detected the dispute, when the first party
    -- message went out, when the session ended.
    ADD COLUMN detected_at       BIGINT,
    ADD COLUMN first_outbound_at BIGINT,
    ADD COLUMN ended_at          BIGINT;
-- Live sessions of a dispute (at most one: the start claim of
-- mediation_disputes serialises the openers and InsertSession checks).
CREATE INDEX idx_mediation_sessions_live_dispute ON mediation_sessions (dispute_id)
    WHERE state IN ('opening', 'awaiting_response', 'classified', 'follow_up_pending', 'summary_pending');
CREATE INDEX idx_mediation_sessions_lease ON mediation_sessions (lease_expires_at)
    WHERE state IN ('opening', 'awaiting_response', 'classified', 'follow_up_pending', 'summary_pending');

-- Party messages decided but not yet confirmed sent: written in the
-- transaction of the decision, drained by the session's holder (relaygw's
-- idempotency key makes a resend after a crash the same chat event).
CREATE TABLE mediation_outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id      TEXT NOT NULL REFERENCES mediation_sessions (session_id),
    party           TEXT NOT NULL CHECK (party IN ('buyer', 'seller')),
    round           INT NOT NULL,
    body            TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    created_at      BIGINT NOT NULL,
    sent_at         BIGINT
);
CREATE INDEX idx_mediation_outbox_unsent ON mediation_outbox (session_id) WHERE sent_at IS NULL;

-- +goose Down
DROP TABLE mediation_outbox;
DROP INDEX idx_mediation_sessions_lease;
DROP INDEX idx_mediation_sessions_live_dispute;
ALTER TABLE mediation_sessions
    DROP COLUMN initiator_role, DROP COLUMN take_event_id, DROP COLUMN chat_cursor, DROP COLUMN lease_holder,
    DROP COLUMN lease_term, DROP COLUMN lease_expires_at, DROP COLUMN detected_at, DROP COLUMN first_outbound_at,
    DROP COLUMN ended_at;
DROP TABLE mediation_feed_cursor;
DROP TABLE mediation_disputes;
