-- Readings on TimescaleDB 2.x: a hypertable with compression, retention and an hourly
-- continuous aggregate. Only standard, documented calls (create_hypertable,
-- ALTER TABLE … SET (timescaledb.compress …), add_compression_policy, add_retention_policy,
-- CREATE MATERIALIZED VIEW … WITH (timescaledb.continuous), add_continuous_aggregate_policy).
-- Any failure here aborts the migration's transaction and `vward migrate` exits non-zero.

CREATE TABLE readings (
    device_id     text NOT NULL,
    code          text NOT NULL,
    measured_at   timestamptz NOT NULL,
    value         double precision NOT NULL,
    unit          text NOT NULL,
    patient_id    bigint NOT NULL,
    received_at   timestamptz NOT NULL,
    msg_id        text,
    late          boolean NOT NULL DEFAULT false,
    source_value  double precision,
    source_unit   text,
    CONSTRAINT readings_natural_key UNIQUE (device_id, code, measured_at)
);

-- One-day chunks: ~200 patients × a reading a minute is a few hundred thousand rows a day,
-- comfortably in memory; at 10,000 devices a day is still a sensible unit to compress.
SELECT create_hypertable('readings', 'measured_at', chunk_time_interval => interval '1 day');

CREATE INDEX readings_patient_code_time ON readings (patient_id, code, measured_at DESC);

-- Segment by the natural key's non-time columns so compressed chunks keep enforcing it.
ALTER TABLE readings SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id, code',
    timescaledb.compress_orderby = 'measured_at DESC'
);
-- Late store-and-forward readings arrive within hours, rarely days: compress after 7 days.
SELECT add_compression_policy('readings', interval '7 days');
-- Keep raw readings ~13 months (a year of audits plus a margin); summaries outlive them.
SELECT add_retention_policy('readings', interval '400 days');

CREATE MATERIALIZED VIEW readings_hourly
WITH (timescaledb.continuous) AS
SELECT patient_id,
       code,
       time_bucket(interval '1 hour', measured_at) AS bucket,
       avg(value) AS avg_value,
       min(value) AS min_value,
       max(value) AS max_value,
       count(*)   AS n
FROM readings
GROUP BY patient_id, code, bucket
WITH NO DATA;

SELECT add_continuous_aggregate_policy('readings_hourly',
    start_offset => interval '3 days',
    end_offset => interval '1 hour',
    schedule_interval => interval '30 minutes');

-- Keeps the function the store calls on plain PostgreSQL; chunks need no help here.
CREATE FUNCTION vw_ensure_reading_partition(ts timestamptz) RETURNS void
LANGUAGE sql AS $$ SELECT $$;

INSERT INTO vw_meta (key, value) VALUES ('readings_storage', 'timescaledb');
