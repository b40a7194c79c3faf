//! The bus contract generated from the protos: which event travels on which subject.
//!
//! Every payload of [`Event`](crate::events::v1::Event) implements [`EventPayload`]: its event
//! type (the payload's field name, also the `Redress-Event-Type` header), the subject it is
//! published on, and the wildcard filter a consumer of that type subscribes to. The subjects are
//! declared in `redress/events/v1/event.proto` with the `(redress.bus.v1.subject)` option and
//! turned into code by `build.rs`, so adding an event is a proto edit only.

use crate::events::v1::event::Payload;

/// A payload of the event envelope.
pub trait EventPayload: prost::Message + Default + Clone + Sized + Send + Sync + 'static {
    /// The payload's field name in the envelope, e.g. `case_created`.
    const EVENT_TYPE: &'static str;
    /// The subject with every variable token as `*`, e.g. `redress.case.v1.*.created`.
    const SUBJECT_FILTER: &'static str;
    /// The subject this payload is published on (without a namespace).
    fn subject(&self) -> String;
    fn into_payload(self) -> Payload;
    fn from_payload(payload: Payload) -> Option<Self>;
}

/// One event type of the contract, for documentation generators and the bus tooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventType {
    /// The payload's field name: the `Redress-Event-Type` header.
    pub name: &'static str,
    /// Its field number in the envelope.
    pub field: i32,
    /// Full protobuf name of the payload message.
    pub message: &'static str,
    /// The subject template, e.g. `redress.case.v1.{header.department|triage}.created`.
    pub subject: &'static str,
    pub subject_filter: &'static str,
    /// The payload message's own documentation.
    pub description: &'static str,
}

/// The event type named `name`, if the contract has it.
pub fn event_type(name: &str) -> Option<&'static EventType> {
    EVENT_TYPES.iter().find(|t| t.name == name)
}

/// A value as one subject token: lower-case ASCII letters, digits, `_` and `-`; anything
/// else becomes `_`, so no value can add a token or a wildcard. Empty gives `fallback`.
pub fn token(value: &str, fallback: &str) -> String {
    let value = value.trim();
    if value.is_empty() {
        return fallback.to_owned();
    }
    value
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '_' | '-' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '_',
        })
        .collect()
}

/// An enum value's name without the enum's prefix, lower-cased (`CHANNEL_WALK_IN` → `walk_in`).
/// The zero value (`…_UNSPECIFIED`) gives `fallback`.
pub fn enum_token(name: &str, prefix: &str, fallback: &str) -> String {
    match name.strip_prefix(prefix) {
        Some("UNSPECIFIED") | None => fallback.to_owned(),
        Some(rest) => token(rest, fallback),
    }
}

include!(concat!(env!("OUT_DIR"), "/contract.rs"));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        common::v1::Channel,
        events::v1::{CaseCreated, CaseHeader, CaseInputRequested, ComplaintRejected},
    };

    #[test]
    fn subjects_fill_in_their_tokens() {
        let created = CaseCreated {
            header: Some(CaseHeader {
                department: "cards".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(created.subject(), "redress.case.v1.cards.created");
        assert_eq!(CaseCreated::SUBJECT_FILTER, "redress.case.v1.*.created");
        assert_eq!(
            CaseCreated::default().subject(),
            "redress.case.v1.triage.created"
        );
        let asked = CaseInputRequested {
            to_department: "Risk Control".into(),
            ..Default::default()
        };
        assert_eq!(
            asked.subject(),
            "redress.case.v1.risk_control.input_requested"
        );
        let rejected = ComplaintRejected {
            channel: Channel::WalkIn as i32,
            ..Default::default()
        };
        assert_eq!(rejected.subject(), "redress.intake.v1.rejected.walk_in");
        assert_eq!(
            ComplaintRejected::default().subject(),
            "redress.intake.v1.rejected.unknown"
        );
    }

    #[test]
    fn no_value_can_add_a_token_or_a_wildcard() {
        assert_eq!(token("a.b>*c d", "x"), "a_b__c_d");
        assert_eq!(token("  ", "triage"), "triage");
        assert_eq!(token("部门", "x"), "__");
    }

    #[test]
    fn every_event_type_is_unique_and_round_trips() {
        let mut names: Vec<_> = EVENT_TYPES.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EVENT_TYPES.len());
        let payload = CaseCreated::default().into_payload();
        assert_eq!(payload.event_type(), CaseCreated::EVENT_TYPE);
        assert_eq!(payload.subject(), "redress.case.v1.triage.created");
        assert!(CaseCreated::from_payload(payload).is_some());
        assert_eq!(
            event_type("case_created").map(|t| t.message),
            Some("redress.events.v1.CaseCreated")
        );
    }
}
