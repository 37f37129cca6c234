-- Phases 1 and 2 (intakesvc): disputes, per-solver notifications and the
-- lifecycle history. Tables and columns as the reference daemon's, in
-- Postgres types: unix seconds are BIGINT, AUTOINCREMENT
-- ids are identity columns (monotonic in insert order).
--
-- Added for the Go port (all nullable or defaulted, so a row written with
-- only the reference's columns stays valid):
--   disputes.opened_at .. take_intent_until   revision tracking, notification
--                                             batches, Serbero's own takes
--   intake_cursor                             durable position in relaygw's
--                                             dispute event stream
--   intake_notification_jobs                  the DM outbox (one row per
--                                             solver per notification)
--   dispute_changes                           the change feed of WatchDisputes
--   a trigger enforcing the lifecycle state machine, and a CHECK on the
--   history, mirroring services/intakesvc/internal/lifecycle.

-- +goose Up
CREATE TABLE disputes (
    dispute_id        TEXT PRIMARY KEY,
    -- Id of the event that created the row (the first revision seen).
    event_id          TEXT NOT NULL UNIQUE,
    mostro_pubkey     TEXT NOT NULL,
    initiator_role    TEXT NOT NULL CHECK (initiator_role IN ('buyer', 'seller', 'unknown')),
    -- The s value of the newest applied revision with a recognised status.
    dispute_status    TEXT NOT NULL DEFAULT 'initiated',
    -- created_at of the event that created the row.
    event_timestamp   BIGINT NOT NULL,
    detected_at       BIGINT NOT NULL,
    lifecycle_state   TEXT NOT NULL DEFAULT 'new'
        CHECK (lifecycle_state IN ('new', 'notified', 'taken', 'waiting', 'escalated', 'resolved')),
    assigned_solver   TEXT,
    -- Last time a notification reached at least one solver.
    last_notified_at  BIGINT,
    last_state_change BIGINT,

    -- The dispute's open time from the event's created_at (or published_at)
    -- tag; informative only, never used for ordering.
    opened_at         BIGINT,
    -- The newest revision applied (higher created_at, then lower id wins).
    -- NULL means the creating event (event_id, event_timestamp).
    newest_event_id   TEXT,
    newest_created_at BIGINT,
    -- Notification batches: period 0 is the initial notification, 1, 2, ...
    -- the re-notification periods. notify_claimed_at is when the latest
    -- batch was created; NULL when the latest batch reached nobody (the next
    -- tick notifies again: an initial retry reuses period 0's keys and body, a
    -- re-notification starts the next period, with new keys and a new body).
    notify_period     BIGINT NOT NULL DEFAULT 0,
    notify_claimed_at BIGINT,
    -- mediationsvc is taking the dispute for Serbero until this time (unix
    -- s): the assignment DM waits for the outcome, so it can name Serbero.
    take_intent_until BIGINT
);
CREATE INDEX idx_disputes_lifecycle_state ON disputes (lifecycle_state);
CREATE INDEX idx_disputes_detected_at ON disputes (detected_at DESC, dispute_id DESC);

CREATE TABLE notifications (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dispute_id    TEXT NOT NULL REFERENCES disputes (dispute_id),
    solver_pubkey TEXT NOT NULL,
    sent_at       BIGINT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('sent', 'failed')),
    error_message TEXT,
    notif_type    TEXT NOT NULL DEFAULT 'initial'
);
CREATE INDEX idx_notifications_dispute_id ON notifications (dispute_id);

-- The legal lifecycle moves: mirrors services/intakesvc/internal/lifecycle (CanTransition);
-- a test compares both.
-- +goose StatementBegin
CREATE FUNCTION serbero_lifecycle_allowed(from_state TEXT, to_state TEXT) RETURNS BOOLEAN
LANGUAGE sql IMMUTABLE AS $$
    SELECT (from_state, to_state) IN (
        ('new', 'notified'), ('new', 'taken'), ('new', 'resolved'),
        ('notified', 'notified'), ('notified', 'taken'), ('notified', 'escalated'), ('notified', 'resolved'),
        ('taken', 'waiting'), ('taken', 'escalated'), ('taken', 'resolved'),
        ('waiting', 'taken'), ('waiting', 'escalated'), ('waiting', 'resolved'),
        ('escalated', 'resolved'))
$$;
-- +goose StatementEnd

CREATE TABLE dispute_state_transitions (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dispute_id      TEXT NOT NULL REFERENCES disputes (dispute_id),
    from_state      TEXT,
    to_state        TEXT NOT NULL,
    transitioned_at BIGINT NOT NULL,
    trigger         TEXT,
    CONSTRAINT dispute_state_transitions_legal
        CHECK (from_state IS NULL OR serbero_lifecycle_allowed(from_state, to_state))
);
CREATE INDEX idx_state_transitions_dispute_id ON dispute_state_transitions (dispute_id);

-- An UPDATE that changes lifecycle_state must be a legal move. An operator
-- correction (e.g. resolved -> notified) sets, in its transaction,
--   SET LOCAL serbero.lifecycle_override = 'on';
-- +goose StatementBegin
CREATE FUNCTION serbero_disputes_lifecycle_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.lifecycle_state IS DISTINCT FROM OLD.lifecycle_state
       AND NOT serbero_lifecycle_allowed(OLD.lifecycle_state, NEW.lifecycle_state)
       AND coalesce(current_setting('serbero.lifecycle_override', true), '') <> 'on' THEN
        RAISE EXCEPTION 'invalid state transition: % -> %', OLD.lifecycle_state, NEW.lifecycle_state
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER disputes_lifecycle_guard BEFORE UPDATE OF lifecycle_state ON disputes
    FOR EACH ROW EXECUTE FUNCTION serbero_disputes_lifecycle_guard();

-- Where intakesvc is in relaygw's dispute event stream. Advanced in the
-- transaction that persists the event (never past an event that was not
-- persisted). Shared by every intakesvc replica: each processes the whole
-- stream (idempotently) and the cursor only moves forward.
CREATE TABLE intake_cursor (
    stream     TEXT PRIMARY KEY,
    cursor     BIGINT NOT NULL DEFAULT 0 CHECK (cursor >= 0),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO intake_cursor (stream, cursor) VALUES ('dispute_events', 0);

-- The DM outbox: one row per solver per notification, written in the
-- transaction that decides the notification, sent by any replica (claimed
-- with a lease; relaygw's idempotency key makes a re-send after a crash
-- harmless). Jobs of one (dispute, solver) are sent in id order.
CREATE SEQUENCE intake_notification_batch_seq;
CREATE TABLE intake_notification_jobs (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_id        BIGINT NOT NULL,
    dispute_id      TEXT NOT NULL REFERENCES disputes (dispute_id),
    solver_pubkey   TEXT NOT NULL,
    notif_type      TEXT NOT NULL CHECK (notif_type IN ('initial', 're-notification', 'assignment')),
    period          BIGINT NOT NULL DEFAULT 0,
    idempotency_key TEXT NOT NULL,
    -- The DM body; NULL for an assignment until its first attempt (built
    -- then, so it can name Serbero when Serbero's own take was confirmed
    -- meanwhile, and kept: every attempt under one idempotency key must send
    -- the same body, or relaygw refuses it).
    body            TEXT,
    -- The batch's clock (unix s): last_notified_at when a re-notification
    -- is delivered.
    batch_at        BIGINT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    not_before      TIMESTAMPTZ NOT NULL DEFAULT now(),
    claimed_until   TIMESTAMPTZ,
    attempts        INTEGER NOT NULL DEFAULT 0,
    done_at         TIMESTAMPTZ,
    outcome         TEXT CHECK (outcome IN ('sent', 'failed', 'skipped')),
    notification_id BIGINT REFERENCES notifications (id),
    CHECK ((done_at IS NULL) = (outcome IS NULL))
);
CREATE INDEX idx_intake_jobs_pending ON intake_notification_jobs (id) WHERE done_at IS NULL;
CREATE INDEX idx_intake_jobs_dispute_solver ON intake_notification_jobs (dispute_id, solver_pubkey, id)
    WHERE done_at IS NULL;
CREATE INDEX idx_intake_jobs_batch ON intake_notification_jobs (batch_id);

-- Every lifecycle change, in commit order (writers serialise on an advisory
-- lock before inserting, so a reader never skips a row committed late).
-- snapshot is the disputes row as of the change (to_jsonb).
CREATE TABLE dispute_changes (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dispute_id    TEXT NOT NULL REFERENCES disputes (dispute_id),
    kind          TEXT NOT NULL CHECK (kind IN ('detected', 'transitioned', 'updated')),
    transition_id BIGINT REFERENCES dispute_state_transitions (id),
    snapshot      JSONB NOT NULL,
    changed_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_dispute_changes_dispute ON dispute_changes (dispute_id);

-- +goose Down
DROP TABLE dispute_changes;
DROP TABLE intake_notification_jobs;
DROP SEQUENCE intake_notification_batch_seq;
DROP TABLE intake_cursor;
DROP TRIGGER disputes_lifecycle_guard ON disputes;
DROP FUNCTION serbero_disputes_lifecycle_guard();
DROP TABLE dispute_state_transitions;
DROP FUNCTION serbero_lifecycle_allowed(TEXT, TEXT);
DROP TABLE notifications;
DROP TABLE disputes;
