-- Case-coordination's records. Deadlines are never stored as facts: `decision_due_at` and
-- `review_due_at` are an index for ListCases, recomputed from the clock history (`case_events.clock`)
-- on every change, and the timers are rebuilt from the same derivation.

CREATE TABLE cases (
    id              uuid PRIMARY KEY,
    complaint_id    uuid        NOT NULL UNIQUE,
    state           text        NOT NULL,
    version         bigint      NOT NULL,
    department      text        NOT NULL,
    handler         text,
    severity        integer     NOT NULL,
    received_at     timestamptz NOT NULL,
    -- The rest of the case (redacted text, classification, decision …) as an encoded
    -- redress.cases.v1.Case without its timeline and derived deadlines.
    snapshot        bytea       NOT NULL,
    decision_due_at timestamptz,
    review_due_at   timestamptz,
    breached_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX cases_by_department ON cases (department, state, id);
CREATE INDEX cases_by_due ON cases (decision_due_at);

-- Every event of every case, in order: the timeline, and (where `clock` is set) the history
-- the deadlines are derived from.
CREATE TABLE case_events (
    seq        bigserial   PRIMARY KEY,
    case_id    uuid        NOT NULL REFERENCES cases (id),
    version    bigint      NOT NULL,
    event_type text        NOT NULL,
    at         timestamptz NOT NULL,
    clock      jsonb,
    event      bytea       NOT NULL
);

CREATE INDEX case_events_by_case ON case_events (case_id, seq);

-- Requests for another department's input; an open one blocks the decision.
CREATE TABLE input_requests (
    id            uuid        PRIMARY KEY,
    case_id       uuid        NOT NULL REFERENCES cases (id),
    to_department text        NOT NULL,
    question      text        NOT NULL,
    due_at        timestamptz NOT NULL,
    requested_by  jsonb       NOT NULL,
    requested_at  timestamptz NOT NULL,
    answered_at   timestamptz,
    answer        text,
    answered_by   jsonb,
    overridden    boolean     NOT NULL DEFAULT false
);

CREATE INDEX input_requests_by_case ON input_requests (case_id);
CREATE INDEX input_requests_open ON input_requests (to_department) WHERE answered_at IS NULL;

-- 回避: handlers who may not handle a case.
CREATE TABLE conflicts (
    case_id     uuid        NOT NULL REFERENCES cases (id),
    handler     text        NOT NULL,
    reason      text        NOT NULL,
    declared_by jsonb       NOT NULL,
    declared_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (case_id, handler)
);

-- Handlers per department (from the roster file, and every handler `Assign` names).
CREATE TABLE handlers (
    department text    NOT NULL,
    handler    text    NOT NULL,
    senior     boolean NOT NULL DEFAULT false,
    PRIMARY KEY (department, handler)
);

-- Suspected duplicates, by complaint (intake suspects them before any case exists).
CREATE TABLE duplicate_links (
    complaint_id         uuid             NOT NULL,
    earlier_complaint_id uuid             NOT NULL,
    similarity           double precision NOT NULL,
    PRIMARY KEY (complaint_id, earlier_complaint_id)
);

-- A withdrawal that arrived before its complaint's case: applied when the case opens.
CREATE TABLE early_withdrawals (
    complaint_id uuid        PRIMARY KEY,
    reason       text        NOT NULL,
    received_at  timestamptz NOT NULL
);

-- Deadline timers. Rebuilt from the derived deadlines whenever a case's history changes
-- (unfired rows replaced; a fired row is kept, so the same warning never fires twice); each
-- fires once: claimed with FOR UPDATE SKIP LOCKED in the transaction that enqueues its event
-- and sets fired_at, whichever replica gets there first.
CREATE TABLE timers (
    id       bigserial        PRIMARY KEY,
    case_id  uuid             NOT NULL REFERENCES cases (id),
    -- warning or breach
    kind     text             NOT NULL,
    -- decision or review
    deadline text             NOT NULL,
    fraction double precision NOT NULL,
    due_at   timestamptz      NOT NULL,
    fire_at  timestamptz      NOT NULL,
    fired_at timestamptz,
    UNIQUE (case_id, kind, deadline, fraction, due_at)
);

CREATE INDEX timers_due ON timers (fire_at) WHERE fired_at IS NULL;
