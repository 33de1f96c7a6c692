-- Rule-dependent views materialised per rule-set version, beside the live fact read models.
-- One row per (version, enterprise): its status, indicators and colour at the build instant.
CREATE TABLE IF NOT EXISTS rule_set_snapshots (
    version TEXT NOT NULL,
    enterprise_id TEXT NOT NULL,
    town TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    responsibility_implemented BOOLEAN NOT NULL,
    implemented BIGINT NOT NULL,
    not_implemented BIGINT NOT NULL,
    not_applicable BIGINT NOT NULL,
    indicators TEXT NOT NULL,
    colour TEXT NOT NULL,
    rule TEXT,
    PRIMARY KEY (version, enterprise_id)
);
-- One row per version: the instant its snapshot is evaluated at, how far a build got (the
-- last enterprise written, to resume) and whether it is complete.
CREATE TABLE IF NOT EXISTS rule_set_builds (
    version TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    last_enterprise TEXT NOT NULL,
    enterprises BIGINT NOT NULL,
    complete BOOLEAN NOT NULL
);
