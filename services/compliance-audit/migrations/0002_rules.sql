-- What the compliance rules found, and the inspection samples. These are worklists, not the
-- record: every change of them is an event (violation.<rule>, worklist.acknowledged/resolved,
-- inspection.sampled/scored) published through the outbox and logged like any other, so the
-- log holds who did what even though these rows change.

CREATE TABLE violations (
    violation_id    uuid PRIMARY KEY,
    rule            text NOT NULL,
    -- What it is about within the rule (a case, a notice, an event): raised once.
    subject         text NOT NULL,
    case_id         text NOT NULL DEFAULT '',
    complaint_id    text NOT NULL DEFAULT '',
    -- The ViolationDetected payload as published.
    detected        bytea NOT NULL,
    detected_at     timestamptz NOT NULL DEFAULT now(),
    state           text NOT NULL DEFAULT 'open'
                    CHECK (state IN ('open', 'acknowledged', 'resolved')),
    acknowledged_by text NOT NULL DEFAULT '',
    resolved_by     text NOT NULL DEFAULT '',
    resolution      text NOT NULL DEFAULT '',
    UNIQUE (rule, subject)
);
CREATE INDEX violations_list ON violations (detected_at DESC, violation_id DESC);
CREATE INDEX violations_case ON violations (case_id) WHERE case_id <> '';

-- Reads of personal data, by reader, for the volume rule.
CREATE TABLE contact_reads (
    event_id text PRIMARY KEY,
    reader   text NOT NULL,
    read_at  timestamptz NOT NULL
);
CREATE INDEX contact_reads_reader ON contact_reads (reader, read_at);

CREATE TABLE inspection_samples (
    month    text PRIMARY KEY,
    -- The InspectionSampled payload as published.
    sample   bytea NOT NULL,
    drawn_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE inspection_scores (
    month       text NOT NULL,
    case_id     text NOT NULL,
    -- The InspectionScored payload as published.
    scored      bytea NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (month, case_id)
);
