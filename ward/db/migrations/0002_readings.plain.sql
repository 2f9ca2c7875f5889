-- Readings on plain PostgreSQL: a table range-partitioned by month on measured_at, with the
-- same natural key and indexes as the TimescaleDB hypertable (0002_readings.timescale.sql).
-- Monthly partitions are created on demand by vw_ensure_reading_partition(), which the store
-- calls for months it has not seen yet.

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
) PARTITION BY RANGE (measured_at);

CREATE INDEX readings_patient_code_time ON readings (patient_id, code, measured_at DESC);

CREATE FUNCTION vw_ensure_reading_partition(ts timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    start_ts timestamptz := date_trunc('month', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    end_ts   timestamptz := (date_trunc('month', ts AT TIME ZONE 'UTC') + interval '1 month')
                            AT TIME ZONE 'UTC';
    part     text := 'readings_' || to_char(ts AT TIME ZONE 'UTC', 'YYYYMM');
BEGIN
    IF to_regclass(format('%I.%I', current_schema(), part)) IS NOT NULL THEN
        RETURN;
    END IF;
    -- Two gateways meeting a new month at once: the second waits, then finds the table.
    PERFORM pg_advisory_xact_lock(hashtext(current_schema() || '.' || part));
    IF to_regclass(format('%I.%I', current_schema(), part)) IS NULL THEN
        EXECUTE format('CREATE TABLE %I.%I PARTITION OF readings FOR VALUES FROM (%L) TO (%L)',
                       current_schema(), part, start_ts, end_ts);
    END IF;
END;
$$;

-- Hourly trend view with the same shape as the TimescaleDB continuous aggregate.
CREATE VIEW readings_hourly AS
SELECT patient_id,
       code,
       date_bin(interval '1 hour', measured_at, timestamptz '2000-01-01 00:00:00+00') AS bucket,
       avg(value) AS avg_value,
       min(value) AS min_value,
       max(value) AS max_value,
       count(*)   AS n
FROM readings
GROUP BY patient_id, code, bucket;

INSERT INTO vw_meta (key, value) VALUES ('readings_storage', 'plain');
