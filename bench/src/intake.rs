//! Intake: submissions/s sustained, and latency from the channel's publish to the
//! `received` event on the bus, at a fixed offered rate and at saturation.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_nats::HeaderMap;
use futures::StreamExt;
use prost::Message as _;
use redress_intake::{Config, config::IntakeConfig, vault};
use redress_proto::{
    common::v1::Channel,
    events::v1::{Event, event::Payload},
    intake::v1::{ComplaintSubmission, Consumer},
};
use redress_runtime::{Bus, bus::headers, testing::TestEnv};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::report::{Row, percentiles, write};

type Sent = Arc<Mutex<HashMap<String, Instant>>>;

pub async fn run() -> anyhow::Result<()> {
    let rows = vec![
        one("fixed rate 500/s for 10 s (requests)", 5_000, Some(500), 64).await?,
        one("saturation (requests, 256 in flight)", 10_000, None, 256).await?,
    ];
    write(
        "intake",
        "Intake: channel publish → `received` event",
        &rows,
    )
}

fn submission(n: usize) -> ComplaintSubmission {
    ComplaintSubmission {
        channel: Channel::App as i32,
        channel_ref: format!("bench-{n}"),
        title: "重复扣款".into(),
        description: format!(
            "平台在我已结清借款后仍从银行卡扣款，请退还并出具结清证明。参考号{n}。"
        ),
        consumer: Some(Consumer {
            phone: format!("139{:08}", n % 100_000_000),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn one(case: &str, total: usize, rate: Option<u32>, in_flight: usize) -> anyhow::Result<Row> {
    let env = TestEnv::new().await;
    let mut runtime = env.runtime_config();
    runtime.db_max_connections = 16;
    runtime.log_format = redress_runtime::config::LogFormat::Json;
    let shutdown = CancellationToken::new();
    let intake = redress_intake::run(
        Config {
            runtime,
            intake: IntakeConfig {
                keys: Some(vault::dev::KEYS.into()),
                active_key: Some(vault::dev::ACTIVE.into()),
                pseudonym_key: Some(vault::dev::PSEUDONYM.into()),
                settings: Default::default(),
            },
            command: None,
        },
        shutdown.clone(),
    )
    .await?;
    let bus = env.bus().await;
    let sent: Sent = Arc::new(Mutex::new(HashMap::with_capacity(total)));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let watcher = tokio::spawn(watch(bus.clone(), sent.clone(), latencies.clone(), total));

    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(in_flight));
    let mut ticker =
        rate.map(|r| tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(r))));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..total {
        if let Some(t) = ticker.as_mut() {
            t.tick().await;
        }
        let permit = permits.clone().acquire_owned().await?;
        let (bus, sent) = (bus.clone(), sent.clone());
        tasks.spawn(async move {
            let s = submission(n);
            let mut h = HeaderMap::new();
            h.insert(headers::MSG_ID, format!("app:{}", s.channel_ref).as_str());
            if let Ok(mut sent) = sent.lock() {
                sent.insert(s.channel_ref.clone(), Instant::now());
            }
            let subject = bus.subject("redress.intake.v1.submit.app");
            let _ = bus
                .client()
                .request_with_headers(subject, h, s.encode_to_vec().into())
                .await;
            drop(permit);
        });
    }
    while tasks.join_next().await.is_some() {}
    let _ = tokio::time::timeout(Duration::from_secs(120), watcher).await;
    let elapsed = started.elapsed().as_secs_f64();
    let samples = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    shutdown.cancel();
    let _ = intake.stopped().await;
    env.cleanup().await;
    let count = samples.len();
    let (p50, p99) = percentiles(samples);
    Ok(Row {
        case: case.into(),
        count,
        per_second: count as f64 / elapsed,
        p50_ms: p50,
        p99_ms: p99,
    })
}

async fn watch(bus: Bus, sent: Sent, latencies: Arc<Mutex<Vec<f64>>>, total: usize) {
    let Ok(mut events) = bus
        .client()
        .subscribe(bus.subject("redress.complaint.v1.received"))
        .await
    else {
        return;
    };
    while let Some(message) = events.next().await {
        let Ok(event) = Event::decode(message.payload.as_ref()) else {
            continue;
        };
        let Some(Payload::ComplaintReceived(r)) = event.payload else {
            continue;
        };
        let start = sent.lock().ok().and_then(|s| {
            r.complaint
                .as_ref()
                .and_then(|c| s.get(&c.channel_ref))
                .copied()
        });
        if let (Some(start), Ok(mut l)) = (start, latencies.lock()) {
            l.push(start.elapsed().as_secs_f64() * 1000.0);
            if l.len() >= total {
                return;
            }
        }
    }
}
