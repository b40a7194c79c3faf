-- Models learnt from specialists: every candidate trained, the shadow comparison that decided
-- it, and which one is active per slot (language, dimension). No row active for a slot: the
-- configured (or shipped) model is in use. Earlier active models stay for rollback.
CREATE TABLE models (
    id                uuid PRIMARY KEY,
    version           text        NOT NULL UNIQUE,
    language          text        NOT NULL,
    dimension         text        NOT NULL,
    -- The redress-classifier model artifact.
    artifact          bytea       NOT NULL,
    -- active, retired (a later promotion replaced it), rolled_back, rejected
    status            text        NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    status_changed_at timestamptz NOT NULL DEFAULT now(),
    -- promoted, kept_current, insufficient_evidence
    decision          text        NOT NULL,
    -- The criterion's findings, in words.
    reason            text        NOT NULL,
    -- The whole redress_classifier::Comparison: both models' figures, criterion, verdict.
    comparison        jsonb       NOT NULL,
    -- The active version it was compared with; `rules` when no model was active.
    compared_with     text        NOT NULL,
    training_examples integer     NOT NULL,
    shadow_examples   integer     NOT NULL,
    -- schedule:<period> or command:<subject>
    trigger           text        NOT NULL,
    -- The active version this one replaced when promoted (NULL: the configured model).
    replaces          text
);

CREATE UNIQUE INDEX models_one_active ON models (language, dimension) WHERE status = 'active';
CREATE INDEX models_newest ON models (created_at DESC, id DESC);
