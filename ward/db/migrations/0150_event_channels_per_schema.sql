-- Event channels per schema. NOTIFY channels are database-wide, but tests (and deployments)
-- are isolated by schema: with one fixed channel name, a listener in one schema received the
-- events written in every other. Every channel is now named after the schema its writer's
-- connection writes to (its current_schema()): the plain base name in `public` (so existing
-- deployments and tools keep working) and '<base>.<schema>' elsewhere. Listeners ask the same
-- function for the name on their own connection (ward.db.channels), so the rule lives here once.
--
-- Channel names are identifiers, at most 63 bytes (NAMEDATALEN - 1): a schema name too long
-- for that is replaced by its md5 (32 hex characters; the longest base, vw_alerting_queue,
-- then needs 50 bytes).

CREATE FUNCTION vw_channel(base text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN current_schema() IS NULL OR current_schema() = 'public' THEN base
        WHEN octet_length(base || '.' || current_schema()) <= 63 THEN base || '.' || current_schema()
        ELSE base || '.' || md5(current_schema())
    END
$$;

CREATE FUNCTION vw_events_channel() RETURNS text
LANGUAGE sql STABLE AS $$ SELECT vw_channel('vw_events') $$;

CREATE FUNCTION vw_alerting_queue_channel() RETURNS text
LANGUAGE sql STABLE AS $$ SELECT vw_channel('vw_alerting_queue') $$;

-- The one way to send a ward event (the gateway, the alerting core, the hub and the triggers).
CREATE FUNCTION vw_notify(payload text) RETURNS void
LANGUAGE sql AS $$ SELECT pg_notify(vw_events_channel(), payload) $$;

-- 0031's ward-row triggers all send through this one function.
CREATE OR REPLACE FUNCTION vw_ward_event(kind text, pid bigint) RETURNS void
LANGUAGE sql AS $$
    SELECT vw_notify(format('{"type": "%s", "patient_ids": [%s]}', kind, pid))
    WHERE pid IS NOT NULL
$$;

-- 0010's device-directory trigger (the gateway LISTENs on vw_devices).
CREATE OR REPLACE FUNCTION vw_notify_device_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    changed text;
BEGIN
    IF TG_TABLE_NAME = 'devices' THEN
        changed := COALESCE(NEW.id, OLD.id);
    ELSE
        SELECT d.id INTO changed FROM devices d
        WHERE d.pk = COALESCE(NEW.device_pk, OLD.device_pk);
    END IF;
    PERFORM pg_notify(vw_channel('vw_devices'), COALESCE(changed, ''));
    RETURN NULL;
END
$$;
