-- The hourly summaries in TimescaleDB's columnstore (issue 14, checked on TimescaleDB 2.28.3).
-- They are kept ten years (0101): ~24 rows per patient, code and day, tens of GB for a large
-- ward in row form. Continuous aggregates compress like hypertables; by default they segment
-- by the GROUP BY columns (patient_id, code) and order by the bucket, which is what the
-- patient page reads (one patient's codes over a window).
ALTER MATERIALIZED VIEW readings_hourly SET (timescaledb.compress = true);

-- 60 days: well past the refresh policy's 35-day window, so the policy never rewrites
-- compressed summaries; only `vward maintain` after an old backfill does (TimescaleDB
-- updates compressed chunks in place).
SELECT add_compression_policy('readings_hourly', compress_after => interval '60 days');

INSERT INTO vw_meta (key, value) VALUES ('summaries_storage', 'columnstore_after_60_days')
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
