//! One fact row per complaint, merged from its events in any order.
//!
//! Every field is a join of the events that set it, so the fact after a set of events is the
//! same whatever order they came in: a "latest" field keeps the value of the event with the
//! greatest version (occurred-at, then event id), a "first" field the least, a flag is an or,
//! a count is a sum (the inbox applies each event once). A reclassification replaces the
//! category in the fact, and the figures move with it (see [`crate::cells`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::events::{Change, Ev};

/// The version of an event: orders events by when they happened, then by id. Fixed-width hex
/// of the microseconds, so versions compare as strings (and as text in SQL).
pub fn version(ev: &Ev) -> String {
    let micros = ev.at.timestamp_micros().max(0);
    format!("{micros:016x}:{}", ev.id)
}

/// What analytics knows of one complaint. Stored as a row of `facts` (field = column).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    pub complaint_id: String,
    pub received_at: Option<DateTime<Utc>>,
    pub registered_at: Option<DateTime<Utc>>,
    pub channel: String,
    pub kind: String,
    pub vulnerable: bool,
    pub summary_product: String,
    pub class_v: String,
    pub category: String,
    pub cause: String,
    pub product_v: String,
    pub class_product: String,
    pub severity: String,
    pub severity_v: String,
    /// The classifier's own first answer: what its real-world accuracy is measured against.
    pub model_v: String,
    pub model_category: String,
    pub confidence: Option<f64>,
    pub overridden: bool,
    pub dept_v: String,
    pub department: String,
    pub partner_v: String,
    pub partner: String,
    pub regime: String,
    pub assigned_at: Option<DateTime<Utc>>,
    pub assignments: i32,
    pub contact_at: Option<DateTime<Utc>>,
    pub decided_v: String,
    pub decided_at: Option<DateTime<Utc>>,
    pub outcome: String,
    pub remedy_currency: String,
    pub remedy_units: i64,
    pub root_causes: Vec<String>,
    pub due_v: String,
    pub due_at: Option<DateTime<Utc>>,
    pub extension_tier: i32,
    pub review_requested: bool,
    pub review_v: String,
    pub review_outcome: String,
    pub satisfaction_v: String,
    pub satisfaction: String,
    pub withdrawn: bool,
    pub duplicate: bool,
    pub escalated_mediation: bool,
    pub escalated_regulator: bool,
    pub reopened: i32,
    /// When the classifier sent it to the specialists' review queue (the first such event).
    pub needs_review_at: Option<DateTime<Utc>>,
}

fn earliest(slot: &mut Option<DateTime<Utc>>, at: DateTime<Utc>) {
    if slot.is_none_or(|t| at < t) {
        *slot = Some(at);
    }
}

/// True (and `v` moved) when `new` is later than the version in `v`.
fn newer(v: &mut String, new: &str) -> bool {
    if new > v.as_str() {
        new.clone_into(v);
        true
    } else {
        false
    }
}

impl Fact {
    pub fn new(complaint_id: &str) -> Self {
        Self {
            complaint_id: complaint_id.to_owned(),
            ..Self::default()
        }
    }

    /// The product the figures use: the classification's, else the one the channel gave.
    pub fn product(&self) -> &str {
        if self.class_product.is_empty() {
            &self.summary_product
        } else {
            &self.class_product
        }
    }

    /// Merges one event into the fact.
    pub fn apply(&mut self, ev: &Ev, change: &Change) {
        let v = version(ev);
        match change {
            Change::Summary(s) => {
                // The same complaint's summary travels on several events: identical values.
                self.received_at = self.received_at.or(s.received_at);
                self.registered_at = self.registered_at.or(s.registered_at);
                if self.channel.is_empty() {
                    self.channel.clone_from(&s.channel);
                    self.kind.clone_from(&s.kind);
                    self.summary_product.clone_from(&s.product);
                }
                self.vulnerable |= s.vulnerable;
            }
            Change::Duplicate => self.duplicate = true,
            Change::Withdrawn => self.withdrawn = true,
            Change::Classified(c) | Change::Reclassified(c) => {
                if newer(&mut self.class_v, &v) {
                    self.category.clone_from(&c.category);
                    self.cause.clone_from(&c.cause);
                }
                if !c.product.is_empty() && newer(&mut self.product_v, &v) {
                    self.class_product.clone_from(&c.product);
                }
                if !c.severity.is_empty() && newer(&mut self.severity_v, &v) {
                    self.severity.clone_from(&c.severity);
                }
                if c.needs_review {
                    earliest(&mut self.needs_review_at, ev.at);
                }
                if let Some(confidence) = c.confidence {
                    // The first model answer is the one a specialist may later override.
                    if self.model_v.is_empty() || v < self.model_v {
                        self.model_v.clone_from(&v);
                        self.model_category.clone_from(&c.category);
                        self.confidence = Some(confidence);
                    }
                } else {
                    self.overridden = true;
                }
            }
            Change::Created {
                department,
                partner,
                regime,
                due,
            } => {
                self.set_department(&v, department, partner);
                if self.regime.is_empty() {
                    self.regime.clone_from(regime);
                }
                self.set_due(&v, *due);
            }
            Change::Assigned {
                department,
                partner,
            } => {
                self.set_department(&v, department, partner);
                self.assignments += 1;
                earliest(&mut self.assigned_at, ev.at);
            }
            Change::WorkStarted => earliest(&mut self.contact_at, ev.at),
            Change::Extended { tier, due } => {
                self.extension_tier = self.extension_tier.max(i32::try_from(*tier).unwrap_or(0));
                self.set_due(&v, *due);
            }
            Change::DueMoved(due) => self.set_due(&v, *due),
            Change::Decided(d) if d.review => {
                if newer(&mut self.review_v, &v) {
                    self.review_outcome.clone_from(&d.outcome);
                }
            }
            Change::Decided(d) => {
                if self.decided_v.is_empty() || v < self.decided_v {
                    self.decided_v = v;
                    self.decided_at = Some(ev.at);
                    self.outcome.clone_from(&d.outcome);
                    self.remedy_currency.clone_from(&d.remedy_currency);
                    self.remedy_units = d.remedy_units;
                    self.root_causes.clone_from(&d.root_causes);
                }
            }
            Change::ReviewRequested => self.review_requested = true,
            Change::Escalated { regulator: true } => self.escalated_regulator = true,
            Change::Escalated { regulator: false } => self.escalated_mediation = true,
            Change::Satisfaction(level) => {
                if newer(&mut self.satisfaction_v, &v) {
                    self.satisfaction.clone_from(level);
                }
            }
            Change::Reopened => self.reopened += 1,
        }
    }

    fn set_department(&mut self, v: &str, department: &str, partner: &str) {
        if !department.is_empty() && newer(&mut self.dept_v, v) {
            department.clone_into(&mut self.department);
        }
        if !partner.is_empty() && newer(&mut self.partner_v, v) {
            partner.clone_into(&mut self.partner);
        }
    }

    fn set_due(&mut self, v: &str, due: Option<DateTime<Utc>>) {
        if due.is_some() && newer(&mut self.due_v, v) {
            self.due_at = due;
        }
    }
}

/// The names of `facts`' columns, in the struct's order (the store writes rows as JSON).
pub const COLUMNS: &[&str] = &[
    "complaint_id",
    "received_at",
    "registered_at",
    "channel",
    "kind",
    "vulnerable",
    "summary_product",
    "class_v",
    "category",
    "cause",
    "product_v",
    "class_product",
    "severity",
    "severity_v",
    "model_v",
    "model_category",
    "confidence",
    "overridden",
    "dept_v",
    "department",
    "partner_v",
    "partner",
    "regime",
    "assigned_at",
    "assignments",
    "contact_at",
    "decided_v",
    "decided_at",
    "outcome",
    "remedy_currency",
    "remedy_units",
    "root_causes",
    "due_v",
    "due_at",
    "extension_tier",
    "review_requested",
    "review_v",
    "review_outcome",
    "satisfaction_v",
    "satisfaction",
    "withdrawn",
    "duplicate",
    "escalated_mediation",
    "escalated_regulator",
    "reopened",
    "needs_review_at",
];
