-- Deadline timers move onto the runtime's due-work queue (`jobs`, queue `deadline`), which
-- every service shares. Pending timers carry over; fired ones stay recorded as done, so no
-- warning fires twice across the move.
INSERT INTO jobs (queue, key, grp, payload, due_at, state, attempts, finished_at)
SELECT 'deadline',
       case_id || ':' || kind || ':' || deadline || ':' || fraction || ':'
         || floor(extract(epoch FROM due_at) * 1000000)::bigint,
       case_id::text,
       jsonb_build_object('case_id', case_id, 'kind', kind, 'deadline', deadline,
                          'fraction', fraction, 'due_at', due_at),
       fire_at,
       CASE WHEN fired_at IS NULL THEN 'pending' ELSE 'done' END,
       CASE WHEN fired_at IS NULL THEN 0 ELSE 1 END,
       fired_at
FROM timers
ON CONFLICT (queue, key) DO NOTHING;

DROP TABLE timers;

-- The timers as people read them: one row per warning or breach, due or fired.
CREATE VIEW timers AS
SELECT id,
       (payload ->> 'case_id')::uuid          AS case_id,
       payload ->> 'kind'                     AS kind,
       payload ->> 'deadline'                 AS deadline,
       (payload ->> 'fraction')::float8       AS fraction,
       (payload ->> 'due_at')::timestamptz    AS due_at,
       due_at                                 AS fire_at,
       CASE WHEN state = 'done' THEN finished_at END AS fired_at
FROM jobs
WHERE queue = 'deadline' AND state IN ('pending', 'done');
