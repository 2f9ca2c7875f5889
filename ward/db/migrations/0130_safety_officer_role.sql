-- The clinical-safety officer (DCB0129/DCB0160) reviews who saw or changed which record: a
-- role of its own, so reading the audit log does not need the power to manage users.
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check
    CHECK (role IN ('hub_nurse', 'clinician', 'admin', 'safety_officer'));
