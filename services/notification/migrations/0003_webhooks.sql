-- Department webhooks (Standard Webhooks). An endpoint receives the case events whose
-- subjects match its filter; each event becomes one message per endpoint, sent as due work
-- (queue `webhook`) on the retry schedule of crates/outbound/data/webhook-retry.json.

CREATE TABLE webhook_endpoints (
    id              UUID PRIMARY KEY,
    url             TEXT NOT NULL,
    department      TEXT NOT NULL,
    -- Case event subjects, NATS wildcards (`*` one token, `>` the rest).
    subjects        TEXT[] NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    -- Who registered it (the token's subject): told when it is disabled.
    owner           TEXT NOT NULL,
    scheme          TEXT NOT NULL CHECK (scheme IN ('v1', 'v1a')),
    -- Signing keys, oldest first: [{"key": "whsec_…" | "whsk_…", "expires_at": null | time}].
    -- A rotated-out key keeps signing beside the new one until it expires.
    keys            JSONB NOT NULL,
    state           TEXT NOT NULL DEFAULT 'enabled' CHECK (state IN ('enabled', 'disabled', 'deleted')),
    disabled_reason TEXT NOT NULL DEFAULT '',
    -- Since when every attempt failed; cleared by a success. A day of it disables.
    failing_since   TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_department ON webhook_endpoints (department);

CREATE TABLE webhook_messages (
    -- webhook-id: msg_<uuidv7>, the same on every attempt and replay (receivers dedupe on it).
    id             TEXT PRIMARY KEY,
    endpoint_id    UUID NOT NULL REFERENCES webhook_endpoints (id),
    event_id       TEXT NOT NULL,
    subject        TEXT NOT NULL,
    -- The body exactly as signed and sent: the event in proto3 JSON (no personal data).
    body           TEXT NOT NULL,
    occurred_at    TIMESTAMPTZ NOT NULL,
    state          TEXT NOT NULL DEFAULT 'pending'
                   CHECK (state IN ('pending', 'delivered', 'failed', 'skipped')),
    attempts       INT NOT NULL DEFAULT 0,
    -- Failed attempts since it was last (re)scheduled: the step of the retry schedule.
    round_failures INT NOT NULL DEFAULT 0,
    -- How many times it was replayed (the due-work key of each run: id, id#1, id#2, …).
    replays        INT NOT NULL DEFAULT 0,
    last_status    INT NOT NULL DEFAULT 0,
    last_error     TEXT NOT NULL DEFAULT '',
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at   TIMESTAMPTZ,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_messages_endpoint ON webhook_messages (endpoint_id, occurred_at);

CREATE TABLE webhook_attempts (
    message_id TEXT NOT NULL REFERENCES webhook_messages (id),
    attempt    INT NOT NULL,
    at         TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    status     INT NOT NULL DEFAULT 0,
    outcome    TEXT NOT NULL CHECK (outcome IN ('delivered', 'retry', 'gone', 'refused')),
    detail     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (message_id, attempt)
);
