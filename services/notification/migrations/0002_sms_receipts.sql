-- SMS delivery receipts (status reports), as the providers push them or as we poll them. They
-- can arrive twice, late, or before our record of the send: each is kept once per (provider,
-- message id, status) and applied to its delivery when that delivery is recorded as sent —
-- whichever of the two commits last applies it (both take the same advisory lock).
CREATE TABLE sms_receipts (
    provider    TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('delivered', 'failed', 'pending')),
    code        TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    reported_at TIMESTAMPTZ,
    received_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    -- How it came: the provider's push, or our query for a gap.
    source      TEXT NOT NULL,
    -- Set once the receipt has been applied to its delivery (or found to change nothing).
    applied_at  TIMESTAMPTZ,
    PRIMARY KEY (provider, message_id, status)
);
CREATE INDEX sms_receipts_unapplied ON sms_receipts (provider, message_id) WHERE applied_at IS NULL;

CREATE INDEX deliveries_provider_message ON deliveries (provider, provider_message_id)
    WHERE provider_message_id IS NOT NULL;
