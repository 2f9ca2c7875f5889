-- latest_readings is rewritten by every ingest batch: one UPDATE per (patient, code) the batch
-- carries something newer for (ward/db/store.py). None of the columns an UPDATE changes is
-- indexed, so each could be a HOT update (no new index entry, the old version pruned from its
-- page) — but only if the page has room for the new version. At the default fillfactor 100
-- it has none: measured (issue 14), 58,000 updates over 1,000 rows left 43,234 HOT, the heap
-- at 149 pages and the primary key at 12 (bloat that every later update and every reader of
-- the ward view walks through). At fillfactor 50: 57,966 of 58,000 HOT, 20 pages and 6.
-- The table is small (one row per patient and code), so half-empty pages cost nothing.
ALTER TABLE latest_readings SET (fillfactor = 50);
-- The new fillfactor applies to pages written from now on; rewrite the existing rows so
-- every page gets its room at once (CLUSTER with a table name may run in a transaction).
CLUSTER latest_readings USING latest_readings_pkey;
