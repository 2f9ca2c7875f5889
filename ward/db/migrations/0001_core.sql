-- Core tables: patients, admissions, devices, assignments, users, audit.
-- Applied by `vward migrate` in one transaction; names are unqualified so the schema comes
-- from search_path (each test migrates into a schema of its own).

CREATE TABLE vw_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE patients (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    nhs_number     char(10) NOT NULL UNIQUE CHECK (nhs_number ~ '^[0-9]{10}$'),
    given_name     text NOT NULL CHECK (btrim(given_name) <> ''),
    family_name    text NOT NULL CHECK (btrim(family_name) <> ''),
    date_of_birth  date NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE admissions (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id       bigint NOT NULL REFERENCES patients (id),
    pathway          text NOT NULL CHECK (pathway IN ('step_up', 'step_down')),
    source           text NOT NULL CHECK (source IN (
                         'gp', 'ambulance', '111', 'urgent_community_response', 'ed',
                         'hospital_ward')),
    status           text NOT NULL DEFAULT 'referred'
                         CHECK (status IN ('referred', 'declined', 'admitted', 'discharged')),
    referred_at      timestamptz NOT NULL,
    decided_at       timestamptz,
    decision_reason  text,
    admitted_at      timestamptz,
    discharged_at    timestamptz,
    outcome          text CHECK (outcome IN (
                         'usual_residence', 'conveyed_ed', 'admitted_hospital', 'died',
                         'transferred')),
    referral_reason  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (admitted_at IS NULL OR admitted_at >= referred_at),
    CHECK (discharged_at IS NULL OR (admitted_at IS NOT NULL AND discharged_at >= admitted_at)),
    CHECK ((status = 'discharged') = (outcome IS NOT NULL))
);
-- A patient has at most one open (referred or admitted) admission.
CREATE UNIQUE INDEX admissions_one_open ON admissions (patient_id)
    WHERE status IN ('referred', 'admitted');
CREATE INDEX admissions_status ON admissions (status, admitted_at);

CREATE TABLE devices (
    pk              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              text NOT NULL UNIQUE CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    kind            text NOT NULL CHECK (kind IN (
                        'pulse_oximeter', 'bp_cuff', 'thermometer', 'infusion_pump',
                        'home_hub')),
    model           text NOT NULL DEFAULT '',
    active          boolean NOT NULL DEFAULT true,
    registered_at   timestamptz NOT NULL DEFAULT now(),
    deactivated_at  timestamptz,
    -- PBKDF2 hash in Mosquitto's password-file format; the clear secret is shown once.
    credential_hash text,
    credential_issued_at timestamptz
);

-- One device is never assigned to two patients over overlapping periods. The exclusion uses a
-- one-point int8range for the device so that it needs no btree_gist extension (the embedded
-- PostgreSQL does not ship contrib modules).
CREATE TABLE device_assignments (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_pk   bigint NOT NULL REFERENCES devices (pk),
    patient_id  bigint NOT NULL REFERENCES patients (id),
    during      tstzrange NOT NULL CHECK (NOT isempty(during) AND lower(during) IS NOT NULL),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT device_assignments_no_overlap EXCLUDE USING gist (
        int8range(device_pk, device_pk, '[]') WITH &&,
        during WITH &&
    )
);
CREATE INDEX device_assignments_patient ON device_assignments (patient_id);

CREATE TABLE device_status (
    device_id    text PRIMARY KEY,
    online       boolean NOT NULL,
    battery_pct  double precision,
    signal_dbm   double precision,
    firmware     text,
    reported_at  timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    raw          jsonb
);

CREATE TABLE users (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username       text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9_.-]{2,64}$'),
    display_name   text NOT NULL,
    role           text NOT NULL CHECK (role IN ('hub_nurse', 'clinician', 'admin')),
    password_hash  text NOT NULL,
    phone          text,
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Every read of a patient's record and every change (who, what, when).
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    user_id     bigint REFERENCES users (id),
    actor       text NOT NULL,
    action      text NOT NULL,
    entity      text NOT NULL,
    entity_id   text,
    patient_id  bigint,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_patient ON audit_log (patient_id, at);
CREATE INDEX audit_log_at ON audit_log (at);
