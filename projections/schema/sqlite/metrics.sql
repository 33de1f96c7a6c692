-- Town statistics for "now" (SQLite): each enterprise's contribution at the instant the
-- metrics watcher last computed it (null: none) and the next instant it may change by the passage
-- of time, and one row of what they reflect (the rule set, the instant, the log position, the
-- month-ago snapshot). Written only by the read-model leader's metrics watcher, with its
-- checkpoint `metrics_now` in the same transaction; a restarted service loads them instead of
-- computing every contribution. Derived data: deleted by a rebuild of the read models and
-- computed again from them.
CREATE TABLE IF NOT EXISTS metrics_contributions (
    enterprise_id TEXT PRIMARY KEY,
    contribution TEXT,
    next_change TEXT
);

CREATE TABLE IF NOT EXISTS metrics_state (
    id INTEGER PRIMARY KEY,
    rule_set TEXT NOT NULL,
    rule_set_digest TEXT NOT NULL,
    at TEXT NOT NULL,
    commit_position BIGINT NOT NULL,
    prepare_position BIGINT NOT NULL,
    month_ago TEXT NOT NULL
);
