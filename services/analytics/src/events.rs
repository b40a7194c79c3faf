//! The events analytics reads, reduced to what a figure needs: one enum, made from the
//! envelope's payload whichever path it came by (the live consumers, a rebuild, a test's
//! generator), so every path counts through the same code.

use chrono::{DateTime, Utc};
use redress_proto::{
    common::v1::{Channel, Severity},
    events::v1::{
        CaseHeader, ComplaintKind, ComplaintSummary, DecisionOutcome, EscalationTarget, Event,
        Satisfaction, event::Payload,
    },
};

/// One event as analytics sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ev {
    /// The envelope's id (the inbox key; the tie-break between events of the same instant).
    pub id: String,
    /// When it happened: the period it lands in, and its order against other events.
    pub at: DateTime<Utc>,
    pub body: Body,
}

/// What happened, to a complaint (merged into its fact) or on its own (counted as it is).
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Complaint {
        complaint_id: String,
        change: Change,
    },
    /// A submission intake refused: counted per violation code.
    Rejected { channel: String, codes: Vec<String> },
    /// A notice to a consumer sent, or failed.
    Notice {
        kind: String,
        department: String,
        failed: bool,
    },
}

/// What an event says about one complaint.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Summary(Summary),
    Duplicate,
    Withdrawn,
    Classified(Class),
    /// A specialist's override of the classification.
    Reclassified(Class),
    Created {
        department: String,
        partner: String,
        regime: String,
        due: Option<DateTime<Utc>>,
    },
    Assigned {
        department: String,
        partner: String,
    },
    WorkStarted,
    Extended {
        tier: u32,
        due: Option<DateTime<Utc>>,
    },
    /// The running deadline moved (clock resumed, new facts).
    DueMoved(Option<DateTime<Utc>>),
    Decided(Decision),
    ReviewRequested,
    Escalated {
        regulator: bool,
    },
    Satisfaction(String),
    Reopened,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    pub received_at: Option<DateTime<Utc>>,
    pub registered_at: Option<DateTime<Utc>>,
    pub channel: String,
    pub kind: String,
    pub product: String,
    pub vulnerable: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Class {
    pub category: String,
    pub cause: String,
    pub product: String,
    /// Empty when the event does not say (a case's reclassification keeps the severity).
    pub severity: String,
    /// The overall confidence of a classifier's labels (none for a specialist's).
    pub confidence: Option<f64>,
    /// Below the classifier's review threshold: waits for a specialist.
    pub needs_review: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decision {
    pub outcome: String,
    pub review: bool,
    pub remedy_currency: String,
    pub remedy_units: i64,
    pub root_causes: Vec<String>,
}

/// The lower-case name of a proto enum value without its prefix (`CHANNEL_WALK_IN` → `walk_in`).
fn token(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix)
        .unwrap_or(name)
        .to_ascii_lowercase()
}

fn channel(value: i32) -> String {
    Channel::try_from(value).map_or_else(
        |_| "unspecified".into(),
        |c| token(c.as_str_name(), "CHANNEL_"),
    )
}

fn severity(value: i32) -> String {
    Severity::try_from(value).map_or_else(
        |_| String::new(),
        |s| match s {
            Severity::Unspecified => String::new(),
            s => token(s.as_str_name(), "SEVERITY_"),
        },
    )
}

/// To the microsecond, as Postgres keeps it, so a fact reads back exactly as it was merged.
fn time(t: Option<&redress_proto::types::Timestamp>) -> Option<DateTime<Utc>> {
    t.and_then(redress_runtime::event::from_timestamp)
        .and_then(|t| DateTime::from_timestamp_micros(t.timestamp_micros()))
}

fn summary(c: &ComplaintSummary) -> Summary {
    let v = c.vulnerability.unwrap_or_default();
    Summary {
        received_at: time(c.received_at.as_ref()),
        registered_at: time(c.registered_at.as_ref()),
        channel: channel(c.channel),
        kind: ComplaintKind::try_from(c.kind).map_or_else(
            |_| String::new(),
            |k| token(k.as_str_name(), "COMPLAINT_KIND_"),
        ),
        product: c.product.clone(),
        vulnerable: v.elderly
            || v.disability
            || v.minor
            || v.financial_hardship
            || v.language_barrier
            || v.illness,
    }
}

fn class(c: &redress_proto::events::v1::Classification, specialist: bool) -> Class {
    Class {
        category: c
            .category
            .as_ref()
            .map(|l| l.code.clone())
            .unwrap_or_default(),
        cause: c.cause.as_ref().map(|l| l.code.clone()).unwrap_or_default(),
        product: c.product.clone(),
        severity: severity(c.severity),
        confidence: (!specialist).then_some(c.confidence),
        needs_review: !specialist && c.needs_review,
    }
}

fn on(header: Option<&CaseHeader>, change: Change) -> Option<Body> {
    let complaint_id = header.map(|h| h.complaint_id.clone()).unwrap_or_default();
    (!complaint_id.is_empty()).then_some(Body::Complaint {
        complaint_id,
        change,
    })
}

fn about(complaint_id: &str, change: Change) -> Option<Body> {
    (!complaint_id.is_empty()).then(|| Body::Complaint {
        complaint_id: complaint_id.to_owned(),
        change,
    })
}

/// The analytics view of an envelope; `None` for events no figure depends on.
pub fn from_event(event: &Event) -> Option<Ev> {
    let at = time(event.occurred_at.as_ref())?;
    let body = body(event.payload.as_ref()?)?;
    Some(Ev {
        id: event.id.clone(),
        at,
        body,
    })
}

/// The analytics view of a payload.
pub fn body(payload: &Payload) -> Option<Body> {
    use Payload as P;
    match payload {
        P::ComplaintReceived(e) => {
            let c = e.complaint.as_ref()?;
            about(&c.complaint_id, Change::Summary(summary(c)))
        }
        P::DuplicateSuspected(e) => about(&e.complaint_id, Change::Duplicate),
        P::ComplaintWithdrawn(e) => about(&e.complaint_id, Change::Withdrawn),
        P::ComplaintClassified(e) => {
            let c = e.complaint.as_ref()?;
            let cl = e.classification.as_ref()?;
            about(&c.complaint_id, Change::Classified(class(cl, false)))
        }
        P::ComplaintReclassified(e) => {
            let cl = e.classification.as_ref()?;
            about(&e.complaint_id, Change::Reclassified(class(cl, true)))
        }
        P::ComplaintRejected(e) => Some(Body::Rejected {
            channel: channel(e.channel),
            codes: e.violations.iter().map(|v| v.code.clone()).collect(),
        }),
        P::CaseCreated(e) => on(
            e.header.as_ref(),
            Change::Created {
                department: e
                    .header
                    .as_ref()
                    .map(|h| h.department.clone())
                    .unwrap_or_default(),
                partner: e.partner.clone(),
                regime: e.regime.clone(),
                due: time(e.decision_due.as_ref()),
            },
        ),
        P::CaseAssigned(e) => on(
            e.header.as_ref(),
            Change::Assigned {
                department: e
                    .header
                    .as_ref()
                    .map(|h| h.department.clone())
                    .unwrap_or_default(),
                partner: e.partner.clone(),
            },
        ),
        P::CaseWorkStarted(e) => on(e.header.as_ref(), Change::WorkStarted),
        P::CaseExtended(e) => on(
            e.header.as_ref(),
            Change::Extended {
                tier: e.tier,
                due: time(e.decision_due.as_ref()),
            },
        ),
        P::CaseClockResumed(e) => on(
            e.header.as_ref(),
            Change::DueMoved(time(e.decision_due.as_ref())),
        ),
        P::CaseNewFacts(e) => on(
            e.header.as_ref(),
            Change::DueMoved(time(e.decision_due.as_ref())),
        ),
        P::CaseDecided(e) => {
            let remedy = e.remedy.as_ref().and_then(|r| r.amount.as_ref());
            on(
                e.header.as_ref(),
                Change::Decided(Decision {
                    outcome: DecisionOutcome::try_from(e.outcome).map_or_else(
                        |_| String::new(),
                        |o| token(o.as_str_name(), "DECISION_OUTCOME_"),
                    ),
                    review: e.review,
                    remedy_currency: remedy.map(|m| m.currency_code.clone()).unwrap_or_default(),
                    remedy_units: remedy.map_or(0, |m| m.units),
                    root_causes: e.root_cause_tags.clone(),
                }),
            )
        }
        P::CaseReviewRequested(e) => on(e.header.as_ref(), Change::ReviewRequested),
        P::CaseEscalated(e) => on(
            e.header.as_ref(),
            Change::Escalated {
                regulator: e.target == EscalationTarget::Regulator as i32,
            },
        ),
        P::CaseSatisfactionRecorded(e) => on(
            e.header.as_ref(),
            Change::Satisfaction(Satisfaction::try_from(e.satisfaction).map_or_else(
                |_| String::new(),
                |s| token(s.as_str_name(), "SATISFACTION_"),
            )),
        ),
        P::CaseReopened(e) => on(e.header.as_ref(), Change::Reopened),
        P::CaseReclassified(e) => on(
            e.header.as_ref(),
            Change::Reclassified(Class {
                category: e.category_code.clone(),
                cause: e.cause_code.clone(),
                product: e.product.clone(),
                severity: String::new(),
                confidence: None,
                needs_review: false,
            }),
        ),
        P::NotificationSent(e) => notice(e.header.as_ref(), false),
        P::NotificationFailed(e) => notice(e.header.as_ref(), true),
        _ => None,
    }
}

fn notice(header: Option<&redress_proto::events::v1::NoticeHeader>, failed: bool) -> Option<Body> {
    let h = header?;
    Some(Body::Notice {
        kind: redress_proto::events::v1::NoticeKind::try_from(h.kind).map_or_else(
            |_| String::new(),
            |k| token(k.as_str_name(), "NOTICE_KIND_"),
        ),
        department: h.department.clone(),
        failed,
    })
}
