//! `redress events tail`: bus messages as JSON lines, events decoded from protobuf.
//!
//! Live by default (a core subscription: everything published from now on); `--since` or
//! `--all` first replays what the streams hold — in time order — and then goes on live.
//! Raw submissions (they hold personal data) are shown by size only.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{StreamExt, stream::select_all};
use prost::Message as _;
use redress_proto::{
    bus::{ALL_STREAMS, Retention, covers},
    events::v1::Event,
};
use redress_runtime::{Bus, bus::headers, config::parse_duration};

use crate::submit::BusArgs;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Print messages as JSON lines (Ctrl-C to stop).
    Tail {
        /// Subject filter, e.g. `redress.case.v1.cards.>`.
        #[arg(default_value = "redress.>")]
        subject: String,
        /// Replay from this time (RFC 3339) or this long ago (10m, 2h, 7d) first.
        #[arg(long, value_parser = since, conflicts_with = "all")]
        since: Option<DateTime<Utc>>,
        /// Replay everything the streams hold first.
        #[arg(long)]
        all: bool,
        /// Stop once nothing has arrived for this long (scripts); for ever when not given.
        #[arg(long, value_parser = parse_duration)]
        idle: Option<Duration>,
        #[command(flatten)]
        bus: BusArgs,
    },
}

fn since(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    let span = parse_duration(text)?;
    Ok(Utc::now() - chrono::Duration::from_std(span).map_err(|e| e.to_string())?)
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    let Command::Tail {
        subject,
        since,
        all,
        idle,
        bus,
    } = command;
    let bus = bus.connect().await?;
    if since.is_none() && !all {
        let mut messages = bus.client().subscribe(bus.subject(&subject)).await?;
        while let Some(message) = next(&mut messages, idle).await {
            let subject = bus.contract_subject(message.subject.as_str()).to_owned();
            println!(
                "{}",
                line(&subject, message.headers.as_ref(), &message.payload)
            );
        }
        return Ok(());
    }
    replay_then_follow(&bus, &subject, since, idle).await
}

/// The next item, or `None` once `idle` passed without one.
async fn next<S: futures::Stream + Unpin>(
    stream: &mut S,
    idle: Option<Duration>,
) -> Option<S::Item> {
    match idle {
        Some(idle) => tokio::time::timeout(idle, stream.next())
            .await
            .ok()
            .flatten(),
        None => stream.next().await,
    }
}

/// The part of `filter` a stream holds, if any: the filter itself when the stream holds all
/// of it, the stream's subjects when the filter takes in all of them.
fn within(pattern: &str, filter: &str) -> Option<String> {
    if covers(pattern, filter) {
        Some(filter.to_owned())
    } else if covers(filter, pattern) {
        Some(pattern.to_owned())
    } else {
        None
    }
}

async fn replay_then_follow(
    bus: &Bus,
    filter: &str,
    since: Option<DateTime<Utc>>,
    idle: Option<Duration>,
) -> anyhow::Result<()> {
    use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
    let deliver = match since {
        Some(start_time) => DeliverPolicy::ByStartTime { start_time },
        None => DeliverPolicy::All,
    };
    let mut streams = Vec::new();
    let mut backlog = Vec::new();
    for spec in ALL_STREAMS {
        // Work-queue streams hold raw submissions and allow no second reader.
        if spec.retention == Retention::WorkQueue {
            continue;
        }
        let Some(part) = spec.subjects.iter().find_map(|p| within(p, filter)) else {
            continue;
        };
        let Ok(stream) = bus.jetstream().get_stream(bus.stream_name(spec.name)).await else {
            continue;
        };
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: bus.subject(&part),
                deliver_policy: deliver,
                ..Default::default()
            })
            .await?;
        let mut consumer = consumer;
        let pending = consumer.info().await.map(|i| i.num_pending).unwrap_or(0);
        let mut messages = consumer.messages().await?;
        for _ in 0..pending {
            match tokio::time::timeout(Duration::from_secs(10), messages.next()).await {
                Ok(Some(Ok(m))) => {
                    let at = m.info().map(|i| i.published).ok();
                    let subject = bus.contract_subject(m.subject.as_str()).to_owned();
                    backlog.push((at, line(&subject, m.headers.as_ref(), &m.payload)));
                }
                _ => break,
            }
        }
        streams.push(messages);
    }
    backlog.sort_by_key(|(at, _)| *at);
    for (_, text) in backlog {
        println!("{text}");
    }
    let mut live = select_all(streams);
    while let Some(Ok(m)) = next(&mut live, idle).await {
        let subject = bus.contract_subject(m.subject.as_str()).to_owned();
        println!("{}", line(&subject, m.headers.as_ref(), &m.payload));
    }
    Ok(())
}

/// One JSON line: the subject, the event type, and the event in proto3 JSON. Anything that is
/// not an event (submissions carry personal data) is shown by size only.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_meets_each_stream_in_its_narrower_part() {
        assert_eq!(
            within("redress.case.v1.>", "redress.>").as_deref(),
            Some("redress.case.v1.>")
        );
        assert_eq!(
            within("redress.case.v1.>", "redress.case.v1.cards.>").as_deref(),
            Some("redress.case.v1.cards.>")
        );
        assert_eq!(within("redress.case.v1.>", "redress.complaint.v1.>"), None);
    }
}
