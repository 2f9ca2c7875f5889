-- Coalescing passes (issue 14): an evaluator pass takes every waiting row, evaluates a
-- bounded subset of their patients and puts the rest back as ONE row in the same transaction.
-- That row must keep each patient's earliest receipt, so it carries one receipt per patient
-- (`receipts`, parallel to `patient_ids`; NULL for a gateway's row, whose patients share
-- `received_at`). `urgent_ids`: the patients of the batch with a reading the gateway's
-- pre-screen (gateway.urgency) says could raise or escalate an alert; they are evaluated
-- first and without the coalescing delay; `red_ids` (a subset): a reading scoring 3, a
-- single-parameter red that raises an alert by itself, evaluated before any other. Both default so an older writer still works; the
-- ingest side still only INSERTs (no conflict check against rows an evaluator holds).
ALTER TABLE alerting_queue
    ADD COLUMN urgent_ids bigint[] NOT NULL DEFAULT '{}',
    ADD COLUMN red_ids bigint[] NOT NULL DEFAULT '{}',
    ADD COLUMN receipts timestamptz[]
        CHECK (receipts IS NULL OR cardinality(receipts) = cardinality(patient_ids));
