-- Indexes of the compliance read model (PostgreSQL) that only queries use; the projection's own
-- statements need none of them. A rebuild (`fold_to_end`) creates them once its tables are
-- filled, which is much faster than keeping them up to date row by row; the projection runner
-- creates them with the tables (ComplianceProjection::query_indexes).
CREATE INDEX IF NOT EXISTS enterprises_by_town ON enterprises (town, enterprise_id);
CREATE INDEX IF NOT EXISTS documents_by_id ON documents (document_id);
CREATE INDEX IF NOT EXISTS documents_by_town ON documents (town);
CREATE INDEX IF NOT EXISTS documents_review_queue ON documents (town, uploaded_at, document_id) WHERE review_outcome IS NULL;
CREATE INDEX IF NOT EXISTS documents_pending ON documents (uploaded_at, document_id) WHERE review_outcome IS NULL;
CREATE INDEX IF NOT EXISTS inspections_by_town ON inspections (town, inspected_at);
CREATE INDEX IF NOT EXISTS hazards_by_id ON hazards (hazard_id);
CREATE INDEX IF NOT EXISTS hazards_by_town ON hazards (town, hazard_id);
CREATE INDEX IF NOT EXISTS hazards_open_by_deadline ON hazards (deadline) WHERE closed_at IS NULL;
CREATE INDEX IF NOT EXISTS accidents_by_town ON accidents (town, occurred_at);
CREATE INDEX IF NOT EXISTS hazards_listed ON hazards (town, hazard_id) WHERE listed_at IS NOT NULL
