-- Due work (runtime::jobs): rows that become due, each run exactly once across replicas and
-- restarts. `queue` names the kind of work, `key` makes scheduling idempotent within it, and
-- `grp` lets a whole group of pending jobs be cancelled at once (e.g. a case's timers).
CREATE TABLE jobs (
    id          bigserial PRIMARY KEY,
    queue       text        NOT NULL,
    key         text        NOT NULL,
    grp         text        NOT NULL DEFAULT '',
    payload     jsonb       NOT NULL DEFAULT '{}',
    due_at      timestamptz NOT NULL,
    -- pending, running (leased: its worker runs it outside the claiming transaction),
    -- done, failed, cancelled
    state       text        NOT NULL DEFAULT 'pending',
    attempts    integer     NOT NULL DEFAULT 0,
    -- A leased job whose lease ran out was interrupted mid-run: its next run is told so.
    lease_until timestamptz,
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    UNIQUE (queue, key)
);

CREATE INDEX jobs_due ON jobs (queue, due_at) WHERE state = 'pending';
CREATE INDEX jobs_leased ON jobs (queue, lease_until) WHERE state = 'running';
CREATE INDEX jobs_group ON jobs (queue, grp) WHERE state = 'pending';

-- Keys the service makes for itself and shares between its replicas (page-token signing).
CREATE TABLE runtime_keys (
    name       text PRIMARY KEY,
    key        bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
