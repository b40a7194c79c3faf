-- The Art. 21 proof (cn-nfra): one row per notice owed to a consumer, recorded before any
-- attempt to send it. No address and no text is ever stored: the masked address, the template
-- id and version, and the SHA-256 of what was rendered are.

-- What the service knows about each case from the bus (no personal data): enough to choose
-- the regime and render a notice.
CREATE TABLE cases (
    case_id      TEXT PRIMARY KEY,
    complaint_id TEXT NOT NULL,
    reference    TEXT NOT NULL DEFAULT '',
    regime       TEXT NOT NULL,
    department   TEXT NOT NULL DEFAULT '',
    decision_due TIMESTAMPTZ
);
CREATE INDEX cases_complaint ON cases (complaint_id);

CREATE TABLE deliveries (
    id             UUID PRIMARY KEY,
    -- What makes the notice once-only: the triggering event's id, or the case for a notice
    -- a case gets once (receipt, withdrawal). A redelivered event finds its row and adds none.
    dedupe_key     TEXT NOT NULL,
    kind           TEXT NOT NULL,
    case_id        TEXT NOT NULL DEFAULT '',
    complaint_id   TEXT NOT NULL,
    department     TEXT NOT NULL DEFAULT '',
    regime         TEXT NOT NULL,
    legal          BOOLEAN NOT NULL,
    article        TEXT NOT NULL,
    due_by         TIMESTAMPTZ,
    -- Non-personal facts the template needs (reference, dates, outcome, remedy…).
    facts          JSONB NOT NULL,
    state          TEXT NOT NULL DEFAULT 'pending'
                   CHECK (state IN ('pending', 'sent', 'delivered', 'failed', 'in_doubt', 'suppressed')),
    channel        TEXT,
    language       TEXT,
    masked_address TEXT,
    template_id    TEXT,
    template_version INT,
    body_sha256    TEXT,
    provider       TEXT,
    provider_message_id TEXT,
    quiet_hours_overridden BOOLEAN NOT NULL DEFAULT false,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at        TIMESTAMPTZ,
    UNIQUE (dedupe_key, kind)
);
CREATE INDEX deliveries_case ON deliveries (case_id, created_at);
CREATE INDEX deliveries_complaint ON deliveries (complaint_id, created_at);

-- Every status a delivery went through, with its time (the proof's history).
CREATE TABLE delivery_status (
    delivery_id UUID NOT NULL REFERENCES deliveries (id),
    at          TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    status      TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX delivery_status_delivery ON delivery_status (delivery_id, at);

-- Each attempt is committed *before* the send; `outcome` is written after it. An attempt left
-- without an outcome is a send that may or may not have happened (a crash between the two):
-- it is reported in doubt, never repeated silently.
CREATE TABLE attempts (
    delivery_id UUID NOT NULL REFERENCES deliveries (id),
    attempt     INT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    channel     TEXT NOT NULL,
    provider    TEXT NOT NULL,
    outcome     TEXT CHECK (outcome IN ('sent', 'failed')),
    detail      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (delivery_id, attempt)
);

-- Work a specialist must do by hand: a notice no channel could deliver, or one in doubt.
CREATE TABLE specialist_tasks (
    delivery_id UUID PRIMARY KEY REFERENCES deliveries (id),
    reason      TEXT NOT NULL,
    in_doubt    BOOLEAN NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at TIMESTAMPTZ
);

-- Survey opt-outs (legal notices cannot be opted out of), by pseudonymous consumer.
CREATE TABLE survey_opt_outs (
    complaint_id TEXT PRIMARY KEY,
    at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
