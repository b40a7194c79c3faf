//! `redress events tail`: bus events as JSON lines, decoded from protobuf.

use futures::StreamExt;
use prost::Message as _;
use redress_proto::events::v1::Event;
use redress_runtime::{Bus, bus::headers};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Print events as they are published (Ctrl-C to stop).
    Tail {
        /// Subject filter, e.g. `redress.case.v1.cards.>`.
        #[arg(default_value = "redress.>")]
        subject: String,
        #[arg(
            long,
            env = "REDRESS_NATS_URL",
            default_value = "nats://127.0.0.1:4222"
        )]
        nats_url: String,
        #[arg(long, env = "REDRESS_BUS_NAMESPACE", default_value = "")]
        namespace: String,
    },
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    let Command::Tail {
        subject,
        nats_url,
        namespace,
    } = command;
    let client = async_nats::connect(nats_url.as_str()).await?;
    let bus = Bus::from_client(client, &namespace, 1);
    let mut messages = bus.client().subscribe(bus.subject(&subject)).await?;
    while let Some(message) = messages.next().await {
        let subject = bus.contract_subject(message.subject.as_str()).to_owned();
        println!(
            "{}",
            line(&subject, message.headers.as_ref(), &message.payload)
        );
    }
    Ok(())
}

/// One JSON line: the subject, the event type, and the event in proto3 JSON. Submissions
/// carry personal data and are shown by size only.
pub fn line(subject: &str, headers: Option<&async_nats::HeaderMap>, payload: &[u8]) -> String {
    let event_type = headers
        .and_then(|h| h.get(headers::EVENT_TYPE))
        .map(|v| v.to_string());
    let body = match (&event_type, Event::decode(payload)) {
        (Some(_), Ok(event)) => serde_json::to_value(&event).unwrap_or_default(),
        _ => serde_json::json!({ "bytes": payload.len() }),
    };
    serde_json::json!({ "subject": subject, "type": event_type, "event": body }).to_string()
}
