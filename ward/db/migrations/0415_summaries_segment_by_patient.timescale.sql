-- The compressed hourly summaries segmented by patient (issue 14; checked on TimescaleDB
-- 2.28.3). 0220 left the aggregate's columnstore to TimescaleDB's defaults in the belief that
-- they segment by the GROUP BY columns; 2.28.3 in fact chose no segment-by and ordered by
-- `bucket, patient_id, code`, so every compressed batch held ~1,000 hours of *all* patients
-- and one patient's chart over compressed summaries decompressed every batch of its window
-- (the whole ward's rows, then filtered). Segment by patient, as the raw readings (0101): the
-- patient page reads one patient's codes over a window; a 10-day chunk of the aggregate holds
-- ~280 rows of a spot-check patient (7 codes × 4 hours a day) and ~500 of one with a wearable.
-- Order by code then bucket, so per-code min/max metadata lets a one-code read skip batches.
--
-- Applies to chunks compressed from now on. Chunks already compressed keep the old layout
-- until recompressed: `SELECT compress_chunk(c, recompress => true)` over the aggregate's
-- compressed chunks (docs/timescaledb.md). Not done here: a migration runs in one
-- transaction at gateway start, and recompressing years of summaries belongs at a quiet hour.
ALTER MATERIALIZED VIEW readings_hourly SET (
    timescaledb.compress_segmentby = 'patient_id',
    timescaledb.compress_orderby = 'code, bucket DESC'
);

INSERT INTO vw_meta (key, value) VALUES ('summaries_storage', 'columnstore_after_60_days_by_patient')
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
