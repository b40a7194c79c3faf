-- One row per complaint: what analytics knows of it, merged from its events in any order
-- (src/facts.rs). The *_v columns are the versions (occurred-at, event id) that won.
CREATE TABLE facts (
    complaint_id        text PRIMARY KEY,
    received_at         timestamptz,
    registered_at       timestamptz,
    channel             text NOT NULL,
    kind                text NOT NULL,
    vulnerable          boolean NOT NULL,
    summary_product     text NOT NULL,
    class_v             text NOT NULL,
    category            text NOT NULL,
    cause               text NOT NULL,
    product_v           text NOT NULL,
    class_product       text NOT NULL,
    severity            text NOT NULL,
    severity_v          text NOT NULL,
    model_v             text NOT NULL,
    model_category      text NOT NULL,
    confidence          double precision,
    overridden          boolean NOT NULL,
    dept_v              text NOT NULL,
    department          text NOT NULL,
    partner_v           text NOT NULL,
    partner             text NOT NULL,
    regime              text NOT NULL,
    assigned_at         timestamptz,
    assignments         integer NOT NULL,
    contact_at          timestamptz,
    decided_v           text NOT NULL,
    decided_at          timestamptz,
    outcome             text NOT NULL,
    remedy_currency     text NOT NULL,
    remedy_units        bigint NOT NULL,
    root_causes         text[] NOT NULL,
    due_v               text NOT NULL,
    due_at              timestamptz,
    extension_tier      integer NOT NULL,
    review_requested    boolean NOT NULL,
    review_v            text NOT NULL,
    review_outcome      text NOT NULL,
    satisfaction_v      text NOT NULL,
    satisfaction        text NOT NULL,
    withdrawn           boolean NOT NULL,
    duplicate           boolean NOT NULL,
    escalated_mediation boolean NOT NULL,
    escalated_regulator boolean NOT NULL,
    reopened            integer NOT NULL
);

-- The aggregates: the sum of every fact's contribution (src/cells.rs), keyed by local day
-- and by month (the first day of the month), dimensions and measure. Updated by commutative
-- upserts of differences in the consumer's transaction.
CREATE TABLE agg_day (
    period      date NOT NULL,
    measure     text NOT NULL,
    channel     text NOT NULL,
    kind        text NOT NULL,
    product     text NOT NULL,
    category    text NOT NULL,
    cause       text NOT NULL,
    severity    text NOT NULL,
    vulnerable  boolean NOT NULL,
    partner     text NOT NULL,
    department  text NOT NULL,
    regime      text NOT NULL,
    detail      text NOT NULL,
    value       bigint NOT NULL,
    PRIMARY KEY (period, measure, channel, kind, product, category, cause, severity,
                 vulnerable, partner, department, regime, detail)
);

CREATE TABLE agg_month (LIKE agg_day INCLUDING ALL);

-- Alerts raised while their condition lasts (src/alerts.rs); one open row per condition.
CREATE TABLE alerts (
    alert_id     uuid PRIMARY KEY,
    kind         text NOT NULL,
    dimension    text NOT NULL,
    value        text NOT NULL,
    raised_at    timestamptz NOT NULL,
    resolved_at  timestamptz,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    observed     double precision NOT NULL,
    expected     double precision NOT NULL,
    threshold    double precision NOT NULL,
    method       text NOT NULL,
    summary      text NOT NULL
);
CREATE UNIQUE INDEX alerts_open ON alerts (kind, dimension, value) WHERE resolved_at IS NULL;
CREATE INDEX alerts_raised ON alerts (raised_at DESC, alert_id DESC);

