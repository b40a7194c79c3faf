-- The current classification of each complaint, its history, and specialists' labels.

CREATE TABLE classifications (
    complaint_id   uuid PRIMARY KEY,
    reference      text        NOT NULL,
    -- The redacted text that was classified, and what the model saw with it.
    text           text        NOT NULL,
    language       text        NOT NULL,
    -- The redress.events.v1.Classification, as protobuf.
    current        bytea       NOT NULL,
    category_code  text        NOT NULL,
    cause_code     text        NOT NULL,
    severity       integer     NOT NULL,
    confidence     real        NOT NULL,
    -- pending (waits for a specialist), reviewed, not_needed
    review_status  text        NOT NULL,
    version        integer     NOT NULL,
    classified_at  timestamptz NOT NULL,
    -- The ComplaintClassified event minus its classification: replayed on reclassification.
    complaint      bytea       NOT NULL
);

CREATE INDEX classifications_review_queue ON classifications (classified_at, complaint_id)
    WHERE review_status = 'pending';

CREATE TABLE classification_history (
    complaint_id   uuid        NOT NULL REFERENCES classifications (complaint_id),
    version        integer     NOT NULL,
    classification bytea       NOT NULL,
    actor_subject  text        NOT NULL,
    actor_role     text        NOT NULL,
    note           text        NOT NULL DEFAULT '',
    at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (complaint_id, version)
);

-- Specialists' overrides, as labelled examples for retraining
-- (`redress classification export-examples`).
CREATE TABLE training_examples (
    complaint_id  uuid PRIMARY KEY REFERENCES classifications (complaint_id),
    text          text        NOT NULL,
    language      text        NOT NULL,
    category_code text        NOT NULL,
    cause_code    text        NOT NULL,
    labelled_by   text        NOT NULL,
    labelled_at   timestamptz NOT NULL DEFAULT now()
);
