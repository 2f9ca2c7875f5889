-- Plain PostgreSQL: `readings_hourly` is an ordinary view (0002), nothing is stored to
-- compress. The row keeps both storage kinds at the same schema version.
INSERT INTO vw_meta (key, value) VALUES ('summaries_storage', 'not_materialised')
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
