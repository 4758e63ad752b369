-- Record and replay. Comparisons now have a source: `shadow` (live copies,
-- everything stored before this migration) or `replay` (strangler replay),
-- so that reports and verdicts read one at a time.
ALTER TABLE diffs ADD COLUMN source TEXT NOT NULL DEFAULT 'shadow';
ALTER TABLE diff_fields ADD COLUMN source TEXT NOT NULL DEFAULT 'shadow';

-- The per-minute counts take the source into their key: a new table, the
-- old counts copied as shadow counts.
CREATE TABLE IF NOT EXISTS comparison_counts (
    route TEXT NOT NULL,
    minute BIGINT NOT NULL,
    config_version BIGINT NOT NULL,
    tenant TEXT NOT NULL,
    source TEXT NOT NULL,
    verdict TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (route, minute, config_version, tenant, source, verdict)
);
INSERT INTO comparison_counts (route, minute, config_version, tenant, source, verdict, n)
    SELECT route, minute, config_version, tenant, 'shadow', verdict, n FROM shadow_counts;
DROP TABLE shadow_counts;

-- Sampled requests and the answers their clients got, redacted, for replay.
CREATE TABLE IF NOT EXISTS recordings (
    id TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    route TEXT NOT NULL,
    config_version BIGINT NOT NULL,
    tenant TEXT NOT NULL,
    instance TEXT NOT NULL,
    served_by TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status BIGINT NOT NULL,
    latency_ms DOUBLE PRECISION NOT NULL,
    request TEXT NOT NULL,
    response TEXT NOT NULL,
    redacted TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS recordings_route_created ON recordings (route, created_at, id);
CREATE INDEX IF NOT EXISTS recordings_created ON recordings (created_at);

-- One row per replay run.
CREATE TABLE IF NOT EXISTS replay_runs (
    id TEXT PRIMARY KEY,
    route TEXT NOT NULL,
    target TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    since_ms BIGINT NOT NULL,
    state TEXT NOT NULL,
    counts TEXT NOT NULL,
    message TEXT,
    instance TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS replay_runs_route_started ON replay_runs (route, started_at);
