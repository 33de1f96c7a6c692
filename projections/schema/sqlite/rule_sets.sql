-- Rule-dependent views materialised per rule-set version, beside the live fact read models.
-- One row per (version, enterprise): its status, indicators and colour at the build instant.
CREATE TABLE IF NOT EXISTS rule_set_snapshots (
    version TEXT NOT NULL,
    enterprise_id TEXT NOT NULL,
    town TEXT NOT NULL,
    at TEXT NOT NULL,
    responsibility_implemented INTEGER NOT NULL,
    implemented INTEGER NOT NULL,
    not_implemented INTEGER NOT NULL,
    not_applicable INTEGER NOT NULL,
    indicators TEXT NOT NULL,
    colour TEXT NOT NULL,
    rule TEXT,
    PRIMARY KEY (version, enterprise_id)
);
-- One row per version: the instant its snapshot is evaluated at, how far a build got (the
-- last enterprise written, to resume) and whether it is complete.
CREATE TABLE IF NOT EXISTS rule_set_builds (
    version TEXT PRIMARY KEY NOT NULL,
    digest TEXT NOT NULL,
    at TEXT NOT NULL,
    last_enterprise TEXT NOT NULL,
    enterprises INTEGER NOT NULL,
    complete INTEGER NOT NULL
);
