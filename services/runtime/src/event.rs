//! Building and naming event envelopes (`redress.events.v1.Event`).

use redress_proto::{
    common::v1::Actor,
    events::v1::{Event, event::Payload},
    types::Timestamp,
};
use uuid::Uuid;

/// A new envelope: a fresh UUIDv7 id and the current time.
pub fn new_event(
    source: &str,
    aggregate_id: impl Into<String>,
    aggregate_version: u64,
    actor: Actor,
    payload: Payload,
) -> Event {
    Event {
        id: Uuid::now_v7().to_string(),
        occurred_at: Some(timestamp(chrono::Utc::now())),
        source: source.to_owned(),
        aggregate_id: aggregate_id.into(),
        aggregate_version,
        actor: Some(actor),
        payload: Some(payload),
    }
}

/// The actor for something a service did on its own account.
pub fn service_actor(service: &str) -> Actor {
    Actor {
        subject: format!("service:{service}"),
        role: format!("service:{service}"),
        department: String::new(),
    }
}

/// The `Redress-Event-Type` header value: the payload's field name in the envelope.
pub fn event_type(event: &Event) -> &'static str {
    match &event.payload {
        Some(Payload::ComplaintReceived(_)) => "complaint_received",
        Some(Payload::DuplicateSuspected(_)) => "duplicate_suspected",
        Some(Payload::ComplaintRejected(_)) => "complaint_rejected",
        Some(Payload::ComplaintWithdrawn(_)) => "complaint_withdrawn",
        Some(Payload::ContactRead(_)) => "contact_read",
        Some(Payload::ComplaintClassified(_)) => "complaint_classified",
        Some(Payload::ComplaintReclassified(_)) => "complaint_reclassified",
        Some(Payload::CaseCreated(_)) => "case_created",
        Some(Payload::CaseAssigned(_)) => "case_assigned",
        Some(Payload::CaseWorkStarted(_)) => "case_work_started",
        Some(Payload::CaseInputRequested(_)) => "case_input_requested",
        Some(Payload::CaseInputAnswered(_)) => "case_input_answered",
        Some(Payload::CaseExtended(_)) => "case_extended",
        Some(Payload::CaseDeadlineWarning(_)) => "case_deadline_warning",
        Some(Payload::CaseDeadlineBreached(_)) => "case_deadline_breached",
        Some(Payload::CaseDecided(_)) => "case_decided",
        Some(Payload::CaseReviewRequested(_)) => "case_review_requested",
        Some(Payload::CaseEscalated(_)) => "case_escalated",
        Some(Payload::CaseSatisfactionRecorded(_)) => "case_satisfaction_recorded",
        Some(Payload::CaseClosed(_)) => "case_closed",
        Some(Payload::CaseReopened(_)) => "case_reopened",
        Some(Payload::CaseNoteAdded(_)) => "case_note_added",
        Some(Payload::CaseMerged(_)) => "case_merged",
        Some(Payload::CaseWithdrawn(_)) => "case_withdrawn",
        Some(Payload::CaseClockPaused(_)) => "case_clock_paused",
        Some(Payload::CaseClockResumed(_)) => "case_clock_resumed",
        Some(Payload::CaseNewFacts(_)) => "case_new_facts",
        Some(Payload::CaseConflictDeclared(_)) => "case_conflict_declared",
        Some(Payload::CaseReclassified(_)) => "case_reclassified",
        None => "unknown",
    }
}

pub fn timestamp(time: chrono::DateTime<chrono::Utc>) -> Timestamp {
    Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    }
}

/// `None` for a timestamp outside chrono's range or with nanos out of [0, 1e9).
pub fn from_timestamp(timestamp: &Timestamp) -> Option<chrono::DateTime<chrono::Utc>> {
    let nanos = u32::try_from(timestamp.nanos).ok()?;
    chrono::DateTime::from_timestamp(timestamp.seconds, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redress_proto::events::v1::ComplaintWithdrawn;

    #[test]
    fn envelopes_carry_a_v7_id_and_their_type() {
        let event = new_event(
            "intake",
            "c-1",
            3,
            service_actor("intake"),
            Payload::ComplaintWithdrawn(ComplaintWithdrawn::default()),
        );
        let id = Uuid::parse_str(&event.id).map(|u| u.get_version_num());
        assert_eq!(id.ok(), Some(7));
        assert_eq!(event_type(&event), "complaint_withdrawn");
        assert_eq!(event.aggregate_version, 3);
    }

    #[test]
    fn timestamps_round_trip_and_refuse_bad_nanos() {
        let now = chrono::Utc::now();
        assert_eq!(from_timestamp(&timestamp(now)), Some(now));
        let bad = Timestamp {
            seconds: 0,
            nanos: -1,
        };
        assert_eq!(from_timestamp(&bad), None);
    }
}
