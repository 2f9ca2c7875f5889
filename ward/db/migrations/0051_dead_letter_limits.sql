-- Dead letters must not let one device grow the database without bound (issue 9, item 8;
-- the rules are in gateway/dead_letters.py):
-- * a payload may be dropped (too large, or over the device's hourly byte budget): the row
--   then keeps the reason, detail, size and SHA-256 digest only;
-- * each device has an hourly account of dead letters; past its limit it is quarantined and
--   its dead letters are only counted (`suppressed`), with one `device_quarantines` row per
--   quarantine (the device alert, also sent as NOTIFY vw_events {"type":"device_alert"});
-- * `vward maintain` deletes dead letters and quarantine records older than its
--   --dead-letter-days (30 by default).
ALTER TABLE rejected_messages ALTER COLUMN payload DROP NOT NULL;
ALTER TABLE rejected_messages ADD COLUMN payload_bytes integer;
ALTER TABLE rejected_messages ADD COLUMN payload_dropped text
    CHECK (payload_dropped IN ('too_large', 'device_budget'));

CREATE TABLE dead_letter_budget (
    device_id         text PRIMARY KEY,  -- '' for messages that named no device
    window_start      timestamptz NOT NULL,
    messages          integer NOT NULL DEFAULT 0,
    payload_bytes     bigint NOT NULL DEFAULT 0,
    quarantined_until timestamptz,
    suppressed        integer NOT NULL DEFAULT 0,
    suppressed_bytes  bigint NOT NULL DEFAULT 0
);

CREATE TABLE device_quarantines (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id   text NOT NULL,
    started_at  timestamptz NOT NULL,
    until       timestamptz NOT NULL,
    reason      text NOT NULL,  -- 'dead_letter_flood'
    detail      text NOT NULL
);
CREATE INDEX device_quarantines_device ON device_quarantines (device_id, started_at DESC);
