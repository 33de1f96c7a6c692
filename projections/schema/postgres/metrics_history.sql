-- Town statistics at past instants (PostgreSQL): each enterprise's contribution from each instant
-- it changed (nanoseconds since the epoch; null: it contributes nothing), its next change after
-- the last walked instant, and one row of what they reflect (rule set, horizon, the instant
-- every enterprise is walked through, the log position). Written only by the read-model
-- leader's metrics history, with its checkpoint `metrics_history` in the same transaction; a
-- past `asOf` reads one row per enterprise instead of every file. Derived data: deleted by a
-- rebuild of the read models and walked again from them.
CREATE TABLE IF NOT EXISTS metrics_history (
    enterprise_id TEXT NOT NULL,
    changed_at BIGINT NOT NULL,
    contribution TEXT,
    PRIMARY KEY (enterprise_id, changed_at)
);

CREATE TABLE IF NOT EXISTS metrics_history_heads (
    enterprise_id TEXT PRIMARY KEY,
    next_change BIGINT
);

CREATE INDEX IF NOT EXISTS metrics_history_heads_by_next ON metrics_history_heads (next_change);

CREATE TABLE IF NOT EXISTS metrics_history_state (
    id INTEGER PRIMARY KEY,
    rule_set TEXT NOT NULL,
    rule_set_digest TEXT NOT NULL,
    horizon BIGINT NOT NULL,
    walked_to BIGINT NOT NULL,
    commit_position BIGINT NOT NULL,
    prepare_position BIGINT NOT NULL
);
