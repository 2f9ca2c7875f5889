-- TimescaleDB used as its authors intend (issue 14, items 1–3). Written for TimescaleDB 2.x
-- (checked against its documentation, not run here: CI has no TimescaleDB). Any failure aborts
-- this migration's transaction and `vward migrate` exits non-zero.

-- 1. Real-time aggregation: the hourly view adds the not-yet-materialised newest hours from
--    the raw readings, so hourly charts have no ~1.5 h lag.
ALTER MATERIALIZED VIEW readings_hourly SET (timescaledb.materialized_only = false);

-- 1. A refresh window reaching past the compression horizon (7 days, 0002): late readings
--    written into compressed chunks (store-and-forward devices offline for days or weeks)
--    invalidate their hours, and the policy re-aggregates them. A wide window costs little:
--    a refresh only recomputes invalidated buckets. 35 days also stays far inside the raw
--    retention (400 days), so the policy never refreshes a range whose raw chunks are gone.
SELECT remove_continuous_aggregate_policy('readings_hourly', if_exists => true);
SELECT add_continuous_aggregate_policy('readings_hourly',
    start_offset => interval '35 days',
    end_offset => interval '1 hour',
    schedule_interval => interval '30 minutes');

-- 2. Summaries outlive raw readings: their own, longer retention (ten years of hourly trends
--    for audits and long-term reviews: ~24 rows per patient, code and day). The one-off and
--    `vward maintain` refreshes (ward.db.summaries) start at the oldest raw chunk still kept,
--    never before it, so a refresh never wipes summaries of retained-away raw data.
SELECT add_retention_policy('readings_hourly', drop_after => interval '3650 days',
                            if_not_exists => true);

-- 3. Compressed batches of a useful size. Segmenting by (device_id, code) with 1-day chunks
--    left a median of 4 rows per batch (a spot-check device sends a few readings of a code a
--    day); TimescaleDB advises hundreds to ~1,000 rows per segment. Segment by patient (what
--    every hub query filters on: a patient's readings over a window) and order by code,
--    device, time, so the natural key's columns stay covered (unique constraints on
--    compressed chunks need them in segment-by or order-by) and per-code min/max metadata
--    lets a one-code query skip batches. 7-day chunks: a patient with spot checks every 4 h
--    (~40 readings/day) fills ~300 rows per chunk, a wearable at one a minute fills
--    batches of 1,000; the compression policy (7 days) then compresses a chunk 7–14 days
--    after it opens. New settings apply to chunks compressed from now on; already compressed
--    chunks keep theirs until recompressed (decompress_chunk + compress_chunk).
SELECT set_chunk_time_interval('readings', interval '7 days');
ALTER TABLE readings SET (
    timescaledb.compress_segmentby = 'patient_id',
    timescaledb.compress_orderby = 'code, device_id, measured_at DESC'
);

INSERT INTO vw_meta (key, value) VALUES ('summaries_refresh_from', 'oldest_raw_chunk')
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
