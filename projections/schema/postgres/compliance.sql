-- Compliance read model (PostgreSQL): enterprises, their profile history and their documents.
-- Written only by ComplianceProjection, dropped and rebuilt from the event log at will.
-- Plain tables an analyst can query with SQL, timestamps are timestamptz, profiles jsonb.
-- Positions are text: the commit and prepare parts as 20 decimal digits each, so text order is log
-- order on every backend (layout 2; anquan_projections::layout).
CREATE TABLE IF NOT EXISTS enterprises (
    enterprise_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    credit_code TEXT NOT NULL,
    town TEXT NOT NULL,
    industry TEXT NOT NULL,
    profile JSONB NOT NULL,
    registered_at TIMESTAMPTZ NOT NULL,
    last_position TEXT COLLATE "C" NOT NULL,
    -- The effective instant of the closure it is under now (注销/停业), NULL while active
    -- (layout 5): the `state` filter of `enterprises` reads it.
    closed_since TIMESTAMPTZ
);

-- Every closure of an enterprise, keyed by the closure event's position, with its reopening
-- once it reopened (layout 5).
CREATE TABLE IF NOT EXISTS enterprise_closures (
    enterprise_id TEXT NOT NULL,
    position TEXT COLLATE "C" NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    effective_at TIMESTAMPTZ NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    reopen_reason TEXT,
    reopened_at TIMESTAMPTZ,
    reopen_recorded_at TIMESTAMPTZ,
    PRIMARY KEY (enterprise_id, position)
);

CREATE TABLE IF NOT EXISTS enterprise_profiles (
    enterprise_id TEXT NOT NULL,
    effective_at TIMESTAMPTZ NOT NULL,
    profile JSONB NOT NULL,
    -- The town from that instant on (registration or profile change): past town metrics count
    -- the enterprise where it was then.
    town TEXT NOT NULL,
    PRIMARY KEY (enterprise_id, effective_at)
);

CREATE TABLE IF NOT EXISTS documents (
    document_id TEXT NOT NULL,
    enterprise_id TEXT NOT NULL,
    town TEXT NOT NULL,
    requirement TEXT NOT NULL,
    indicator TEXT NOT NULL,
    title TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    file_size_bytes BIGINT NOT NULL,
    media_type TEXT NOT NULL,
    file_name TEXT NOT NULL,
    coverage JSONB NOT NULL,
    valid_from TIMESTAMPTZ,
    valid_until TIMESTAMPTZ,
    period TEXT,
    uploaded_at TIMESTAMPTZ NOT NULL,
    uploaded_by TEXT NOT NULL,
    review_outcome TEXT,
    reviewed_at TIMESTAMPTZ,
    reviewed_by TEXT,
    feedback TEXT,
    comment TEXT,
    position TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (enterprise_id, document_id)
);

-- Supervision (issue 4): inspections, hazards with their deadline extensions and rectifications,
-- and accidents. Facts only: whether a hazard is overdue is decided at query time.
CREATE TABLE IF NOT EXISTS inspections (
    inspection_id TEXT NOT NULL,
    enterprise_id TEXT NOT NULL,
    town TEXT NOT NULL,
    kind TEXT NOT NULL,
    level TEXT NOT NULL,
    inspected_at TIMESTAMPTZ NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    inspectors JSONB NOT NULL,
    documents JSONB NOT NULL,
    notes TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    position TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (enterprise_id, inspection_id)
);

CREATE TABLE IF NOT EXISTS hazards (
    hazard_id TEXT NOT NULL,
    enterprise_id TEXT NOT NULL,
    town TEXT NOT NULL,
    source_kind TEXT NOT NULL,
    source JSONB NOT NULL,
    inspection_id TEXT,
    category TEXT NOT NULL,
    level TEXT NOT NULL,
    severity TEXT,
    criterion_catalogue TEXT,
    criterion_item TEXT,
    description TEXT NOT NULL,
    photos JSONB NOT NULL,
    found_at TIMESTAMPTZ NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    recorded_by TEXT NOT NULL,
    initial_deadline TIMESTAMPTZ NOT NULL,
    deadline TIMESTAMPTZ NOT NULL,
    closed_at TIMESTAMPTZ,
    -- A major hazard citing no catalogue item: its free-text basis and an official's
    -- confirmation (until then it counts as general).
    basis TEXT,
    basis_stated_at TIMESTAMPTZ,
    basis_note TEXT,
    basis_confirmed_at TIMESTAMPTZ,
    -- Listed supervision (挂牌督办, issue 21): the listing, the town's lift request and the
    -- city's lift; progress reports are rows of listing_progress.
    listing_document_number TEXT,
    listing_deadline TIMESTAMPTZ,
    listing_production_suspended BOOLEAN,
    listed_at TIMESTAMPTZ,
    listed_by TEXT,
    lift_text TEXT,
    lift_requested_at TIMESTAMPTZ,
    lift_requested_by TEXT,
    delisted_note TEXT,
    delisted_at TIMESTAMPTZ,
    delisted_by TEXT,
    position TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (enterprise_id, hazard_id)
);

CREATE TABLE IF NOT EXISTS hazard_extensions (
    hazard_id TEXT NOT NULL,
    enterprise_id TEXT NOT NULL,
    deadline TIMESTAMPTZ NOT NULL,
    reason TEXT NOT NULL,
    extended_at TIMESTAMPTZ NOT NULL,
    extended_by TEXT NOT NULL,
    position TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (enterprise_id, hazard_id, position)
);

CREATE TABLE IF NOT EXISTS listing_progress (
    hazard_id TEXT NOT NULL,
    enterprise_id TEXT NOT NULL,
    text TEXT NOT NULL,
    files JSONB NOT NULL,
    reported_at TIMESTAMPTZ NOT NULL,
    reported_by TEXT NOT NULL,
    position TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (enterprise_id, hazard_id, position)
);

CREATE TABLE IF NOT EXISTS rectifications (
    rectification_id TEXT NOT NULL,
    hazard_id TEXT NOT NULL,
    enterprise_id TEXT NOT NULL,
    text TEXT NOT NULL,
    photos JSONB NOT NULL,
    submitted_at TIMESTAMPTZ NOT NULL,
    submitted_by TEXT NOT NULL,
    verdict TEXT,
    first_time BOOLEAN,
    reason TEXT,
    verified_at TIMESTAMPTZ,
    verified_by TEXT,
    -- A self-reported hazard the enterprise closed with this rectification (issue 21): when,
    -- whether the rule set's sample drew it, and an inspector's spot check of it.
    self_closed_at TIMESTAMPTZ,
    spot_check_drawn BOOLEAN,
    spot_check_passed BOOLEAN,
    spot_check_reason TEXT,
    spot_checked_at TIMESTAMPTZ,
    position TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (enterprise_id, hazard_id, rectification_id)
);

CREATE TABLE IF NOT EXISTS accidents (
    accident_id TEXT NOT NULL,
    enterprise_id TEXT NOT NULL,
    town TEXT NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    fatalities BIGINT NOT NULL,
    description TEXT NOT NULL,
    reported_at TIMESTAMPTZ NOT NULL,
    reported_by TEXT NOT NULL,
    position TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (enterprise_id, accident_id)
);

-- The digest (SHA-256, hex) of each enterprise's current public QR token; one row per
-- enterprise, replaced on rotation, so an old token finds nothing. Tokens are never stored.
CREATE TABLE IF NOT EXISTS public_tokens (
    enterprise_id TEXT PRIMARY KEY,
    token_digest TEXT NOT NULL UNIQUE,
    rotated_at TIMESTAMPTZ NOT NULL
)
