-- On TimescaleDB the retention policy (0002) drops old chunks by itself; the function exists
-- so `vward maintain` behaves the same on both kinds of storage.
CREATE FUNCTION vw_apply_reading_retention(keep interval) RETURNS SETOF text
LANGUAGE sql AS $$ SELECT NULL::text WHERE false $$;
