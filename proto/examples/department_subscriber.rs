//! Follows one department's case events, as a department's own Rust service would: a durable
//! JetStream consumer on CASE_EVENTS filtered to `redress.case.v1.<department>.>`, each event
//! decoded with this crate and printed as a JSON line, acknowledged only after it was handled
//! (a crash before the ack redelivers it; nothing is skipped). See docs/departments.md.
//!
//! ```sh
//! cargo run -p redress-proto --example department_subscriber -- risk-control
//! ```
//!
//! Arguments: department, then optionally the NATS URL, the suite's bus namespace (empty for
//! none) and an event type to stop after (e.g. `case_assigned`).

use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use prost::Message;
use redress_proto::events::v1::Event;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let department = args
        .next()
        .ok_or("usage: department_subscriber <department> [nats-url] [namespace] [until]")?;
    let url = args
        .next()
        .unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let namespace = args.next().unwrap_or_default();
    let until = args.next();
    let (prefix, stream) = match namespace.as_str() {
        "" => (String::new(), "CASE_EVENTS".to_owned()),
        ns => (format!("{ns}."), format!("{ns}_CASE_EVENTS")),
    };

    let jetstream = jetstream::new(async_nats::connect(&url).await?);
    let name = format!("department-{department}-rust");
    let consumer = jetstream
        .get_stream(&stream)
        .await?
        .get_or_create_consumer(
            &name,
            pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: format!("{prefix}redress.case.v1.{department}.>"),
                ..Default::default()
            },
        )
        .await?;
    let mut messages = consumer.messages().await?;
    while let Some(message) = messages.next().await {
        let message = message?;
        let event = Event::decode(message.payload.as_ref())?;
        let kind = event.payload.as_ref().map_or("unknown", |p| p.event_type());
        let line = serde_json::json!({
            "subject": message.subject.as_str().trim_start_matches(&prefix),
            "type": kind,
            "event": event,
        });
        println!("{line}");
        message.ack().await?;
        if until.as_deref() == Some(kind) {
            break;
        }
    }
    Ok(())
}
