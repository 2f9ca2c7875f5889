-- SenML packs with relative times carry no instant of their own (RFC 8428 §4.5.3: relative to
-- "now"). The gateway resolves them against the first time it saw the exact bytes from that
-- device, kept here, so a redelivered pack maps to the same (device, code, measured_at) keys
-- and is stored once (gateway/relative_times.py). `msg_id` is the SenML message id (a digest
-- of the bytes). Rows older than the gateway's session expiry are useless (the broker cannot
-- redeliver anything older) and are deleted by `vward maintain`.
CREATE TABLE senml_first_seen (
    device_id     text        NOT NULL,
    msg_id        text        NOT NULL,
    first_seen_at timestamptz NOT NULL,
    PRIMARY KEY (device_id, msg_id)
);
CREATE INDEX senml_first_seen_age ON senml_first_seen (first_seen_at);
