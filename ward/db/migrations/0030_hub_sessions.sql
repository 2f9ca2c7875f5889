-- The hub's log-in sessions and bearer tokens, and the indexes its views lean on.
-- Only a SHA-256 of each token is stored: a copy of this table cannot be replayed.

CREATE TABLE hub_sessions (
    token_hash    bytea PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users (id),
    kind          text NOT NULL CHECK (kind IN ('cookie', 'bearer')),
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    CHECK (expires_at > created_at)
);
CREATE INDEX hub_sessions_user ON hub_sessions (user_id);
CREATE INDEX hub_sessions_expiry ON hub_sessions (expires_at);

-- Ward view: the newest stored score per patient without scanning history.
CREATE INDEX IF NOT EXISTS scores_patient_latest ON scores (patient_id, computed_at DESC);
-- Alert queue and per-patient alert lists.
CREATE INDEX IF NOT EXISTS alerts_patient_state ON alerts (patient_id, state, raised_at DESC);
-- Devices assigned to a patient now (ward view device health).
CREATE INDEX IF NOT EXISTS device_assignments_device ON device_assignments (device_pk);
-- Reports: admissions and discharges by time.
CREATE INDEX IF NOT EXISTS admissions_discharged ON admissions (discharged_at)
    WHERE discharged_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS admissions_referred ON admissions (referred_at);
