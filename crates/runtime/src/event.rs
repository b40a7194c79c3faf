//! Building and naming event envelopes (`redress.events.v1.Event`).

use redress_proto::{
    EventPayload,
    common::v1::Actor,
    events::v1::{Event, event::Payload},
    types::Timestamp,
};
use uuid::Uuid;

/// An envelope made here: its id is a UUIDv7 and it has a payload, so it always has a
/// `Nats-Msg-Id` and a subject (an envelope decoded from the bus promises neither).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    uuid: Uuid,
    event: Event,
}

impl NewEvent {
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// The subject of its payload (without a namespace).
    pub fn subject(&self) -> String {
        self.event
            .payload
            .as_ref()
            .map(|p| p.subject())
            .unwrap_or_default()
    }

    pub fn event_type(&self) -> &'static str {
        self.event
            .payload
            .as_ref()
            .map(|p| p.event_type())
            .unwrap_or_default()
    }

    pub fn into_event(self) -> Event {
        self.event
    }
}

impl std::ops::Deref for NewEvent {
    type Target = Event;
    fn deref(&self) -> &Event {
        &self.event
    }
}

/// A new envelope: a fresh UUIDv7 id and the current time.
pub fn new_event<P: EventPayload>(
    source: &str,
    aggregate_id: impl Into<String>,
    aggregate_version: u64,
    actor: Actor,
    payload: P,
) -> NewEvent {
    new_event_payload(
        source,
        aggregate_id,
        aggregate_version,
        actor,
        payload.into_payload(),
    )
}

/// [`new_event`] for a payload already in the envelope's form (code that handles many kinds).
pub fn new_event_payload(
    source: &str,
    aggregate_id: impl Into<String>,
    aggregate_version: u64,
    actor: Actor,
    payload: Payload,
) -> NewEvent {
    let id = Uuid::now_v7();
    NewEvent {
        uuid: id,
        event: Event {
            id: id.to_string(),
            occurred_at: Some(timestamp(chrono::Utc::now())),
            source: source.to_owned(),
            aggregate_id: aggregate_id.into(),
            aggregate_version,
            actor: Some(actor),
            payload: Some(payload),
        },
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
            ComplaintWithdrawn::default(),
        );
        let id = Uuid::parse_str(&event.id).map(|u| u.get_version_num());
        assert_eq!(id.ok(), Some(7));
        assert_eq!(
            event.payload.as_ref().map(|p| p.event_type()),
            Some("complaint_withdrawn")
        );
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
