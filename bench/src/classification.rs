//! Classification: complaints/s per core in-process (the engine alone, one thread), and
//! through the service (`received` published → `classified` seen).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_nats::HeaderMap;
use futures::StreamExt;
use prost::Message as _;
use redress_classifier::{Classifier, ComplaintInput};
use redress_proto::events::v1::{ComplaintReceived, ComplaintSummary, Event, event::Payload};
use redress_runtime::{
    bus::{Outgoing, headers},
    event::{from_timestamp, new_event, service_actor},
    testing::TestEnv,
};
use tokio_util::sync::CancellationToken;

use crate::report::{Row, percentiles, write};

/// Texts of the kinds the service sees, in both languages (written for the benchmark).
const TEXTS: &[&str] = &[
    "I was charged a late fee even though my payment posted on time. The lender refuses to refund it.",
    "A debt collector keeps calling my workplace about a debt I do not owe and threatened to sue me.",
    "There is an account on my credit report that is not mine; the bureau ignored my dispute twice.",
    "My mortgage servicer misapplied my escrow payment and now says I am delinquent.",
    "Someone made unauthorized transfers from my checking account and the bank will not reimburse me.",
    "催收人员每天给我的家人和同事打电话，威胁要上门，严重影响生活。",
    "借款合同中的服务费没有事先告知，实际年化利率远超宣传的利率。",
    "信用卡被盗刷三笔共计五千元，银行客服一直推诿不处理。",
    "理财产品宣传保本保收益，到期后却亏损了本金百分之二十。",
    "客服电话始终打不通，在线客服只会机器人回复，问题拖了一个月没人管。",
];

pub async fn run() -> anyhow::Result<()> {
    let classifier = Classifier::embedded()?;
    let mut rows: Vec<Row> = corpora()
        .into_iter()
        .map(|(source, texts)| in_process(&classifier, &source, texts))
        .collect();
    rows.push(through_service(5_000).await?);
    write("classification", "Classification", &rows)
}

/// Real complaint texts when the shared data is at hand (CFPB narratives, median 756
/// characters; Chinese complaints, median 92), else the short texts above.
fn corpora() -> Vec<(String, Vec<String>)> {
    let dir = std::env::var("REDRESS_DATA_DIR").unwrap_or_else(|_| "../shared/data".into());
    let load = |file: &str, column: &str, label: &str| {
        redress_classifier::eval::load_examples(format!("{dir}/{file}"), column, label)
            .map(|examples| {
                examples
                    .into_iter()
                    .take(1_000)
                    .map(|e| e.text)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let corpora: Vec<(String, Vec<String>)> = [
        (
            "1,000 CFPB narratives".to_owned(),
            load("cfpb_complaints.csv", "narrative", "product_group"),
        ),
        (
            "1,000 Chinese complaints".to_owned(),
            load("cn_complaints.csv", "text", "category"),
        ),
    ]
    .into_iter()
    .filter(|(_, texts)| !texts.is_empty())
    .collect();
    if corpora.is_empty() {
        vec![(
            "built-in short texts".into(),
            TEXTS.iter().map(|t| (*t).to_owned()).collect(),
        )]
    } else {
        corpora
    }
}

fn in_process(classifier: &Classifier, source: &str, texts: Vec<String>) -> Row {
    let inputs: Vec<ComplaintInput> = texts
        .into_iter()
        .map(|text| ComplaintInput {
            text,
            channel: "web".into(),
            ..Default::default()
        })
        .collect();
    // Warm up (loads the Chinese dictionary once).
    for input in &inputs {
        classifier.classify(input, 0.7);
    }
    let rounds = (10_000 / inputs.len().max(1)).max(1);
    let mut latencies = Vec::with_capacity(rounds * inputs.len());
    let started = Instant::now();
    for _ in 0..rounds {
        for input in &inputs {
            let t = Instant::now();
            std::hint::black_box(classifier.classify(input, 0.7));
            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let count = latencies.len();
    let (p50, p99) = percentiles(latencies);
    Row {
        case: format!("in-process, one core, {source}"),
        count,
        per_second: count as f64 / elapsed,
        p50_ms: p50,
        p99_ms: p99,
    }
}

// Long on purpose: a benchmark reads best as one script: set up, load, measure, report.
async fn through_service(total: usize) -> anyhow::Result<Row> {
    let env = TestEnv::new().await;
    let shutdown = CancellationToken::new();
    let service = redress_classification::run(
        redress_classification::Config {
            runtime: env.runtime_config(),
            classification: Default::default(),
            command: None,
        },
        shutdown.clone(),
    )
    .await?;
    let bus = env.bus().await;
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let mut classified = bus
        .client()
        .subscribe(bus.subject("redress.complaint.v1.classified"))
        .await?;
    let started = Instant::now();
    let messages: Vec<Outgoing> = (0..total)
        .map(|n| {
            let id = uuid::Uuid::now_v7().to_string();
            let event = new_event(
                "intake",
                &id,
                1,
                service_actor("intake"),
                ComplaintReceived {
                    complaint: Some(ComplaintSummary {
                        complaint_id: id.clone(),
                        reference: format!("RD-BENCH-{n:06}"),
                        description: TEXTS[n % TEXTS.len()].into(),
                        received_at: Some(redress_runtime::event::timestamp(chrono::Utc::now())),
                        ..Default::default()
                    }),
                },
            );
            let mut h = HeaderMap::new();
            h.insert(headers::MSG_ID, event.id.as_str());
            h.insert(headers::EVENT_TYPE, "complaint_received");
            Outgoing {
                subject: "redress.complaint.v1.received".into(),
                headers: h,
                payload: event.encode_to_vec().into(),
            }
        })
        .collect();
    let (stored, _) = bus.publish_all(messages).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    while latencies.lock().map(|l| l.len()).unwrap_or(total) < stored {
        let next = tokio::time::timeout_at(deadline, classified.next()).await;
        let Ok(Some(message)) = next else { break };
        let Ok(event) = Event::decode(message.payload.as_ref()) else {
            continue;
        };
        let Some(Payload::ComplaintClassified(c)) = event.payload else {
            continue;
        };
        // From the publish of `received` (its receivedAt) to `classified` seen on the bus.
        if let (Some(at), Ok(mut l)) = (
            c.complaint
                .as_ref()
                .and_then(|c| c.received_at.as_ref())
                .and_then(from_timestamp),
            latencies.lock(),
        ) {
            l.push(((chrono::Utc::now() - at).num_microseconds().unwrap_or(0) as f64) / 1000.0);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let samples = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    shutdown.cancel();
    let _ = service.stopped().await;
    env.cleanup().await;
    let count = samples.len();
    let (p50, p99) = percentiles(samples);
    Ok(Row {
        case: "through the service (5,000 received → classified)".into(),
        count,
        per_second: count as f64 / elapsed,
        p50_ms: p50,
        p99_ms: p99,
    })
}
