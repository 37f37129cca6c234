-- authsvc: the solver-authorization state (one row, cached in memory by every
-- replica; NOTIFY authsvc_state carries the new version on every change) and
-- the lease that elects the one replica running the revalidation loop. The
-- audit rows (auth_retry_attempt, auth_retry_recovered,
-- auth_retry_terminated) go to mediation_events with session_id and the
-- bundle columns NULL, as in the reference.

-- +goose Up
CREATE TABLE authsvc_state (
    id                      SMALLINT PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    state                   TEXT NOT NULL CHECK (state IN ('unknown', 'authorized', 'unauthorized', 'terminated')),
    since                   TIMESTAMPTZ NOT NULL,
    -- the newest attempt of the current cycle (in flight while a probe is open)
    attempt                 INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    -- waits summed over the current cycle, in milliseconds
    cumulative_wait_ms      BIGINT NOT NULL DEFAULT 0 CHECK (cumulative_wait_ms >= 0),
    next_attempt_at         TIMESTAMPTZ,
    last_attempt_at         TIMESTAMPTZ,
    last_error              TEXT NOT NULL DEFAULT '',
    -- what the answer is based on
    evidence_kind           TEXT NOT NULL DEFAULT 'none',
    evidence_summary        TEXT NOT NULL DEFAULT '',
    evidence_observed_at    TIMESTAMPTZ,
    evidence_dispute_id     TEXT NOT NULL DEFAULT '',
    -- the newest take outcome reported (consumed by the next attempt when fresh)
    observation_kind        TEXT NOT NULL DEFAULT 'none',
    observation_summary     TEXT NOT NULL DEFAULT '',
    observation_observed_at TIMESTAMPTZ,
    observation_dispute_id  TEXT NOT NULL DEFAULT '',
    -- the open probe, if any
    probe_id                TEXT,
    probe_granted_at        TIMESTAMPTZ,
    probe_deadline          TIMESTAMPTZ,
    probe_dispute_id        TEXT,
    -- the prober that won the claim (ClaimProbeRequest.claimer_id): only it
    -- is granted again when it repeats its claim
    probe_claimer_id        TEXT,
    probe_claimed_at        TIMESTAMPTZ,
    version                 BIGINT NOT NULL DEFAULT 1 CHECK (version > 0),
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT authsvc_state_probe_only_while_checking
        CHECK (probe_id IS NULL OR state IN ('unknown', 'unauthorized')),
    CONSTRAINT authsvc_state_schedule_only_while_checking
        CHECK (next_attempt_at IS NULL OR state IN ('unknown', 'unauthorized')),
    CONSTRAINT authsvc_state_claim_has_claimer
        CHECK ((probe_dispute_id IS NULL) = (probe_claimer_id IS NULL))
);
-- A fresh installation knows nothing; its initial check is due at once.
INSERT INTO authsvc_state (id, state, since, next_attempt_at) VALUES (1, 'unknown', now(), now());

CREATE TABLE authsvc_lease (
    id          SMALLINT PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    -- the replica running the loop; '' when released
    holder      TEXT NOT NULL DEFAULT '',
    -- increases with every acquisition: the fencing token of the loop's writes
    term        BIGINT NOT NULL DEFAULT 0,
    acquired_at TIMESTAMPTZ,
    -- database time; the lease is free once it has passed
    expires_at  TIMESTAMPTZ NOT NULL DEFAULT '-infinity'
);
INSERT INTO authsvc_lease (id) VALUES (1);

-- +goose Down
DROP TABLE authsvc_lease;
DROP TABLE authsvc_state;
