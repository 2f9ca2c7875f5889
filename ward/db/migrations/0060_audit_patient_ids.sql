-- Every patient a response shows is an audited access. A list (the ward view, the alert
-- queue, the device list) shows many patients at once: one audit row per request carries
-- them all in `patient_ids`, so the hot ward view pays one INSERT, not one per row.
-- "Who has seen patient X?" is then
--     SELECT … FROM audit_log WHERE patient_id = X OR patient_ids @> ARRAY[X]::bigint[]
-- and the GIN index answers the array half (its pending list keeps inserts cheap).

ALTER TABLE audit_log ADD COLUMN patient_ids bigint[];
CREATE INDEX audit_log_patient_ids ON audit_log USING gin (patient_ids)
    WHERE patient_ids IS NOT NULL;

-- A full ward view's 1,000 ids are 8 KB, which PostgreSQL's default pglz compresses at
-- ~1.7 ms per row (benchmarks/bench_audit.py): four times the rest of the INSERT. lz4 does
-- it in a fraction of that; a server built without lz4 stores the array uncompressed.
DO $$
BEGIN
    ALTER TABLE audit_log ALTER COLUMN patient_ids SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    ALTER TABLE audit_log ALTER COLUMN patient_ids SET STORAGE EXTERNAL;
END
$$;
