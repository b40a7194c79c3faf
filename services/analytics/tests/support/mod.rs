//! Generated complaint histories: every event as the bus carries it (an envelope) and as a
//! flat row (`Raw`) the tests' plain-SQL computation reads.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use redress_proto::{
    common::v1::{Money, Severity},
    events::v1::{
        CaseAssigned, CaseCreated, CaseDecided, CaseEscalated, CaseExtended, CaseHeader,
        CaseReclassified, CaseReopened, CaseReviewRequested, CaseSatisfactionRecorded,
        CaseWorkStarted, Classification, ComplaintClassified, ComplaintReceived,
        ComplaintReclassified, ComplaintRejected, ComplaintSummary, ComplaintWithdrawn,
        DuplicateSuspected, Event, FieldViolation, Remedy, TaxonomyLabel, Vulnerability,
        event::Payload,
    },
};
use redress_runtime::event::timestamp;
use serde::Serialize;

/// A small deterministic generator (splitmix64): the same seed, the same data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

pub const CHANNELS: &[&str] = &["app", "web", "hotline", "wechat", "letter"];
pub const CATEGORIES: &[&str] = &["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08"];
pub const CAUSES: &[&str] = &["C01", "C02", "C03", "C04", "C05", "C06"];
pub const PRODUCTS: &[&str] = &["credit_card", "mortgage", "deposit", "wealth", "insurance"];
pub const DEPARTMENTS: &[&str] = &["cards", "loans", "retail", "wealth", "operations"];
pub const PARTNERS: &[&str] = &["P-01", "P-02", "P-03"];
pub const TAGS: &[&str] = &[
    "fee-disclosure",
    "system-outage",
    "staff-conduct",
    "collection",
    "misselling",
    "delay",
];
pub const OUTCOMES: &[&str] = &["upheld", "partly_upheld", "not_upheld"];
pub const SATISFACTION: &[&str] = &["satisfied", "neutral", "dissatisfied", "no_answer"];
pub const CODES: &[&str] = &["required", "too_long", "invalid_format"];

/// One event, flat, as the plain-SQL computation reads it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Raw {
    pub id: String,
    pub complaint_id: String,
    pub kind: &'static str,
    pub at: DateTime<Utc>,
    pub received_at: Option<DateTime<Utc>>,
    pub registered_at: Option<DateTime<Utc>>,
    pub channel: String,
    pub ckind: String,
    pub product: String,
    pub vulnerable: bool,
    pub category: String,
    pub cause: String,
    pub severity: String,
    pub confidence: Option<f64>,
    pub department: String,
    pub partner: String,
    pub regime: String,
    pub due_at: Option<DateTime<Utc>>,
    pub tier: i32,
    pub outcome: String,
    pub review: bool,
    pub currency: String,
    pub units: i64,
    pub tags: Vec<String>,
    pub satisfaction: String,
    pub regulator: bool,
    pub codes: Vec<String>,
}

fn severity_enum(s: &str) -> i32 {
    match s {
        "low" => Severity::Low as i32,
        "medium" => Severity::Medium as i32,
        "high" => Severity::High as i32,
        _ => Severity::Critical as i32,
    }
}

fn label(code: &str) -> Option<TaxonomyLabel> {
    Some(TaxonomyLabel {
        code: code.to_owned(),
        ..Default::default()
    })
}

/// The envelope the bus would carry for `raw`.
pub fn envelope(raw: &Raw) -> Event {
    let header = || {
        Some(CaseHeader {
            case_id: format!("case-{}", raw.complaint_id),
            complaint_id: raw.complaint_id.clone(),
            department: raw.department.clone(),
            ..Default::default()
        })
    };
    let summary = || ComplaintSummary {
        complaint_id: raw.complaint_id.clone(),
        channel: redress_proto::common::v1::Channel::from_str_name(&format!(
            "CHANNEL_{}",
            raw.channel.to_uppercase()
        ))
        .unwrap_or_default() as i32,
        kind: if raw.ckind == "inquiry" { 2 } else { 1 },
        received_at: raw.received_at.map(timestamp),
        registered_at: raw.registered_at.map(timestamp),
        product: raw.product.clone(),
        vulnerability: Some(Vulnerability {
            elderly: raw.vulnerable,
            ..Default::default()
        }),
        ..Default::default()
    };
    let class = || Classification {
        category: label(&raw.category),
        cause: label(&raw.cause),
        product: raw.product.clone(),
        severity: severity_enum(&raw.severity),
        confidence: raw.confidence.unwrap_or(1.0),
        ..Default::default()
    };
    let outcome = |o: &str| match o {
        "upheld" => 1,
        "partly_upheld" => 2,
        _ => 3,
    };
    let payload = match raw.kind {
        "received" => Payload::ComplaintReceived(ComplaintReceived {
            complaint: Some(summary()),
        }),
        "classified" => Payload::ComplaintClassified(ComplaintClassified {
            complaint: Some(summary()),
            classification: Some(class()),
        }),
        "reclassified" => Payload::ComplaintReclassified(ComplaintReclassified {
            complaint_id: raw.complaint_id.clone(),
            classification: Some(class()),
            ..Default::default()
        }),
        "case_reclassified" => Payload::CaseReclassified(CaseReclassified {
            header: header(),
            category_code: raw.category.clone(),
            cause_code: raw.cause.clone(),
            product: raw.product.clone(),
        }),
        "duplicate" => Payload::DuplicateSuspected(DuplicateSuspected {
            complaint_id: raw.complaint_id.clone(),
            ..Default::default()
        }),
        "withdrawn" => Payload::ComplaintWithdrawn(ComplaintWithdrawn {
            complaint_id: raw.complaint_id.clone(),
            ..Default::default()
        }),
        "created" => Payload::CaseCreated(CaseCreated {
            header: header(),
            complaint: Some(summary()),
            decision_due: raw.due_at.map(timestamp),
            regime: raw.regime.clone(),
            partner: raw.partner.clone(),
            ..Default::default()
        }),
        "assigned" => Payload::CaseAssigned(CaseAssigned {
            header: header(),
            partner: raw.partner.clone(),
            ..Default::default()
        }),
        "work_started" => Payload::CaseWorkStarted(CaseWorkStarted { header: header() }),
        "extended" => Payload::CaseExtended(CaseExtended {
            header: header(),
            tier: raw.tier as u32,
            decision_due: raw.due_at.map(timestamp),
            ..Default::default()
        }),
        "decided" => Payload::CaseDecided(CaseDecided {
            header: header(),
            outcome: outcome(&raw.outcome),
            remedy: (!raw.currency.is_empty()).then(|| Remedy {
                amount: Some(Money {
                    currency_code: raw.currency.clone(),
                    units: raw.units,
                    nanos: 0,
                }),
                action: String::new(),
            }),
            root_cause_tags: raw.tags.clone(),
            review: raw.review,
            ..Default::default()
        }),
        "review_requested" => Payload::CaseReviewRequested(CaseReviewRequested {
            header: header(),
            ..Default::default()
        }),
        "escalated" => Payload::CaseEscalated(CaseEscalated {
            header: header(),
            target: if raw.regulator { 2 } else { 1 },
            ..Default::default()
        }),
        "satisfaction" => Payload::CaseSatisfactionRecorded(CaseSatisfactionRecorded {
            header: header(),
            satisfaction: match raw.satisfaction.as_str() {
                "satisfied" => 1,
                "neutral" => 2,
                "dissatisfied" => 3,
                _ => 4,
            },
            comment: String::new(),
        }),
        "reopened" => Payload::CaseReopened(CaseReopened {
            header: header(),
            reason: String::new(),
        }),
        "rejected" => Payload::ComplaintRejected(ComplaintRejected {
            channel: redress_proto::common::v1::Channel::from_str_name(&format!(
                "CHANNEL_{}",
                raw.channel.to_uppercase()
            ))
            .unwrap_or_default() as i32,
            channel_ref: String::new(),
            violations: raw
                .codes
                .iter()
                .map(|c| FieldViolation {
                    field: "x".into(),
                    code: c.clone(),
                    message: String::new(),
                })
                .collect(),
        }),
        other => panic!("no envelope for {other}"),
    };
    Event {
        id: raw.id.clone(),
        occurred_at: Some(timestamp(raw.at)),
        source: "generator".into(),
        aggregate_id: raw.complaint_id.clone(),
        aggregate_version: 1,
        actor: None,
        payload: Some(payload),
    }
}

/// `n` complaints received uniformly over `days` days from `start`, each with its history,
/// and `n / 25` rejected submissions. Events in time order.
pub fn generate(seed: u64, n: usize, start: DateTime<Utc>, days: i64) -> Vec<Raw> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n * 8);
    let mut seq = 0u64;
    let mut id = |rng: &mut Rng| {
        seq += 1;
        format!(
            "{:08x}-{:04x}-7000-8000-{:012x}",
            seed as u32,
            rng.below(0xffff),
            seq
        )
    };
    for i in 0..n {
        let cid = format!("c-{seed}-{i:07}");
        let received = start + Duration::seconds(rng.below((days * 86400) as u64) as i64);
        let registered = received + Duration::seconds(rng.below(600) as i64);
        let base = Raw {
            complaint_id: cid.clone(),
            received_at: Some(received),
            registered_at: Some(registered),
            channel: rng.pick(CHANNELS).into(),
            ckind: if rng.chance(0.1) {
                "inquiry"
            } else {
                "complaint"
            }
            .into(),
            product: rng.pick(PRODUCTS).into(),
            vulnerable: rng.chance(0.1),
            category: rng.pick(CATEGORIES).into(),
            cause: rng.pick(CAUSES).into(),
            severity: rng.pick(&["low", "medium", "high", "critical"]).into(),
            regime: "cn-nfra".into(),
            partner: if rng.chance(0.2) {
                rng.pick(PARTNERS).into()
            } else {
                String::new()
            },
            ..Default::default()
        };
        let mut push =
            |rng: &mut Rng, kind: &'static str, at: DateTime<Utc>, f: &dyn Fn(&mut Raw)| {
                let mut r = base.clone();
                r.id = id(rng);
                r.kind = kind;
                r.at = at;
                f(&mut r);
                out.push(r);
            };
        let secs = |rng: &mut Rng, lo: i64, hi: i64| {
            Duration::seconds(lo + rng.below((hi - lo) as u64) as i64)
        };
        let confidence = (rng.below(1000) as f64) / 1000.0;
        push(&mut rng, "received", registered, &|_| {});
        push(
            &mut rng,
            "classified",
            registered + Duration::seconds(30),
            &|r| {
                r.confidence = Some(confidence);
            },
        );
        if rng.chance(0.05) {
            let (cat, at) = (
                rng.pick(CATEGORIES),
                registered + secs(&mut rng, 3600, 7200),
            );
            push(&mut rng, "reclassified", at, &|r| r.category = cat.into());
        }
        let due = received + Duration::days(15);
        push(
            &mut rng,
            "created",
            registered + Duration::seconds(60),
            &|r| {
                r.department = "triage".into();
                r.due_at = Some(due);
            },
        );
        let assigned = registered + secs(&mut rng, 3600, 48 * 3600);
        let dept = rng.pick(DEPARTMENTS);
        push(&mut rng, "assigned", assigned, &|r| {
            r.department = dept.into()
        });
        let mut dept_now = dept;
        if rng.chance(0.1) {
            let (d2, at) = (
                rng.pick(DEPARTMENTS),
                assigned + secs(&mut rng, 3600, 72 * 3600),
            );
            push(&mut rng, "assigned", at, &|r| r.department = d2.into());
            dept_now = d2;
        }
        let started = assigned + secs(&mut rng, 600, 24 * 3600);
        push(&mut rng, "work_started", started, &|r| {
            r.department = dept_now.into()
        });
        if rng.chance(0.08) {
            let at = started + secs(&mut rng, 86400, 5 * 86400);
            let due_now = due + Duration::days(15);
            push(&mut rng, "extended", at, &|r| {
                r.department = dept_now.into();
                r.tier = 1;
                r.due_at = Some(due_now);
            });
        }
        if rng.chance(0.05) {
            let (cat, at) = (rng.pick(CATEGORIES), started + secs(&mut rng, 3600, 86400));
            push(&mut rng, "case_reclassified", at, &|r| {
                r.department = dept_now.into();
                r.category = cat.into();
            });
        }
        if rng.chance(0.03) {
            let at = registered + Duration::seconds(45);
            push(&mut rng, "duplicate", at, &|_| {});
        }
        if rng.chance(0.02) {
            let at = started + secs(&mut rng, 3600, 86400);
            push(&mut rng, "withdrawn", at, &|_| {});
            continue;
        }
        if !rng.chance(0.9) {
            continue;
        }
        let decided = received + secs(&mut rng, 86400, 22 * 86400);
        let decided = decided.max(started + Duration::seconds(60));
        let outcome = rng.pick(OUTCOMES);
        let (currency, units) = if rng.chance(0.3) {
            (
                if rng.chance(0.1) { "USD" } else { "CNY" },
                100 + rng.below(5000) as i64,
            )
        } else {
            ("", 0)
        };
        let tags: Vec<String> = (0..1 + rng.below(2))
            .map(|_| rng.pick(TAGS).to_owned())
            .collect();
        push(&mut rng, "decided", decided, &|r| {
            r.department = dept_now.into();
            r.outcome = outcome.into();
            r.currency = currency.into();
            r.units = units;
            r.tags = tags.clone();
        });
        if rng.chance(0.1) {
            let at = decided + secs(&mut rng, 86400, 10 * 86400);
            push(&mut rng, "review_requested", at, &|r| {
                r.department = dept_now.into()
            });
            if rng.chance(0.5) {
                let (o2, at2) = (rng.pick(OUTCOMES), at + secs(&mut rng, 86400, 5 * 86400));
                push(&mut rng, "decided", at2, &|r| {
                    r.department = dept_now.into();
                    r.outcome = o2.into();
                    r.review = true;
                });
            }
        }
        if rng.chance(0.7) {
            let (s, at) = (
                rng.pick(SATISFACTION),
                decided + secs(&mut rng, 86400, 7 * 86400),
            );
            push(&mut rng, "satisfaction", at, &|r| {
                r.department = dept_now.into();
                r.satisfaction = s.into();
            });
        }
        if rng.chance(0.02) {
            let (reg, at) = (rng.chance(0.3), decided + secs(&mut rng, 86400, 20 * 86400));
            push(&mut rng, "escalated", at, &|r| {
                r.department = dept_now.into();
                r.regulator = reg;
            });
        }
        if rng.chance(0.01) {
            let at = decided + secs(&mut rng, 86400, 20 * 86400);
            push(&mut rng, "reopened", at, &|r| {
                r.department = dept_now.into()
            });
        }
    }
    for _ in 0..n / 25 {
        let at = start + Duration::seconds(rng.below((days * 86400) as u64) as i64);
        let mut codes = vec![rng.pick(CODES).to_owned()];
        if rng.chance(0.3) {
            codes.push(rng.pick(CODES).to_owned());
        }
        out.push(Raw {
            id: id(&mut rng),
            kind: "rejected",
            at,
            channel: rng.pick(CHANNELS).into(),
            codes,
            ..Default::default()
        });
    }
    out.sort_by(|a, b| a.at.cmp(&b.at).then(a.id.cmp(&b.id)));
    out
}

/// 2026-01-01 00:00 Beijing time.
pub fn start_2026() -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .unwrap()
        .with_timezone(&Utc)
}

/// The message a publisher would send for `event`, with `msg_id` as `Nats-Msg-Id` (a
/// different id for the same event is a redelivery JetStream cannot recognise).
pub fn outgoing(event: &Event, msg_id: &str) -> redress_runtime::bus::Outgoing {
    use prost::Message as _;
    use redress_proto::bus::headers;
    let payload = event.payload.as_ref().unwrap();
    let mut h = async_nats::HeaderMap::new();
    h.insert(headers::MSG_ID, msg_id);
    h.insert(headers::EVENT_TYPE, payload.event_type());
    h.insert(headers::CONTENT_TYPE, headers::PROTOBUF);
    redress_runtime::bus::Outgoing {
        subject: payload.subject(),
        headers: h,
        payload: bytes::Bytes::from(event.encode_to_vec()),
    }
}

/// The aggregates of `pool`'s schema, non-zero cells, in key order.
pub async fn cells(pool: &sqlx::PgPool, table: &str) -> Vec<(String, i64)> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT concat_ws('|', period, measure, channel, kind, product, category, cause, severity,
                vulnerable, partner, department, regime, detail), value
         FROM {table} WHERE value <> 0 ORDER BY 1"
    )))
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The reference figures for `events`: applied directly, in order, into schema `schema`.
pub async fn reference(
    env: &redress_runtime::testing::TestEnv,
    schema: &str,
    events: &[Event],
) -> sqlx::PgPool {
    let db = redress_runtime::db::Database::connect(
        &env.database_url,
        redress_analytics::SCHEMA,
        &env.schema(schema),
        2,
        &redress_analytics::MIGRATIONS,
    )
    .await
    .unwrap();
    let ctx = redress_analytics::context("cn-nfra").unwrap();
    let evs: Vec<_> = events
        .iter()
        .filter_map(redress_analytics::events::from_event)
        .collect();
    let mut tx = db.pool().begin().await.unwrap();
    redress_analytics::rebuild::apply_new(&mut tx, &ctx, "reference", &evs)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    db.pool().clone()
}
