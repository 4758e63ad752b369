-- Configuration history, audit and fleet changes. Portable SQL: runs on
-- SQLite and PostgreSQL. Timestamps are unix milliseconds.

-- Every configuration a proxy applied, numbered for the whole store.
CREATE TABLE IF NOT EXISTS config_history (
    version BIGINT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    instance TEXT NOT NULL,
    actor TEXT NOT NULL,
    source TEXT NOT NULL,
    reason TEXT NOT NULL,
    summary TEXT NOT NULL,
    digest TEXT NOT NULL,
    config TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS config_history_digest ON config_history (digest);

-- Every change asked for, applied or not: who, when, what, why, outcome.
CREATE TABLE IF NOT EXISTS audit_log (
    id TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    instance TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    outcome TEXT NOT NULL,
    version BIGINT
);
CREATE INDEX IF NOT EXISTS audit_log_created ON audit_log (created_at);

-- Canary changes and rollbacks, for every proxy sharing the store.
CREATE TABLE IF NOT EXISTS fleet_changes (
    id BIGINT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    instance TEXT NOT NULL,
    actor TEXT NOT NULL,
    version BIGINT NOT NULL,
    edits TEXT NOT NULL
);
