-- The alerting queue's arrays are stored without compression (issue 14). A gateway's batch of
-- 500 readings queues one row whose `patient_ids` holds up to 500 bigints (4 kB), and an
-- evaluator's leftover row up to the ward's (`receipts` too): past ~2 kB PostgreSQL's default
-- (EXTENDED) storage compresses the value with pglz. Measured on this machine's PostgreSQL
-- 15, 1,000 inserts of a 500-patient row: 1.2–1.5 ms of backend CPU each with pglz (compressed
-- to 1.6 kB), 0.11 ms with EXTERNAL (moved out of line, not compressed; lz4 cost the same but
-- is not in every build) — about a tenth of the backend CPU the gateway's whole batch costs;
-- an evaluator's take + settle of a 1,000-patient leftover 3.5–4.1 → 2.4–2.9 ms.
-- The rows live for a second (the evaluator deletes them), so their size does not matter.
ALTER TABLE alerting_queue
    ALTER COLUMN patient_ids SET STORAGE EXTERNAL,
    ALTER COLUMN urgent_ids SET STORAGE EXTERNAL,
    ALTER COLUMN red_ids SET STORAGE EXTERNAL,
    ALTER COLUMN receipts SET STORAGE EXTERNAL;
