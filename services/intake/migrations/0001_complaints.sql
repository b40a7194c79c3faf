-- Intake's records. Personal data is only ever in `sealed` (AES-256-GCM, key id beside it);
-- every other column holds redacted text or pseudonyms.

CREATE TABLE complaints (
    id                 uuid PRIMARY KEY,
    reference          text        NOT NULL UNIQUE,
    channel            text        NOT NULL,
    channel_ref        text        NOT NULL,
    kind               integer     NOT NULL,
    received_at        timestamptz NOT NULL,
    registered_at      timestamptz NOT NULL,
    consumer_ref       text        NOT NULL,
    vulnerability      jsonb       NOT NULL,
    preferred_contact  integer     NOT NULL,
    language           text        NOT NULL,
    product            text        NOT NULL,
    title              text        NOT NULL,
    description        text        NOT NULL,
    desired_resolution text        NOT NULL,
    amount_currency    text,
    amount_units       bigint,
    amount_nanos       integer,
    attachments        jsonb       NOT NULL,
    regulator_ref      text        NOT NULL,
    incident_at        timestamptz,
    locale             text        NOT NULL,
    recent_complaints  integer     NOT NULL,
    -- SHA-256 of the submission as received, and the path it came by (request or stream):
    -- together they tell a resend from the stream's copy of the same request.
    digest             bytea       NOT NULL,
    origin             text        NOT NULL,
    key_id             text        NOT NULL,
    sealed             bytea       NOT NULL,
    UNIQUE (channel, channel_ref)
);

CREATE INDEX complaints_by_consumer ON complaints (consumer_ref, received_at DESC);
CREATE INDEX complaints_by_received ON complaints (received_at DESC, id DESC);
CREATE INDEX complaints_by_key ON complaints (key_id);

-- The per-day counter behind human reference numbers (RD-20261122-000042).
CREATE TABLE reference_days (
    day  date    PRIMARY KEY,
    last integer NOT NULL
);

-- Why a submission was refused (no personal data: the violations name fields, not values).
CREATE TABLE rejections (
    id          uuid PRIMARY KEY,
    -- SHA-256 of the refused message: its request and its stream copy are refused once.
    digest      bytea       NOT NULL UNIQUE,
    channel     text        NOT NULL,
    channel_ref text        NOT NULL,
    violations  jsonb       NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX rejections_by_ref ON rejections (channel, channel_ref);

-- Every read of decrypted contact details (DESIGN §4).
CREATE TABLE contact_reads (
    id           uuid PRIMARY KEY,
    complaint_id uuid        NOT NULL REFERENCES complaints (id),
    reader       text        NOT NULL,
    role         text        NOT NULL,
    purpose      text        NOT NULL,
    read_at      timestamptz NOT NULL DEFAULT now()
);
