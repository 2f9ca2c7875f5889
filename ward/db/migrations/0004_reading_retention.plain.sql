-- Retention on plain PostgreSQL: drop whole monthly partitions of readings that ended before
-- now() - keep (TimescaleDB's add_retention_policy does this for chunks). Dropping a partition
-- is instant and leaves no bloat, unlike DELETE. Returns the names dropped.
CREATE FUNCTION vw_apply_reading_retention(keep interval) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    part record;
BEGIN
    FOR part IN
        SELECT c.oid::regclass::text AS name,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                             'TO \(''([^'']+)''\)'))[1]::timestamptz AS upper_bound
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'readings'::regclass
    LOOP
        IF part.upper_bound IS NOT NULL AND part.upper_bound <= now() - keep THEN
            EXECUTE format('DROP TABLE %s', part.name);
            RETURN NEXT part.name;
        END IF;
    END LOOP;
END;
$$;
