-- Agency read model (SQLite): agencies, staff registries, contracts, service reports with their
-- ratings and spot checks, sanctions and grades. Written only by AgencyProjection, dropped and
-- rebuilt from the event log at will. Contract and report ids are chosen by the agency, so they are
-- unique only within its stream: every key that holds one starts with the agency. Timestamps are RFC 3339 text in UTC with microseconds.
-- Positions are text: the commit and prepare parts as 20 decimal digits each, so text order is log
-- order on every backend (layout 2; anquan_projections::layout).
CREATE TABLE IF NOT EXISTS agency_agencies (
    agency_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    licence TEXT,
    service_scope TEXT NOT NULL,
    service_standards TEXT NOT NULL,
    fee_min_yuan INTEGER NOT NULL,
    fee_max_yuan INTEGER NOT NULL,
    contact_phone TEXT,
    registered_at TEXT NOT NULL,
    blacklisted_at TEXT,
    last_position TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS agency_staff_reports (
    agency_id TEXT NOT NULL,
    half_year TEXT NOT NULL,
    due_at TEXT NOT NULL,
    late INTEGER NOT NULL,
    reported_at TEXT NOT NULL,
    PRIMARY KEY (agency_id, half_year)
);

CREATE TABLE IF NOT EXISTS agency_staff (
    agency_id TEXT NOT NULL,
    half_year TEXT NOT NULL,
    staff_id TEXT NOT NULL,
    name TEXT NOT NULL,
    qualifications TEXT NOT NULL,
    phone TEXT,
    PRIMARY KEY (agency_id, half_year, staff_id)
);

CREATE TABLE IF NOT EXISTS agency_contracts (
    contract_id TEXT NOT NULL,
    agency_id TEXT NOT NULL,
    enterprise_id TEXT NOT NULL,
    town TEXT NOT NULL,
    valid_from TEXT NOT NULL,
    valid_until TEXT NOT NULL,
    terminated_at TEXT,
    services TEXT NOT NULL,
    visits_promised INTEGER NOT NULL,
    fee_yuan INTEGER NOT NULL,
    fee_min_yuan INTEGER NOT NULL,
    fee_max_yuan INTEGER NOT NULL,
    fee_check TEXT NOT NULL,
    signed_at TEXT NOT NULL,
    status TEXT NOT NULL,
    confirmed_at TEXT,
    rejected_at TEXT,
    rejection_reason TEXT,
    filed_at TEXT,
    fee_exception_reason TEXT,
    PRIMARY KEY (agency_id, contract_id)
);

CREATE TABLE IF NOT EXISTS agency_reports (
    report_id TEXT NOT NULL,
    agency_id TEXT NOT NULL,
    contract_id TEXT NOT NULL,
    enterprise_id TEXT NOT NULL,
    visited_at TEXT NOT NULL,
    findings TEXT NOT NULL,
    hazards TEXT NOT NULL,
    hazard_count INTEGER NOT NULL,
    major_hazard_count INTEGER NOT NULL,
    photos TEXT NOT NULL,
    report_file TEXT NOT NULL,
    on_time INTEGER NOT NULL,
    reported_at TEXT NOT NULL,
    stars INTEGER,
    comment TEXT,
    rated_at TEXT,
    spot_check_qualified INTEGER,
    spot_checked_at TEXT,
    PRIMARY KEY (agency_id, report_id)
);

CREATE TABLE IF NOT EXISTS agency_report_staff (
    report_id TEXT NOT NULL,
    staff_id TEXT NOT NULL,
    agency_id TEXT NOT NULL,
    PRIMARY KEY (agency_id, report_id, staff_id)
);

CREATE TABLE IF NOT EXISTS agency_sanctions (
    position TEXT PRIMARY KEY,
    agency_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    report_id TEXT,
    at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS agency_credit_grades (
    agency_id TEXT NOT NULL,
    half_year TEXT NOT NULL,
    position TEXT NOT NULL,
    kind TEXT NOT NULL,
    computed_total REAL NOT NULL,
    computed_grade TEXT,
    grade TEXT,
    reason TEXT,
    inputs TEXT NOT NULL,
    computed TEXT NOT NULL,
    graded_at TEXT NOT NULL,
    PRIMARY KEY (agency_id, half_year, position)
)
