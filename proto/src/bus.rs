//! The streams and subjects of the bus (DESIGN §3), and the headers every message carries.
//!
//! Event subjects come from the protos ([`crate::contract`]); this module holds the rest:
//! which stream keeps which subjects, for how long and with what promise, and the subjects
//! that are not events (channel submissions, dead letters).

use std::time::Duration;

use crate::common::v1::Channel;

/// Header names of the bus contract.
pub mod headers {
    pub const MSG_ID: &str = "Nats-Msg-Id";
    pub const EVENT_TYPE: &str = "Redress-Event-Type";
    pub const CONTENT_TYPE: &str = "Content-Type";
    pub const PROTOBUF: &str = "application/protobuf";
    pub const JSON: &str = "application/json";
    pub const DLQ_SUBJECT: &str = "Redress-Dlq-Subject";
    pub const DLQ_REASON: &str = "Redress-Dlq-Reason";
    pub const DLQ_ATTEMPTS: &str = "Redress-Dlq-Attempts";
    pub const DLQ_STREAM_SEQUENCE: &str = "Redress-Dlq-Stream-Sequence";
    pub const DLQ_CONSUMER: &str = "Redress-Dlq-Consumer";
    /// Set when the dead letter's body is sealed (personal data): the key id that opens it.
    pub const DLQ_SEALED_KEY: &str = "Redress-Dlq-Sealed-Key";
}

/// How long a stream keeps what it stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Until `max_age`: every consumer may read (and replay) everything.
    Limits,
    /// Until its one consumer acknowledges it (or `max_age`): raw submissions, which hold
    /// personal data, live only until they are registered.
    WorkQueue,
}

/// A stream of the bus, by its base name and subjects (before a namespace is applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSpec {
    pub name: &'static str,
    pub subjects: &'static [&'static str],
    /// When set, the server stores what is published but answers no publisher (see INTAKE).
    pub no_ack: bool,
    pub retention: Retention,
    pub max_age: Duration,
}

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Submissions published with core NATS: as a request (intake answers with a receipt once it
/// has registered the complaint) or fire-and-forget. It does not ack: JetStream keeps no reply
/// subject, so a requester must get intake's receipt rather than the stream's PubAck. A
/// submission is removed once registered; `max_age` bounds how long an unregistered one
/// waits (intake down for a month).
pub const INTAKE: StreamSpec = StreamSpec {
    name: "INTAKE",
    subjects: &["redress.intake.v1.submit.>"],
    no_ack: true,
    retention: Retention::WorkQueue,
    max_age: DAY.saturating_mul(30),
};
/// Submissions published with a JetStream publish: the PubAck means *stored* — the durable
/// fire-and-forget path. Removed once registered, like INTAKE.
pub const INTAKE_DURABLE: StreamSpec = StreamSpec {
    name: "INTAKE_DURABLE",
    subjects: &["redress.intake.v1.durable.>"],
    no_ack: false,
    retention: Retention::WorkQueue,
    max_age: DAY.saturating_mul(30),
};
/// Rejections sent back to channels: field, code and reason only, never the rejected value.
pub const INTAKE_REJECTED: StreamSpec = StreamSpec {
    name: "INTAKE_REJECTED",
    subjects: &["redress.intake.v1.rejected.>"],
    no_ack: false,
    retention: Retention::Limits,
    max_age: DAY.saturating_mul(30),
};
pub const COMPLAINT_EVENTS: StreamSpec = StreamSpec {
    name: "COMPLAINT_EVENTS",
    subjects: &["redress.complaint.v1.>"],
    no_ack: false,
    retention: Retention::Limits,
    max_age: DAY.saturating_mul(365),
};
pub const CASE_EVENTS: StreamSpec = StreamSpec {
    name: "CASE_EVENTS",
    subjects: &["redress.case.v1.>"],
    no_ack: false,
    retention: Retention::Limits,
    max_age: DAY.saturating_mul(365),
};
pub const NOTIFICATION_EVENTS: StreamSpec = StreamSpec {
    name: "NOTIFICATION_EVENTS",
    subjects: &["redress.notification.v1.>"],
    no_ack: false,
    retention: Retention::Limits,
    max_age: DAY.saturating_mul(365),
};
pub const ANALYTICS_EVENTS: StreamSpec = StreamSpec {
    name: "ANALYTICS_EVENTS",
    subjects: &["redress.analytics.v1.>"],
    no_ack: false,
    retention: Retention::Limits,
    max_age: DAY.saturating_mul(90),
};
pub const AUDIT_EVENTS: StreamSpec = StreamSpec {
    name: "AUDIT_EVENTS",
    subjects: &["redress.audit.v1.>"],
    no_ack: false,
    retention: Retention::Limits,
    max_age: DAY.saturating_mul(365),
};
/// Messages a consumer could not handle, with the reason in headers. Intake's are sealed.
pub const DLQ: StreamSpec = StreamSpec {
    name: "DLQ",
    subjects: &["redress.dlq.v1.>"],
    no_ack: false,
    retention: Retention::Limits,
    max_age: DAY.saturating_mul(90),
};

/// Every stream of the suite.
pub const ALL_STREAMS: &[StreamSpec] = &[
    INTAKE,
    INTAKE_DURABLE,
    INTAKE_REJECTED,
    COMPLAINT_EVENTS,
    CASE_EVENTS,
    NOTIFICATION_EVENTS,
    ANALYTICS_EVENTS,
    AUDIT_EVENTS,
    DLQ,
];

/// `redress.intake.v1.submit.<channel>`: core NATS, request or fire-and-forget.
pub fn submit_subject(channel: Channel) -> String {
    format!("redress.intake.v1.submit.{}", channel.token())
}

/// `redress.intake.v1.durable.<channel>`: JetStream publish, acknowledged once stored.
pub fn durable_subject(channel: Channel) -> String {
    format!("redress.intake.v1.durable.{}", channel.token())
}

/// `redress.dlq.v1.<service>`
pub fn dlq_subject(service: &str) -> String {
    format!(
        "redress.dlq.v1.{}",
        crate::contract::token(service, "unknown")
    )
}

/// Whether every subject `filter` matches is also matched by the stream subject `pattern`
/// (NATS wildcards: `*` one token, `>` the rest).
pub fn covers(pattern: &str, filter: &str) -> bool {
    let mut p = pattern.split('.');
    let mut f = filter.split('.');
    loop {
        match (p.next(), f.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(t)) if t != ">" => {}
            (Some(a), Some(b)) if a == b && a != "*" && a != ">" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The stream that stores every subject `filter` matches, if one does.
pub fn stream_for(filter: &str) -> Option<&'static StreamSpec> {
    ALL_STREAMS
        .iter()
        .find(|s| s.subjects.iter().any(|p| covers(p, filter)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::EVENT_TYPES;

    #[test]
    fn every_stream_captures_distinct_subjects() {
        for (i, a) in ALL_STREAMS.iter().enumerate() {
            for b in &ALL_STREAMS[i + 1..] {
                for pa in a.subjects {
                    for pb in b.subjects {
                        assert!(!covers(pa, pb) && !covers(pb, pa), "{pa} / {pb}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_event_type_has_exactly_one_stream() {
        for t in EVENT_TYPES {
            let streams = ALL_STREAMS
                .iter()
                .filter(|s| s.subjects.iter().any(|p| covers(p, t.subject_filter)))
                .count();
            assert_eq!(streams, 1, "{}", t.name);
        }
    }

    #[test]
    fn covering_follows_nats_wildcards() {
        assert!(covers("redress.case.v1.>", "redress.case.v1.*.created"));
        assert!(covers("redress.case.v1.>", "redress.case.v1.cards.created"));
        assert!(!covers(
            "redress.case.v1.*",
            "redress.case.v1.cards.created"
        ));
        assert!(covers(
            "redress.case.v1.*.created",
            "redress.case.v1.*.created"
        ));
        assert!(!covers(
            "redress.case.v1.cards.created",
            "redress.case.v1.*.created"
        ));
        assert!(!covers("redress.case.v1", "redress.case.v1.x"));
        assert_eq!(
            stream_for("redress.complaint.v1.received"),
            Some(&COMPLAINT_EVENTS)
        );
        assert_eq!(stream_for("redress.dlq.v1.intake"), Some(&DLQ));
        assert_eq!(stream_for("elsewhere"), None);
        assert_eq!(
            dlq_subject("case-coordination"),
            "redress.dlq.v1.case-coordination"
        );
    }
}
