-- Plain PostgreSQL: `readings_hourly` is an ordinary view over `readings` (0002), always
-- current and never materialised, so there is nothing to refresh, tune or retain separately.
-- The row keeps both storage kinds at the same schema version.
INSERT INTO vw_meta (key, value) VALUES ('summaries_refresh_from', 'not_materialised')
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
