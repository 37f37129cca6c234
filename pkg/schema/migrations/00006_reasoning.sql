-- mediationsvc's reasoning tables (see docs/mediation.md#rationale-store
-- and #prompt-bundle).
--
-- reasoning_rationales becomes a pure content-addressed text store: one row
-- per distinct rationale text, keyed by its SHA-256. Who produced a text,
-- for which dispute and session, with which model and bundle, is recorded
-- once per occurrence in reasoning_rationale_occurrences, so the same text
-- in two sessions (or the empty rationale) is simply two occurrences and
-- never a conflict.
--
-- reasoning_prompt_bundles keeps every prompt bundle mediationsvc ever
-- loaded, by policy_hash, so a session pinned to a bundle finds it again
-- after a restart with changed files.

-- +goose Up
ALTER TABLE reasoning_rationales
    DROP COLUMN session_id,
    DROP COLUMN provider,
    DROP COLUMN model,
    DROP COLUMN prompt_bundle_id,
    DROP COLUMN policy_hash,
    ADD CONSTRAINT reasoning_rationales_id_is_sha256 CHECK (rationale_id ~ '^[0-9a-f]{64}$');
COMMENT ON TABLE reasoning_rationales IS
    'Rationale texts by content: rationale_id = lowercase hex SHA-256 of rationale_text. Operator-only; never logged.';

CREATE TABLE reasoning_rationale_occurrences (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rationale_id     TEXT NOT NULL REFERENCES reasoning_rationales (rationale_id),
    dispute_id       TEXT NOT NULL,
    -- NULL while dispute-scoped (the opening classification), then bound
    -- to the session it opened.
    session_id       TEXT REFERENCES mediation_sessions (session_id),
    operation        TEXT NOT NULL CHECK (operation IN ('classify', 'summarize')),
    provider         TEXT NOT NULL,
    model            TEXT NOT NULL,
    prompt_bundle_id TEXT NOT NULL,
    policy_hash      TEXT NOT NULL,
    generated_at     BIGINT NOT NULL,
    -- The caller's idempotency key: writing the same occurrence again
    -- returns the existing row.
    occurrence_key   TEXT NOT NULL UNIQUE
);
CREATE INDEX idx_reasoning_rationale_occurrences_rationale ON reasoning_rationale_occurrences (rationale_id);
CREATE INDEX idx_reasoning_rationale_occurrences_session ON reasoning_rationale_occurrences (session_id);
CREATE INDEX idx_reasoning_rationale_occurrences_dispute ON reasoning_rationale_occurrences (dispute_id);

CREATE TABLE reasoning_prompt_bundles (
    policy_hash            TEXT PRIMARY KEY CHECK (policy_hash ~ '^[0-9a-f]{64}$'),
    prompt_bundle_id       TEXT NOT NULL,
    system_text            TEXT NOT NULL,
    classification_text    TEXT NOT NULL,
    escalation_text        TEXT NOT NULL,
    mediation_style_text   TEXT NOT NULL,
    message_templates_text TEXT NOT NULL,
    first_loaded_at        BIGINT NOT NULL,
    last_loaded_at         BIGINT NOT NULL
);

-- +goose Down
DROP TABLE reasoning_prompt_bundles;
DROP TABLE reasoning_rationale_occurrences;
ALTER TABLE reasoning_rationales
    DROP CONSTRAINT reasoning_rationales_id_is_sha256,
    ADD COLUMN session_id TEXT REFERENCES mediation_sessions (session_id),
    ADD COLUMN provider TEXT NOT NULL DEFAULT '',
    ADD COLUMN model TEXT NOT NULL DEFAULT '',
    ADD COLUMN prompt_bundle_id TEXT NOT NULL DEFAULT '',
    ADD COLUMN policy_hash TEXT NOT NULL DEFAULT '';
