-- Shadow comparison results. Portable SQL: the same file runs on SQLite and
-- PostgreSQL (timestamps are unix milliseconds, documents are JSON text).

-- Every comparison, counted per minute; diff rates and trends come from here.
CREATE TABLE IF NOT EXISTS shadow_counts (
    route TEXT NOT NULL,
    minute BIGINT NOT NULL,
    config_version BIGINT NOT NULL,
    tenant TEXT NOT NULL,
    verdict TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (route, minute, config_version, tenant, verdict)
);

-- Comparisons that found a difference (real or noise), with redacted examples.
CREATE TABLE IF NOT EXISTS diffs (
    id TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    route TEXT NOT NULL,
    config_version BIGINT NOT NULL,
    tenant TEXT NOT NULL,
    instance TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    primary_side TEXT NOT NULL,
    verdict TEXT NOT NULL,
    legacy_status BIGINT NOT NULL,
    new_status BIGINT NOT NULL,
    legacy_ms DOUBLE PRECISION NOT NULL,
    new_ms DOUBLE PRECISION NOT NULL,
    request TEXT NOT NULL,
    legacy_response TEXT NOT NULL,
    new_response TEXT NOT NULL,
    differences TEXT NOT NULL,
    more_differences BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS diffs_route_created ON diffs (route, created_at);
CREATE INDEX IF NOT EXISTS diffs_created ON diffs (created_at);

-- One row per differing field of a stored diff, for per-field statistics.
CREATE TABLE IF NOT EXISTS diff_fields (
    diff_id TEXT NOT NULL,
    route TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    tenant TEXT NOT NULL,
    field TEXT NOT NULL,
    class TEXT NOT NULL,
    PRIMARY KEY (diff_id, field)
);
CREATE INDEX IF NOT EXISTS diff_fields_route_field ON diff_fields (route, field, created_at);
CREATE INDEX IF NOT EXISTS diff_fields_created ON diff_fields (created_at);

-- Noise evidence, shared by every proxy on the store.
CREATE TABLE IF NOT EXISTS noise_routes (
    route TEXT PRIMARY KEY,
    legacy_pairs BIGINT NOT NULL,
    comparisons BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS noise_fields (
    route TEXT NOT NULL,
    field TEXT NOT NULL,
    legacy_differed BIGINT NOT NULL,
    new_differed BIGINT NOT NULL,
    PRIMARY KEY (route, field)
);
