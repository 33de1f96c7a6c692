-- Agency read model (PostgreSQL): agencies, staff registries, contracts, service reports with their
-- ratings and spot checks, sanctions and grades. Written only by AgencyProjection, dropped and
-- rebuilt from the event log at will. Contract and report ids are chosen by the agency, so they are
-- unique only within its stream: every key that holds one starts with the agency. Timestamps are timestamptz, lists jsonb.
-- Positions are text: the commit and prepare parts as 20 decimal digits each, so text order is log
-- order on every backend (layout 2; anquan_projections::layout).
CREATE TABLE IF NOT EXISTS agency_agencies (
    agency_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    licence TEXT,
    service_scope JSONB NOT NULL,
    service_standards TEXT NOT NULL,
    fee_min_yuan BIGINT NOT NULL,
    fee_max_yuan BIGINT NOT NULL,
    contact_phone TEXT,
    registered_at TIMESTAMPTZ NOT NULL,
    blacklisted_at TIMESTAMPTZ,
    last_position TEXT COLLATE "C" NOT NULL
);

CREATE TABLE IF NOT EXISTS agency_staff_reports (
    agency_id TEXT NOT NULL,
    half_year TEXT NOT NULL,
    due_at TIMESTAMPTZ NOT NULL,
    late BOOLEAN NOT NULL,
    reported_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (agency_id, half_year)
);

CREATE TABLE IF NOT EXISTS agency_staff (
    agency_id TEXT NOT NULL,
    half_year TEXT NOT NULL,
    staff_id TEXT NOT NULL,
    name TEXT NOT NULL,
    qualifications JSONB NOT NULL,
    phone TEXT,
    PRIMARY KEY (agency_id, half_year, staff_id)
);

CREATE TABLE IF NOT EXISTS agency_contracts (
    contract_id TEXT NOT NULL,
    agency_id TEXT NOT NULL,
    enterprise_id TEXT NOT NULL,
    town TEXT NOT NULL,
    valid_from TIMESTAMPTZ NOT NULL,
    valid_until TIMESTAMPTZ NOT NULL,
    terminated_at TIMESTAMPTZ,
    services JSONB NOT NULL,
    visits_promised BIGINT NOT NULL,
    fee_yuan BIGINT NOT NULL,
    fee_min_yuan BIGINT NOT NULL,
    fee_max_yuan BIGINT NOT NULL,
    fee_check TEXT NOT NULL,
    signed_at TIMESTAMPTZ NOT NULL,
    status TEXT NOT NULL,
    confirmed_at TIMESTAMPTZ,
    rejected_at TIMESTAMPTZ,
    rejection_reason TEXT,
    filed_at TIMESTAMPTZ,
    fee_exception_reason TEXT,
    PRIMARY KEY (agency_id, contract_id)
);

CREATE TABLE IF NOT EXISTS agency_reports (
    report_id TEXT NOT NULL,
    agency_id TEXT NOT NULL,
    contract_id TEXT NOT NULL,
    enterprise_id TEXT NOT NULL,
    visited_at TIMESTAMPTZ NOT NULL,
    findings TEXT NOT NULL,
    hazards JSONB NOT NULL,
    hazard_count BIGINT NOT NULL,
    major_hazard_count BIGINT NOT NULL,
    photos JSONB NOT NULL,
    report_file JSONB NOT NULL,
    on_time BOOLEAN NOT NULL,
    reported_at TIMESTAMPTZ NOT NULL,
    stars BIGINT,
    comment TEXT,
    rated_at TIMESTAMPTZ,
    spot_check_qualified BOOLEAN,
    spot_checked_at TIMESTAMPTZ,
    PRIMARY KEY (agency_id, report_id)
);

CREATE TABLE IF NOT EXISTS agency_report_staff (
    report_id TEXT NOT NULL,
    staff_id TEXT NOT NULL,
    agency_id TEXT NOT NULL,
    PRIMARY KEY (agency_id, report_id, staff_id)
);

CREATE TABLE IF NOT EXISTS agency_sanctions (
    position TEXT COLLATE "C" PRIMARY KEY,
    agency_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    report_id TEXT,
    at TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS agency_credit_grades (
    agency_id TEXT NOT NULL,
    half_year TEXT NOT NULL,
    position TEXT COLLATE "C" NOT NULL,
    kind TEXT NOT NULL,
    computed_total DOUBLE PRECISION NOT NULL,
    computed_grade TEXT,
    grade TEXT,
    reason TEXT,
    inputs JSONB NOT NULL,
    computed JSONB NOT NULL,
    graded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (agency_id, half_year, position)
)
