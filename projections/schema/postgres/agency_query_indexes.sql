-- Indexes of the agency read model (PostgreSQL) that only queries use; the projection's own
-- statements need none of them. A rebuild (`fold_to_end`) creates them once its tables are
-- filled, which is much faster than keeping them up to date row by row; the projection runner
-- creates them with the tables (AgencyProjection::query_indexes).
CREATE INDEX IF NOT EXISTS agency_staff_by_id ON agency_staff (staff_id, half_year);
CREATE INDEX IF NOT EXISTS agency_contracts_by_enterprise ON agency_contracts (enterprise_id, valid_from);
CREATE INDEX IF NOT EXISTS agency_contracts_by_period ON agency_contracts (valid_from, valid_until);
CREATE INDEX IF NOT EXISTS agency_reports_by_agency ON agency_reports (agency_id, visited_at);
CREATE INDEX IF NOT EXISTS agency_reports_by_enterprise ON agency_reports (enterprise_id, visited_at);
CREATE INDEX IF NOT EXISTS agency_report_staff_by_staff ON agency_report_staff (staff_id);
CREATE INDEX IF NOT EXISTS agency_sanctions_by_agency ON agency_sanctions (agency_id, position);
CREATE INDEX IF NOT EXISTS agency_contracts_awaiting_filing ON agency_contracts (town, status);
