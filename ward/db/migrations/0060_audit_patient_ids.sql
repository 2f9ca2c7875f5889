-- Every patient a response shows is an audited access. A list (the ward view, the alert
-- queue, the device list) shows many patients at once: one audit row per request carries
-- them all in `patient_ids`, so the hot ward view pays one INSERT, not one per row.
-- "Who has seen patient X?" is then
--     SELECT … FROM audit_log WHERE patient_id = X OR patient_ids @> ARRAY[X]::bigint[]
-- and the GIN index answers the array half (its pending list keeps inserts cheap).

ALTER TABLE audit_log ADD COLUMN patient_ids bigint[];
CREATE INDEX audit_log_patient_ids ON audit_log USING gin (patient_ids)
    WHERE patient_ids IS NOT NULL;
