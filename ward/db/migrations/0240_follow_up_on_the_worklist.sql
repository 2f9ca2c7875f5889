-- One follow-up call per discharge, kept in one place: the worklist task of kind
-- `follow_up_call` (0170). Until now a discharge also booked a row in `follow_up_calls`
-- (0120), recorded on a screen of its own; the two disagreed about when the call was due
-- (1 vs 2 days) and the reports had to read both. And the 2-hour urgent-response clock
-- started for every step-up referral; it is for the referrals whose urgency is the 2-hour
-- urgent response only.
--
-- 1. Worklist tasks made by an admission's transitions name the admission, so "every
--    discharge makes exactly one call" and "one clock per 2-hour referral" are indexes, and
--    the reports join on it instead of matching instants.
ALTER TABLE tasks ADD COLUMN admission_id bigint REFERENCES admissions (id);

-- Tasks the ward made from a transition carry that instant as their created_at.
UPDATE tasks t SET admission_id = a.id FROM admissions a
WHERE t.kind = 'follow_up_call' AND t.admission_id IS NULL
  AND a.patient_id = t.patient_id AND a.discharged_at = t.created_at;
UPDATE tasks t SET admission_id = a.id FROM admissions a
WHERE t.kind = 'urgent_response' AND t.admission_id IS NULL
  AND a.patient_id = t.patient_id AND a.referred_at = t.created_at;

-- 2. A clock started for a referral that is not a 2-hour referral was started in error: it
--    closes (if open) and loses any met/missed verdict, so no figure counts it. Its claims
--    and notes stay in task_events.
UPDATE tasks t SET status = 'done',
    closed_at = coalesce(t.closed_at, greatest(now(), t.created_at)),
    closed_by = coalesce(t.closed_by, 'ward'),
    outcome = coalesce(t.outcome, 'not a 2-hour referral'),
    met = NULL
FROM admissions a
WHERE t.kind = 'urgent_response' AND t.admission_id = a.id AND a.urgency <> 'two_hour';

-- 3. A follow-up call's outcome is `reached`, `not_reached` or (closed by the ward)
--    `readmitted` (ward.domain.patients.FollowUpOutcome). Calls completed from the worklist
--    before this had free text; the reports counted every one but `not_reached` as made, so
--    they become `reached` (the text stays in their task_events note).
UPDATE tasks SET outcome = 'reached'
WHERE kind = 'follow_up_call' AND status = 'done'
  AND coalesce(outcome, '') NOT IN ('reached', 'not_reached', 'readmitted');

-- 4. follow_up_calls rows into tasks. A call recorded there whose discharge has an open task
--    closes that task with the call's result (and its note, as a task event).
WITH recorded AS (
    SELECT f.admission_id, f.done_at, f.done_by, f.note,
           CASE f.status WHEN 'done' THEN 'reached' ELSE 'not_reached' END AS outcome
    FROM follow_up_calls f WHERE f.status <> 'due'
), closed AS (
    UPDATE tasks t SET status = 'done', closed_at = greatest(r.done_at, t.created_at),
        closed_by = coalesce(r.done_by, 'ward'), outcome = r.outcome
    FROM recorded r
    WHERE t.kind = 'follow_up_call' AND t.admission_id = r.admission_id AND t.status = 'open'
    RETURNING t.id, t.patient_id, t.closed_at, t.closed_by, t.outcome, r.note
)
INSERT INTO task_events (source, task_id, patient_id, at, actor, action, note)
SELECT 'task', id, patient_id, closed_at, closed_by, 'complete',
       outcome || coalesce(': ' || note, '')
FROM closed;

-- A call with no task for its discharge becomes one, due by the same rule as every other
-- (from 1 day after discharge, by 2 days after). A call still due whose patient has come back
-- since (a later admission) or already has an open call closes as `readmitted`, as the ward
-- closes such calls from now on.
CREATE TEMPORARY TABLE migrated_calls ON COMMIT DROP AS
SELECT f.id AS call_id, f.patient_id, f.admission_id, f.note, f.done_by,
       coalesce(a.discharged_at, f.created_at) AS discharged_at,
       CASE
           WHEN f.status = 'done' THEN 'reached'
           WHEN f.status = 'not_reached' THEN 'not_reached'
           WHEN EXISTS (SELECT 1 FROM admissions later WHERE later.patient_id = f.patient_id
                        AND later.admitted_at > coalesce(a.discharged_at, f.created_at))
             OR EXISTS (SELECT 1 FROM tasks o WHERE o.patient_id = f.patient_id
                        AND o.kind = 'follow_up_call' AND o.status = 'open') THEN 'readmitted'
       END AS outcome,
       f.done_at
FROM follow_up_calls f JOIN admissions a ON a.id = f.admission_id
WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE t.kind = 'follow_up_call'
                  AND t.admission_id = f.admission_id);
-- Two calls of one patient still due: only the latest discharge's stays open.
UPDATE migrated_calls m SET outcome = 'readmitted'
WHERE m.outcome IS NULL AND EXISTS (
    SELECT 1 FROM migrated_calls n WHERE n.patient_id = m.patient_id AND n.outcome IS NULL
      AND n.discharged_at > m.discharged_at);

WITH inserted AS (
    INSERT INTO tasks (kind, patient_id, admission_id, reason, detail, due_at, not_before,
                       priority, created_by, created_at, status, closed_at, closed_by, outcome)
    SELECT 'follow_up_call', m.patient_id, m.admission_id, 'discharge',
           'Follow-up call 1–2 days after discharge', m.discharged_at + interval '2 days',
           m.discharged_at + interval '1 day', 3, 'ward', m.discharged_at,
           CASE WHEN m.outcome IS NULL THEN 'open' ELSE 'done' END,
           CASE WHEN m.outcome IS NULL THEN NULL
                ELSE greatest(coalesce(m.done_at, now()), m.discharged_at) END,
           CASE WHEN m.outcome IS NULL THEN NULL ELSE coalesce(m.done_by, 'ward') END,
           m.outcome
    FROM migrated_calls m ORDER BY m.call_id
    RETURNING id, patient_id, admission_id, closed_at, closed_by, outcome
)
INSERT INTO task_events (source, task_id, patient_id, at, actor, action, note)
SELECT 'task', i.id, i.patient_id, i.closed_at, i.closed_by, 'complete',
       i.outcome || coalesce(': ' || m.note, '')
FROM inserted i JOIN migrated_calls m ON m.admission_id = i.admission_id
WHERE i.outcome IS NOT NULL;

-- 5. One follow-up call per discharge and one clock per referral, held by the database.
CREATE UNIQUE INDEX tasks_one_per_admission ON tasks (admission_id, kind)
    WHERE admission_id IS NOT NULL AND kind IN ('follow_up_call', 'urgent_response');

-- 6. Nothing outside the hub read follow_up_calls (its router, report and tests were the
--    only readers, all moved to the tasks): no compatibility view is left.
DROP TABLE follow_up_calls;
