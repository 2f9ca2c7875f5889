-- Alert evaluation off the ingest path (issue 14): the gateway writes the patients of every
-- committed batch here, in its ingest transaction (one row per batch, not per reading: the
-- queue costs one INSERT per commit); `vward alerting` deletes rows in the same transaction
-- as the evaluation they start. A crash of either side before its commit loses nothing: the
-- gateway's batch (and its row) is redelivered, the evaluator's rows come back.
-- No unique key on purpose: a conflict check would make an ingest INSERT wait for an
-- evaluator holding the row; rows are appended, and the evaluator coalesces patients.
CREATE TABLE alerting_queue (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_ids bigint[] NOT NULL CHECK (cardinality(patient_ids) > 0),
    -- the earliest MQTT receipt among the batch's new readings: receipt → evaluation latency
    received_at timestamptz NOT NULL,
    queued_at   timestamptz NOT NULL DEFAULT now()
);
