//! The suite end to end, as separate processes: a complaint a channel publishes on
//! `redress.intake.v1.submit.web` ends as a case whose `created` and `assigned` events the
//! department it was routed to receives on `redress.case.v1.<department>.>`, and that
//! department never sees another department's cases.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::HeaderMap;
use futures::StreamExt;
use prost::Message as _;
use redress_e2e::{Suite, testing::eventually};
use redress_proto::{
    common::v1::Channel,
    events::v1::{Event, event::Payload},
    intake::v1::{ComplaintSubmission, Consumer, SubmissionReply, submission_reply::Outcome},
};
use redress_runtime::bus::headers;

const WAIT: Duration = Duration::from_secs(60);

/// (subject, event type, complaint id) of everything a subscriber saw.
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

fn complaint_of(event: &Event) -> String {
    use Payload::*;
    let header = match &event.payload {
        Some(CaseCreated(p)) => p.header.as_ref(),
        Some(CaseAssigned(p)) => p.header.as_ref(),
        _ => None,
    };
    header.map(|h| h.complaint_id.clone()).unwrap_or_default()
}

async fn subscribe(suite: &Suite, bus: &redress_runtime::Bus, subject: &str) -> Seen {
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let mut messages = match bus.client().subscribe(bus.subject(subject)).await {
        Ok(s) => s,
        Err(e) => panic!("subscribe {subject}: {e}"),
    };
    let sink = seen.clone();
    let namespace = suite.env.namespace.clone();
    tokio::spawn(async move {
        while let Some(message) = messages.next().await {
            let event_type = message
                .headers
                .as_ref()
                .and_then(|h| h.get(headers::EVENT_TYPE))
                .map(|v| v.to_string())
                .unwrap_or_default();
            let complaint = Event::decode(message.payload.as_ref())
                .map(|e| complaint_of(&e))
                .unwrap_or_default();
            let subject = message
                .subject
                .as_str()
                .trim_start_matches(&format!("{namespace}."))
                .to_owned();
            if let Ok(mut seen) = sink.lock() {
                seen.push((subject, event_type, complaint));
            }
        }
    });
    seen
}

async fn submit(bus: &redress_runtime::Bus, channel_ref: &str, text: &str, phone: &str) -> String {
    let submission = ComplaintSubmission {
        channel: Channel::Web as i32,
        channel_ref: channel_ref.into(),
        description: text.into(),
        consumer: Some(Consumer {
            phone: phone.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut h = HeaderMap::new();
    h.insert(headers::MSG_ID, format!("web:{channel_ref}").as_str());
    let reply = bus
        .client()
        .request_with_headers(
            bus.subject("redress.intake.v1.submit.web"),
            h,
            submission.encode_to_vec().into(),
        )
        .await;
    let Ok(reply) = reply else {
        panic!("no receipt: {reply:?}")
    };
    match SubmissionReply::decode(reply.payload.as_ref()).map(|r| r.outcome) {
        Ok(Some(Outcome::Receipt(r))) => r.complaint_id,
        other => panic!("expected a receipt, got {other:?}"),
    }
}

#[tokio::test]
async fn a_complaint_from_a_channel_reaches_its_department_and_only_its_department() {
    // Route everything the model decides (how sure it must be is configuration).
    let suite = Suite::start(&[("REDRESS_CLASSIFICATION_TARGET_PRECISION", "0")]).await;
    let bus = suite.env.bus().await;
    let collections = subscribe(&suite, &bus, "redress.case.v1.collections.>").await;
    let everything = subscribe(&suite, &bus, "redress.case.v1.>").await;

    let collection = submit(
        &bus,
        "e2e-collection",
        "A debt collector calls me and my family every day about a debt I do not owe, and threatened to tell my employer. They will not send validation of the debt.",
        "13800000001",
    )
    .await;
    let credit = submit(
        &bus,
        "e2e-credit",
        "My credit report shows a late payment on an account I paid on time. I disputed it with the credit bureau twice and they verified the wrong information.",
        "13800000002",
    )
    .await;

    let by_type = |seen: &Seen, complaint: &str| -> HashMap<String, String> {
        seen.lock()
            .map(|s| {
                s.iter()
                    .filter(|(_, _, c)| c == complaint)
                    .map(|(subject, t, _)| (t.clone(), subject.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let events = eventually(
        "created and assigned on redress.case.v1.collections.>",
        WAIT,
        || {
            let seen = collections.clone();
            let collection = collection.clone();
            async move {
                let events = by_type(&seen, &collection);
                (events.contains_key("case_created") && events.contains_key("case_assigned"))
                    .then_some(events)
            }
        },
    )
    .await;
    assert!(
        events
            .values()
            .all(|s| s.starts_with("redress.case.v1.collections.")),
        "{events:?}"
    );

    // The other complaint opened a case elsewhere …
    let elsewhere = eventually("the credit-report complaint's case", WAIT, || {
        let seen = everything.clone();
        let credit = credit.clone();
        async move {
            let events = by_type(&seen, &credit);
            events.get("case_created").cloned()
        }
    })
    .await;
    assert!(
        !elsewhere.starts_with("redress.case.v1.collections."),
        "{elsewhere}"
    );
    // … and the collections subscriber never saw it.
    let leaked = collections
        .lock()
        .map(|s| {
            s.iter()
                .filter(|(_, _, c)| *c != collection)
                .cloned()
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    assert!(leaked.is_empty(), "collections saw other cases: {leaked:?}");
    suite.stop().await;
}
