-- Gateway support: tell running gateways when devices or assignments change, and make the
-- dead-letter table idempotent so a redelivered bad message is kept once, not once per try.

-- Every gateway keeps an in-memory device directory; it LISTENs on vw_devices and reloads the
-- named device. A trigger (rather than calls in each writer) catches every writer, including
-- hand-written SQL. The payload is the device id (≤ 64 characters, far under NOTIFY's 8000).
CREATE FUNCTION vw_notify_device_change() RETURNS trigger
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
    PERFORM pg_notify('vw_devices', COALESCE(changed, ''));
    RETURN NULL;
END
$$;

CREATE TRIGGER devices_notify AFTER INSERT OR UPDATE OR DELETE ON devices
    FOR EACH ROW EXECUTE FUNCTION vw_notify_device_change();
CREATE TRIGGER device_assignments_notify AFTER INSERT OR UPDATE OR DELETE ON device_assignments
    FOR EACH ROW EXECUTE FUNCTION vw_notify_device_change();

-- SHA-256 of the raw payload: the same bytes on the same topic are the same message (a QoS 1
-- redelivery after a crash), kept once. NULL for rows written by other tools.
ALTER TABLE rejected_messages ADD COLUMN payload_sha256 bytea;
CREATE UNIQUE INDEX rejected_messages_once ON rejected_messages (topic, payload_sha256);
