-- Plain PostgreSQL: `readings_hourly` is an ordinary view (0002), nothing is compressed. The
-- row keeps both storage kinds at the same schema version (0415.timescale segments the
-- compressed summaries by patient).
INSERT INTO vw_meta (key, value) VALUES ('summaries_storage', 'not_materialised')
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
