//! The pipeline as separate processes (intake, classification, case-coordination): from a
//! channel's publish on `redress.intake.v1.submit.app` to the `case.assigned` event on the bus.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_nats::HeaderMap;
use futures::StreamExt;
use prost::Message as _;
use redress_e2e::Suite;
use redress_proto::{
    common::v1::Channel,
    events::v1::{Event, event::Payload},
    intake::v1::{ComplaintSubmission, Consumer, SubmissionReply, submission_reply::Outcome},
};
use redress_runtime::bus::headers;
use tokio::sync::Semaphore;

use crate::report::{Row, percentiles, write};

const TEXTS: &[&str] = &[
    "A debt collector calls me every day about a debt I do not owe and threatened to tell my employer.",
    "My credit report shows a late payment on an account I paid on time; the bureau verified the error.",
    "I was charged a late fee even though my payment posted on time and the lender refuses a refund.",
    "Someone made unauthorized transfers from my account and the bank will not reimburse me.",
];

pub async fn run() -> anyhow::Result<()> {
    let rows = vec![one(3_000, 64).await?];
    write(
        "pipeline",
        "Pipeline (3 processes): channel publish → case.assigned",
        &rows,
    )
}

// Long on purpose: a benchmark reads best as one script: set up, load, measure, report.
async fn one(total: usize, in_flight: usize) -> anyhow::Result<Row> {
    let suite = Suite::start(&[
        ("REDRESS_CLASSIFICATION_REVIEW_THRESHOLD", "0.0"),
        ("REDRESS_LOG_FORMAT", "json"),
        ("RUST_LOG", "warn,redress_runtime::service=info"),
    ])
    .await;
    let bus = suite.env.bus().await;
    let assigned: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let mut events = bus
        .client()
        .subscribe(bus.subject("redress.case.v1.>"))
        .await?;
    let sink = assigned.clone();
    tokio::spawn(async move {
        while let Some(message) = events.next().await {
            let Ok(event) = Event::decode(message.payload.as_ref()) else {
                continue;
            };
            if let Some(Payload::CaseAssigned(a)) = event.payload
                && let (Some(h), Ok(mut map)) = (a.header, sink.lock())
            {
                map.entry(h.complaint_id).or_insert_with(Instant::now);
            }
        }
    });

    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let permits = Arc::new(Semaphore::new(in_flight));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..total {
        let permit = permits.clone().acquire_owned().await?;
        let (bus, sent) = (bus.clone(), sent.clone());
        tasks.spawn(async move {
            let submission = ComplaintSubmission {
                channel: Channel::App as i32,
                channel_ref: format!("pipe-{n}"),
                description: TEXTS[n % TEXTS.len()].into(),
                consumer: Some(Consumer {
                    phone: format!("137{:08}", n),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let mut h = HeaderMap::new();
            h.insert(headers::MSG_ID, format!("app:pipe-{n}").as_str());
            let at = Instant::now();
            let reply = bus
                .client()
                .request_with_headers(
                    bus.subject("redress.intake.v1.submit.app"),
                    h,
                    submission.encode_to_vec().into(),
                )
                .await;
            if let Ok(reply) = reply
                && let Ok(SubmissionReply {
                    outcome: Some(Outcome::Receipt(r)),
                }) = SubmissionReply::decode(reply.payload.as_ref())
                && let Ok(mut sent) = sent.lock()
            {
                sent.insert(r.complaint_id, at);
            }
            drop(permit);
        });
    }
    while tasks.join_next().await.is_some() {}
    let deadline = Instant::now() + Duration::from_secs(300);
    while assigned.lock().map(|a| a.len()).unwrap_or(total) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let latencies: Vec<f64> = {
        let sent = sent.lock().map(|s| s.clone()).unwrap_or_default();
        let assigned = assigned.lock().map(|a| a.clone()).unwrap_or_default();
        assigned
            .iter()
            .filter_map(|(id, at)| {
                sent.get(id)
                    .map(|s| at.duration_since(*s).as_secs_f64() * 1000.0)
            })
            .collect()
    };
    suite.stop().await;
    let count = latencies.len();
    let (p50, p99) = percentiles(latencies);
    Ok(Row {
        case: format!("{total} complaints, {in_flight} requests in flight"),
        count,
        per_second: count as f64 / elapsed,
        p50_ms: p50,
        p99_ms: p99,
    })
}
