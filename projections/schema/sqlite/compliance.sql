-- Compliance read model (SQLite): enterprises, their profile history and their documents.
-- Written only by ComplianceProjection, dropped and rebuilt from the event log at will.
-- Timestamps are RFC 3339 text in UTC with microseconds, so text order is time order.
-- Positions are text: the commit and prepare parts as 20 decimal digits each, so text order is log
-- order on every backend (layout 2; anquan_projections::layout).
CREATE TABLE IF NOT EXISTS enterprises (
    enterprise_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    credit_code TEXT NOT NULL,
    town TEXT NOT NULL,
    industry TEXT NOT NULL,
    profile TEXT NOT NULL,
    registered_at TEXT NOT NULL,
    last_position TEXT NOT NULL,
    -- The effective instant of the closure it is under now (注销/停业), NULL while active
    -- (layout 5): the `state` filter of `enterprises` reads it.
    closed_since TEXT
);

-- Every closure of an enterprise, keyed by the closure event's position, with its reopening
-- once it reopened (layout 5).
CREATE TABLE IF NOT EXISTS enterprise_closures (
    enterprise_id TEXT NOT NULL,
    position TEXT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    effective_at TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    reopen_reason TEXT,
    reopened_at TEXT,
    reopen_recorded_at TEXT,
    PRIMARY KEY (enterprise_id, position)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS enterprise_profiles (
    enterprise_id TEXT NOT NULL,
    effective_at TEXT NOT NULL,
    profile TEXT NOT NULL,
    -- The town from that instant on (registration or profile change): past town metrics count
    -- the enterprise where it was then.
    town TEXT NOT NULL,
    PRIMARY KEY (enterprise_id, effective_at)
) WITHOUT ROWID;

-- Tables keyed by enterprise are clustered by it (WITHOUT ROWID): one enterprise's rows share
-- a few neighbouring pages, so reading a range of enterprises (a file, the metrics pass over
-- every file) reads the table in order instead of one random page per row.
CREATE TABLE IF NOT EXISTS documents (
    document_id TEXT NOT NULL,
    enterprise_id TEXT NOT NULL,
    town TEXT NOT NULL,
    requirement TEXT NOT NULL,
    indicator TEXT NOT NULL,
    title TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    file_size_bytes INTEGER NOT NULL,
    media_type TEXT NOT NULL,
    file_name TEXT NOT NULL,
    coverage TEXT NOT NULL,
    valid_from TEXT,
    valid_until TEXT,
    period TEXT,
    uploaded_at TEXT NOT NULL,
    uploaded_by TEXT NOT NULL,
    review_outcome TEXT,
    reviewed_at TEXT,
    reviewed_by TEXT,
    feedback TEXT,
    comment TEXT,
    position TEXT NOT NULL,
    PRIMARY KEY (enterprise_id, document_id)
) WITHOUT ROWID;

-- Supervision (issue 4): inspections, hazards with their deadline extensions and rectifications,
-- and accidents. Facts only: whether a hazard is overdue is decided at query time.
CREATE TABLE IF NOT EXISTS inspections (
    inspection_id TEXT NOT NULL,
    enterprise_id TEXT NOT NULL,
    town TEXT NOT NULL,
    kind TEXT NOT NULL,
    level TEXT NOT NULL,
    inspected_at TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    inspectors TEXT NOT NULL,
    documents TEXT NOT NULL,
    notes TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    position TEXT NOT NULL,
    PRIMARY KEY (enterprise_id, inspection_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS hazards (
    hazard_id TEXT NOT NULL,
    enterprise_id TEXT NOT NULL,
    town TEXT NOT NULL,
    source_kind TEXT NOT NULL,
    source TEXT NOT NULL,
    inspection_id TEXT,
    category TEXT NOT NULL,
    level TEXT NOT NULL,
    severity TEXT,
    criterion_catalogue TEXT,
    criterion_item TEXT,
    description TEXT NOT NULL,
    photos TEXT NOT NULL,
    found_at TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    initial_deadline TEXT NOT NULL,
    deadline TEXT NOT NULL,
    closed_at TEXT,
    -- A major hazard citing no catalogue item: its free-text basis and an official's
    -- confirmation (until then it counts as general).
    basis TEXT,
    basis_stated_at TEXT,
    basis_note TEXT,
    basis_confirmed_at TEXT,
    -- Listed supervision (挂牌督办, issue 21): the listing, the town's lift request and the
    -- city's lift; progress reports are rows of listing_progress.
    listing_document_number TEXT,
    listing_deadline TEXT,
    listing_production_suspended INTEGER,
    listed_at TEXT,
    listed_by TEXT,
    lift_text TEXT,
    lift_requested_at TEXT,
    lift_requested_by TEXT,
    delisted_note TEXT,
    delisted_at TEXT,
    delisted_by TEXT,
    position TEXT NOT NULL,
    PRIMARY KEY (enterprise_id, hazard_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS hazard_extensions (
    hazard_id TEXT NOT NULL,
    enterprise_id TEXT NOT NULL,
    deadline TEXT NOT NULL,
    reason TEXT NOT NULL,
    extended_at TEXT NOT NULL,
    extended_by TEXT NOT NULL,
    position TEXT NOT NULL,
    PRIMARY KEY (enterprise_id, hazard_id, position)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS listing_progress (
    hazard_id TEXT NOT NULL,
    enterprise_id TEXT NOT NULL,
    text TEXT NOT NULL,
    files TEXT NOT NULL,
    reported_at TEXT NOT NULL,
    reported_by TEXT NOT NULL,
    position TEXT NOT NULL,
    PRIMARY KEY (enterprise_id, hazard_id, position)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS rectifications (
    rectification_id TEXT NOT NULL,
    hazard_id TEXT NOT NULL,
    enterprise_id TEXT NOT NULL,
    text TEXT NOT NULL,
    photos TEXT NOT NULL,
    submitted_at TEXT NOT NULL,
    submitted_by TEXT NOT NULL,
    verdict TEXT,
    first_time INTEGER,
    reason TEXT,
    verified_at TEXT,
    verified_by TEXT,
    -- A self-reported hazard the enterprise closed with this rectification (issue 21): when,
    -- whether the rule set's sample drew it, and an inspector's spot check of it.
    self_closed_at TEXT,
    spot_check_drawn INTEGER,
    spot_check_passed INTEGER,
    spot_check_reason TEXT,
    spot_checked_at TEXT,
    position TEXT NOT NULL,
    PRIMARY KEY (enterprise_id, hazard_id, rectification_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS accidents (
    accident_id TEXT NOT NULL,
    enterprise_id TEXT NOT NULL,
    town TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    fatalities INTEGER NOT NULL,
    description TEXT NOT NULL,
    reported_at TEXT NOT NULL,
    reported_by TEXT NOT NULL,
    position TEXT NOT NULL,
    PRIMARY KEY (enterprise_id, accident_id)
) WITHOUT ROWID;

-- The digest (SHA-256, hex) of each enterprise's current public QR token; one row per
-- enterprise, replaced on rotation, so an old token finds nothing. Tokens are never stored.
CREATE TABLE IF NOT EXISTS public_tokens (
    enterprise_id TEXT PRIMARY KEY,
    token_digest TEXT NOT NULL UNIQUE,
    rotated_at TEXT NOT NULL
)
