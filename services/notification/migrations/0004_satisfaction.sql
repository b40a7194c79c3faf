-- 回访: the satisfaction survey of each decided case, the consumer's answer (or that none
-- came), and how passing it to the case (case-coordination RecordSatisfaction) went.

-- One survey per case, recorded with its survey delivery. The token is for a survey link (a
-- bearer secret: 122 random bits); the SMS reply code is derived from the case id instead
-- (handlers::reply_code), so it is not stored.
CREATE TABLE surveys (
    case_id      TEXT PRIMARY KEY,
    complaint_id TEXT NOT NULL,
    token        TEXT NOT NULL UNIQUE DEFAULT replace(gen_random_uuid()::text, '-', ''),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The answer of a case: one row, so a repeated answer cannot record twice. `revision` counts
-- replacements (a consumer's late answer replaces "no answer"); each revision is passed to the
-- case once, by the due-work job `satisfaction` keyed `<case>#<revision>`.
CREATE TABLE survey_answers (
    case_id          TEXT PRIMARY KEY,
    complaint_id     TEXT NOT NULL,
    satisfaction     TEXT NOT NULL
                     CHECK (satisfaction IN ('satisfied', 'neutral', 'dissatisfied', 'no_answer')),
    comment          TEXT NOT NULL DEFAULT '',
    channel          TEXT NOT NULL,
    recorded_by      TEXT NOT NULL,
    answered_at      TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    revision         INT NOT NULL DEFAULT 1,
    -- pending: not yet taken by the case (retried while case-coordination cannot be reached);
    -- recorded; skipped: the case already had an answer a person recorded (no answer is never
    -- written over one); refused: the case would not take it (closed, …), see case_detail.
    case_state       TEXT NOT NULL DEFAULT 'pending'
                     CHECK (case_state IN ('pending', 'recorded', 'skipped', 'refused')),
    case_attempts    INT NOT NULL DEFAULT 0,
    case_detail      TEXT NOT NULL DEFAULT '',
    case_version     BIGINT,
    case_recorded_at TIMESTAMPTZ
);

-- Who recorded an opt-out, and how the consumer asked.
ALTER TABLE survey_opt_outs
    ADD COLUMN recorded_by TEXT NOT NULL DEFAULT '',
    ADD COLUMN channel     TEXT NOT NULL DEFAULT '';
