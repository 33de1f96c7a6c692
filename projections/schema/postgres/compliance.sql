-- Compliance read model (PostgreSQL): enterprises, their profile history and their documents.
-- Written only by ComplianceProjection, dropped and rebuilt from the event log at will.
-- Plain tables an analyst can query with SQL, timestamps are timestamptz, profiles jsonb.
CREATE TABLE IF NOT EXISTS enterprises (
    enterprise_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    credit_code TEXT NOT NULL,
    town TEXT NOT NULL,
    industry TEXT NOT NULL,
    profile JSONB NOT NULL,
    registered_at TIMESTAMPTZ NOT NULL,
    last_position BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS enterprises_by_town ON enterprises (town, enterprise_id);

CREATE TABLE IF NOT EXISTS enterprise_profiles (
    enterprise_id TEXT NOT NULL,
    effective_at TIMESTAMPTZ NOT NULL,
    profile JSONB NOT NULL,
    PRIMARY KEY (enterprise_id, effective_at)
);

CREATE TABLE IF NOT EXISTS documents (
    document_id TEXT PRIMARY KEY,
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
    position BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_by_enterprise ON documents (enterprise_id, document_id);
CREATE INDEX IF NOT EXISTS documents_by_town ON documents (town);
CREATE INDEX IF NOT EXISTS documents_review_queue ON documents (town, uploaded_at, document_id) WHERE review_outcome IS NULL;
CREATE INDEX IF NOT EXISTS documents_pending ON documents (uploaded_at, document_id) WHERE review_outcome IS NULL
