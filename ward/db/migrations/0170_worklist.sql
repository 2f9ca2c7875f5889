-- The hub worklist (issue 12.2): every kind of work in the two task tables that already exist,
-- with an owner, a priority and a recorded outcome. `tasks` (0080) gains three kinds:
--   follow_up_call   the call 1–2 days after discharge (every discharge makes one,
--                    ward/db/worklist.py from registry.update_admission)
--   visit            a visit a nurse or clinician requested (POST /api/worklist/visits)
--   urgent_response  the 2-hour urgent community response clock of a step-up referral:
--                    due 2 h after referral; `met` records whether it was seen in time
-- `observation_tasks` (0091: parameters the kit cannot measure) gains the same ownership.
ALTER TABLE tasks DROP CONSTRAINT tasks_kind_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_kind_check
    CHECK (kind IN ('full_set', 'follow_up_call', 'visit', 'urgent_response'));
ALTER TABLE tasks
    -- 1 = urgent (the 2-hour clock), 2 = clinical (full sets, visits), 3 = routine (calls).
    ADD COLUMN priority   smallint NOT NULL DEFAULT 2 CHECK (priority BETWEEN 1 AND 3),
    ADD COLUMN owner      text,
    ADD COLUMN claimed_at timestamptz,
    -- The earliest time the task makes sense (a follow-up call: one day after discharge).
    ADD COLUMN not_before timestamptz,
    ADD COLUMN closed_by  text,
    -- urgent_response only: closed within its 2 hours (true) or after (false).
    ADD COLUMN met        boolean,
    ADD CONSTRAINT tasks_owner_claimed CHECK ((owner IS NULL) = (claimed_at IS NULL));
ALTER TABLE observation_tasks
    ADD COLUMN owner      text,
    ADD COLUMN claimed_at timestamptz,
    ADD COLUMN closed_by  text,
    ADD CONSTRAINT observation_tasks_owner_claimed CHECK ((owner IS NULL) = (claimed_at IS NULL));

-- The timeline of each worklist item (who claimed, completed or handed it over, when, with
-- what note). The audit log records the same actions for governance; this table is what the
-- handover view reads ("notes since the last handover").
CREATE TABLE task_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source      text NOT NULL CHECK (source IN ('task', 'obs')),
    task_id     bigint NOT NULL,
    patient_id  bigint NOT NULL REFERENCES patients (id),
    at          timestamptz NOT NULL,
    actor       text NOT NULL,
    action      text NOT NULL CHECK (action IN ('create', 'claim', 'complete', 'hand_over')),
    note        text NOT NULL DEFAULT ''
);
CREATE INDEX task_events_at ON task_events (at);
CREATE INDEX task_events_task ON task_events (source, task_id, at);

-- A shift handover given: the handover view shows notes since the latest one.
CREATE TABLE handovers (
    id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at     timestamptz NOT NULL,
    by     text NOT NULL
);
CREATE INDEX handovers_at ON handovers (at DESC);
