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

-- Each instant's enterprises in order of time: the ones that changed between two instants.
CREATE INDEX IF NOT EXISTS metrics_history_by_instant ON metrics_history (changed_at, enterprise_id);

-- Per-town sums by day and hour: each town's tallies summed over its enterprises'
-- contributions a nanosecond after each local midnight (nanoseconds since the epoch),
-- written where they differ from the midnight before; what the enterprises that changed between
-- two instants of a day (every hour and the nanosecond after it) add to a town (a row where not
-- zero); the towns that have any; and the last instant every one is summed through, from the
-- history's horizon. A past instant is its day's sums, the hours before it, and the
-- enterprises that changed since. Derived from `metrics_history`: a change of its rows at or
-- before `summed_to` deletes the sums from that instant on (and counts a generation, so a
-- query that read across it knows), summed again after.
CREATE TABLE IF NOT EXISTS metrics_history_days (
    town TEXT NOT NULL,
    day BIGINT NOT NULL,
    sums TEXT NOT NULL,
    PRIMARY KEY (town, day)
);

CREATE INDEX IF NOT EXISTS metrics_history_days_by_day ON metrics_history_days (day);

CREATE TABLE IF NOT EXISTS metrics_history_hours (
    boundary BIGINT NOT NULL,
    town TEXT NOT NULL,
    delta TEXT NOT NULL,
    PRIMARY KEY (boundary, town)
);

CREATE TABLE IF NOT EXISTS metrics_history_towns (
    town TEXT PRIMARY KEY
);

CREATE TABLE IF NOT EXISTS metrics_history_summed (
    id INTEGER PRIMARY KEY,
    horizon BIGINT NOT NULL,
    summed_to BIGINT NOT NULL,
    generation BIGINT NOT NULL
);
