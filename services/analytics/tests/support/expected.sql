-- The aggregates computed independently, in plain SQL, from the raw events (table `raw`) and
-- the working days (table `workdays`): what agg_day must hold, cell for cell.
CREATE TABLE expected AS
WITH f AS (
  SELECT complaint_id,
    min(received_at) FILTER (WHERE kind = 'received') AS received_at,
    min(registered_at) FILTER (WHERE kind = 'received') AS registered_at,
    min(channel) FILTER (WHERE kind = 'received') AS channel,
    min(ckind) FILTER (WHERE kind = 'received') AS ckind,
    min(product) FILTER (WHERE kind = 'received') AS summary_product,
    bool_or(vulnerable) FILTER (WHERE kind = 'received') AS vulnerable,
    (array_agg(category ORDER BY at DESC, id COLLATE "C" DESC)
       FILTER (WHERE kind IN ('classified', 'reclassified', 'case_reclassified')))[1] AS category,
    (array_agg(cause ORDER BY at DESC, id COLLATE "C" DESC)
       FILTER (WHERE kind IN ('classified', 'reclassified', 'case_reclassified')))[1] AS cause,
    (array_agg(product ORDER BY at DESC, id COLLATE "C" DESC)
       FILTER (WHERE kind IN ('classified', 'reclassified', 'case_reclassified') AND product <> ''))[1] AS class_product,
    (array_agg(severity ORDER BY at DESC, id COLLATE "C" DESC)
       FILTER (WHERE kind IN ('classified', 'reclassified') AND severity <> ''))[1] AS severity,
    (array_agg(category ORDER BY at, id COLLATE "C") FILTER (WHERE kind = 'classified'))[1] AS model_category,
    (array_agg(confidence ORDER BY at, id COLLATE "C") FILTER (WHERE kind = 'classified'))[1] AS confidence,
    bool_or(kind IN ('reclassified', 'case_reclassified')) AS overridden,
    (array_agg(department ORDER BY at DESC, id COLLATE "C" DESC)
       FILTER (WHERE kind IN ('created', 'assigned') AND department <> ''))[1] AS department,
    (array_agg(partner ORDER BY at DESC, id COLLATE "C" DESC)
       FILTER (WHERE kind IN ('created', 'assigned') AND partner <> ''))[1] AS partner,
    min(regime) FILTER (WHERE kind = 'created' AND regime <> '') AS regime,
    min(at) FILTER (WHERE kind = 'assigned') AS assigned_at,
    count(*) FILTER (WHERE kind = 'assigned') AS assignments,
    min(at) FILTER (WHERE kind = 'work_started') AS contact_at,
    min(at) FILTER (WHERE kind = 'decided' AND NOT review) AS decided_at,
    (array_agg(outcome ORDER BY at, id COLLATE "C") FILTER (WHERE kind = 'decided' AND NOT review))[1] AS outcome,
    (array_agg(currency ORDER BY at, id COLLATE "C") FILTER (WHERE kind = 'decided' AND NOT review))[1] AS currency,
    (array_agg(units ORDER BY at, id COLLATE "C") FILTER (WHERE kind = 'decided' AND NOT review))[1] AS units,
    (array_agg(array_to_string(tags, '|') ORDER BY at, id COLLATE "C") FILTER (WHERE kind = 'decided' AND NOT review))[1] AS tags,
    (array_agg(due_at ORDER BY at DESC, id COLLATE "C" DESC)
       FILTER (WHERE kind IN ('created', 'extended') AND due_at IS NOT NULL))[1] AS due_at,
    coalesce(max(tier) FILTER (WHERE kind = 'extended'), 0) AS tier,
    bool_or(kind = 'review_requested') AS review_requested,
    (array_agg(outcome ORDER BY at DESC, id COLLATE "C" DESC) FILTER (WHERE kind = 'decided' AND review))[1] AS review_outcome,
    (array_agg(satisfaction ORDER BY at DESC, id COLLATE "C" DESC) FILTER (WHERE kind = 'satisfaction'))[1] AS satisfaction,
    bool_or(kind = 'withdrawn') AS withdrawn,
    bool_or(kind = 'duplicate') AS duplicate,
    bool_or(kind = 'escalated' AND NOT regulator) AS esc_mediation,
    bool_or(kind = 'escalated' AND regulator) AS esc_regulator,
    count(*) FILTER (WHERE kind = 'reopened') AS reopened
  FROM raw WHERE kind <> 'rejected' GROUP BY complaint_id
), d AS (
  SELECT f.*,
    coalesce(f.class_product, f.summary_product, '') AS prod,
    (f.received_at AT TIME ZONE 'Asia/Shanghai')::date AS rday,
    (f.decided_at AT TIME ZONE 'Asia/Shanghai')::date AS dday
  FROM f WHERE received_at IS NOT NULL
), durations AS (
  SELECT d.*, x.name, x.counted, x.at,
    (x.at AT TIME ZONE 'Asia/Shanghai')::date AS day,
    greatest(trunc(extract(epoch FROM x.at - d.received_at))::bigint, 0) AS secs
  FROM d, LATERAL (VALUES ('assign', 'assigned', d.assigned_at),
                          ('contact', 'contacted', d.contact_at),
                          ('decide', 'decided', d.decided_at)) AS x(name, counted, at)
  WHERE x.at IS NOT NULL
), cells AS (
  SELECT rday AS period, m.measure, m.detail, m.value, d.*
  FROM d, LATERAL (VALUES
    ('received', '', 1::bigint),
    ('duplicates', '', duplicate::int::bigint),
    ('withdrawn', '', withdrawn::int::bigint),
    ('escalated_mediation', '', coalesce(esc_mediation, false)::int::bigint),
    ('escalated_regulator', '', coalesce(esc_regulator, false)::int::bigint),
    ('reopened', '', reopened),
    ('reassigned', '', (assignments > 1)::int::bigint),
    ('reassignments', '', greatest(assignments - 1, 0)),
    ('extended', 'tier-' || tier, (tier > 0)::int::bigint),
    ('classified', model_category, (model_category IS NOT NULL)::int::bigint),
    ('overridden', model_category, (model_category IS NOT NULL AND overridden)::int::bigint),
    ('confidence_' || least(greatest(floor(confidence * 10), 0), 9)::int, model_category,
       (model_category IS NOT NULL)::int::bigint)
  ) AS m(measure, detail, value)
  UNION ALL
  SELECT (registered_at AT TIME ZONE 'Asia/Shanghai')::date, 'registered', '', 1, d.* FROM d
  WHERE registered_at IS NOT NULL
  UNION ALL
  SELECT u.day, m.measure, '', m.value, d.*
  FROM durations u JOIN d USING (complaint_id), LATERAL (VALUES
    (u.counted, 1::bigint),
    (u.name || '_secs', u.secs),
    (u.name || '_wdays', (SELECT count(*) FROM workdays w WHERE w.d > d.rday AND w.d <= u.day)),
    ('hist_' || u.name || '_' || lpad((SELECT count(*) FROM unnest(ARRAY[1, 2, 4, 8, 12, 24, 48, 72, 96, 120, 168, 240, 336, 480, 720, 1080, 1440]) e
                                        WHERE e < (u.secs + 3599) / 3600)::text, 2, '0'), 1)
  ) AS m(measure, value)
  UNION ALL
  SELECT dday, m.measure, m.detail, m.value, d.*
  FROM d, LATERAL (VALUES
    (CASE WHEN decided_at <= due_at THEN 'on_time' ELSE 'late' END, '', (due_at IS NOT NULL)::int::bigint),
    (outcome, '', 1::bigint),
    ('remedies', currency, (currency <> '' AND units <> 0)::int::bigint),
    ('remedy_units', currency, CASE WHEN currency <> '' THEN units ELSE 0 END),
    ('reviewed', '', coalesce(review_requested, false)::int::bigint),
    ('overturned', '', (coalesce(review_outcome, '') <> '' AND review_outcome <> outcome)::int::bigint),
    (satisfaction, '', (satisfaction IS NOT NULL)::int::bigint)
  ) AS m(measure, detail, value)
  WHERE decided_at IS NOT NULL AND m.measure IS NOT NULL
  UNION ALL
  SELECT DISTINCT dday, 'root_cause', t.tag, 1::bigint, d.*
  FROM d, unnest(string_to_array(d.tags, '|')) AS t(tag)
  WHERE decided_at IS NOT NULL AND d.tags <> ''
)
SELECT period, measure, coalesce(channel, '') AS channel, coalesce(ckind, '') AS kind,
       prod AS product, coalesce(category, '') AS category, coalesce(cause, '') AS cause,
       coalesce(severity, '') AS severity, coalesce(vulnerable, false) AS vulnerable,
       coalesce(partner, '') AS partner, coalesce(department, '') AS department,
       coalesce(regime, '') AS regime, coalesce(detail, '') AS detail, sum(value)::bigint AS value
FROM cells
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13
HAVING sum(value) <> 0
UNION ALL
SELECT (at AT TIME ZONE 'Asia/Shanghai')::date, m.measure, channel, '', '', '', '', '', false,
       '', '', '', m.detail, count(*)
FROM (SELECT DISTINCT r.id, r.at, r.channel, x.measure, x.detail
      FROM raw r, LATERAL (SELECT 'rejected' AS measure, '' AS detail
                           UNION ALL SELECT 'rejections_by_code', c FROM unnest(r.codes) c) x
      WHERE r.kind = 'rejected') m
GROUP BY 1, 2, 3, 13;
