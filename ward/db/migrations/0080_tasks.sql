-- Tasks for the hub: work the platform (or a person) asks for, with a due time and an
-- outcome. The first kind is `full_set`: the alerting core asked the patient's home hub for
-- a complete set of observations ("full set requested 14:05, due 14:35"), because a partial
-- score, a trend or a doubtful reading suggested trouble (alerting/requests.py). The hub
-- worklist builds on this table.
CREATE TABLE tasks (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('full_set')),
    patient_id   bigint NOT NULL REFERENCES patients (id),
    -- The home hub the command went to; NULL when the patient has none (the hub phones).
    device_id    text,
    reason       text NOT NULL,
    detail       text NOT NULL DEFAULT '',
    wake         boolean NOT NULL DEFAULT false,
    due_at       timestamptz NOT NULL,
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done', 'missed')),
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL,
    closed_at    timestamptz,
    outcome      text,
    CHECK (due_at > created_at),
    CHECK ((status = 'open') = (closed_at IS NULL))
);
-- At most one open task of a kind per patient: the last line of defence against a second
-- evaluator requesting the same full set.
CREATE UNIQUE INDEX tasks_one_open ON tasks (patient_id, kind) WHERE status = 'open';
CREATE INDEX tasks_patient_created ON tasks (patient_id, created_at DESC);
CREATE INDEX tasks_open_due ON tasks (due_at) WHERE status = 'open';
