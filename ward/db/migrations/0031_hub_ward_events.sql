-- Ward-row change events: every write that changes what a ward row shows NOTIFYs vw_events,
-- whoever writes it. Readings, scores and alerts already NOTIFY from the gateway and the
-- alerting core; these triggers cover the rest: admissions (the hub, `vward simulate`'s
-- registration, any tool), care plans, patients, device assignments and device status (the
-- gateway stores status messages without a NOTIFY). Each hub keeps its ward rows cached and
-- recomputes only the patients named (ward/hub/wardcache.py), so a missing event here would
-- leave a stale row on the dashboard.
--
-- The payload is spelt exactly as the hub's routers spell theirs (Python json.dumps), so a
-- router's own NOTIFY and the trigger's fold into one notification (PostgreSQL drops
-- duplicate payloads within a transaction).

CREATE FUNCTION vw_ward_event(kind text, pid bigint) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_notify('vw_events', format('{"type": "%s", "patient_ids": [%s]}', kind, pid))
    WHERE pid IS NOT NULL
$$;

CREATE FUNCTION vw_notify_ward_row() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    kind text := TG_ARGV[0];
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM vw_ward_event(kind, OLD.patient_id);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM vw_ward_event(kind, NEW.patient_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER admissions_ward_event AFTER INSERT OR UPDATE OR DELETE ON admissions
    FOR EACH ROW EXECUTE FUNCTION vw_notify_ward_row('admission');
CREATE TRIGGER care_plans_ward_event AFTER INSERT OR UPDATE OR DELETE ON care_plans
    FOR EACH ROW EXECUTE FUNCTION vw_notify_ward_row('care_plan');
CREATE TRIGGER device_assignments_ward_event
    AFTER INSERT OR UPDATE OR DELETE ON device_assignments
    FOR EACH ROW EXECUTE FUNCTION vw_notify_ward_row('device');

CREATE FUNCTION vw_notify_ward_patient() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM vw_ward_event('patient', NEW.id);
    RETURN NULL;
END
$$;

CREATE TRIGGER patients_ward_event AFTER UPDATE ON patients
    FOR EACH ROW EXECUTE FUNCTION vw_notify_ward_patient();

-- Device status: only changes a row can show (online, battery, when last reported), for the
-- patients the device is assigned to now or later (a day's slack either side of the server's
-- and the device's clocks: an extra event costs one row's recompute, a missing one a stale row).
CREATE FUNCTION vw_notify_device_status() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.online IS NOT DISTINCT FROM OLD.online
       AND NEW.battery_pct IS NOT DISTINCT FROM OLD.battery_pct
       AND NEW.reported_at IS NOT DISTINCT FROM OLD.reported_at THEN
        RETURN NULL;
    END IF;
    PERFORM vw_ward_event('device_status', a.patient_id)
    FROM devices d JOIN device_assignments a ON a.device_pk = d.pk
    WHERE d.id = NEW.device_id
      AND a.during && tstzrange(least(now(), NEW.reported_at) - interval '1 day', NULL);
    RETURN NULL;
END
$$;

CREATE TRIGGER device_status_ward_event AFTER INSERT OR UPDATE ON device_status
    FOR EACH ROW EXECUTE FUNCTION vw_notify_device_status();
