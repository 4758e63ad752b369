-- Where each route's rollout stands, shared by every proxy on the store, so
-- that a restart or another proxy of the fleet continues from the same step.
-- Portable SQL: runs on SQLite and PostgreSQL. Timestamps are unix ms.
CREATE TABLE IF NOT EXISTS rollouts (
    route TEXT PRIMARY KEY,
    -- idle | waiting | promoting | held | rolled_back | done
    state TEXT NOT NULL,
    -- the canary percentage the rollout stands at, as written in routes.yaml
    step TEXT NOT NULL,
    -- while promoting: the step being applied
    target TEXT,
    -- when the current step (or state) began
    since BIGINT NOT NULL,
    -- the configuration version the step began at: the report gate reads
    -- comparisons made from this version on
    step_version BIGINT NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    -- the proxy that wrote this row last
    instance TEXT NOT NULL,
    -- bumped by every write: a write names the revision it read
    revision BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
