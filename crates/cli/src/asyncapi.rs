//! `redress asyncapi`: the bus as an AsyncAPI 3 document, generated from the contract the code
//! uses (`redress_proto::EVENT_TYPES` and the streams), so it cannot drift from it.
//! `docs/asyncapi.json` is this command's output; a test keeps the two equal and `make lint`
//! validates it with the AsyncAPI CLI.

use redress_proto::{
    EVENT_TYPES,
    bus::{ALL_STREAMS, Retention, StreamSpec, stream_for},
    contract::EventType,
};
use serde_json::{Map, Value, json};

/// `{header.department|triage}` → (`department`, its description).
fn parameters(template: &str) -> (String, Map<String, Value>) {
    let mut address = String::new();
    let mut params = Map::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| open + c) else {
            break;
        };
        address.push_str(&rest[..open]);
        let var = &rest[open + 1..close];
        let (path, fallback) = var.split_once('|').unwrap_or((var, ""));
        let name = path.rsplit('.').next().unwrap_or(path);
        address.push_str(&format!("{{{name}}}"));
        let mut description =
            format!("The payload's `{path}` as one subject token (lower case, `_`/`-`).");
        if !fallback.is_empty() {
            description.push_str(&format!(" `{fallback}` when empty."));
        }
        params.insert(name.to_owned(), json!({ "description": description }));
        rest = &rest[close + 1..];
    }
    address.push_str(rest);
    (address, params)
}

fn stream_text(stream: Option<&StreamSpec>) -> String {
    match stream {
        Some(s) => format!(
            "Stream `{}`: kept {} days{}.",
            s.name,
            s.max_age.as_secs() / 86_400,
            if s.retention == Retention::WorkQueue {
                ", removed once registered"
            } else {
                ""
            }
        ),
        None => String::new(),
    }
}

fn headers(event_type: Option<&str>) -> Value {
    let mut properties = json!({
        "Nats-Msg-Id": { "type": "string", "description": "The event id (JetStream de-duplication)." },
        "Content-Type": { "type": "string", "enum": ["application/protobuf", "application/json"] },
        "traceparent": { "type": "string", "description": "W3C trace context." }
    });
    if let (Some(t), Some(map)) = (event_type, properties.as_object_mut()) {
        map.insert(
            "Redress-Event-Type".into(),
            json!({ "type": "string", "const": t }),
        );
    }
    json!({ "type": "object", "properties": properties })
}

fn event_message(t: &EventType) -> Value {
    let field = t
        .name
        .split('_')
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                w.to_owned()
            } else {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            }
        })
        .collect::<String>();
    json!({
        "name": t.name,
        "title": t.message,
        "summary": t.description,
        "contentType": "application/protobuf",
        "headers": headers(Some(t.name)),
        "payload": {
            "type": "object",
            "description": format!(
                "A redress.events.v1.Event envelope whose `payload` oneof holds `{}` ({}), as protobuf, or proto3 JSON when Content-Type is application/json. Definitions: proto/redress/events/v1/.",
                t.name, t.message
            ),
            "required": ["id", "occurredAt", "source", field],
            "properties": {
                "id": { "type": "string", "description": "UUIDv7; consumers record it to handle the event once." },
                "occurredAt": { "type": "string", "format": "date-time" },
                "source": { "type": "string" },
                "aggregateId": { "type": "string" },
                "aggregateVersion": { "type": "string" },
                "actor": { "type": "object" },
                field: { "type": "object", "description": t.message }
            }
        }
    })
}

/// The document.
// Long on purpose: the document's skeleton as one JSON literal, in the order the spec reads.
pub fn document() -> Value {
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    for t in EVENT_TYPES {
        let (address, params) = parameters(t.subject);
        let mut channel = json!({
            "address": address,
            "description": format!("{} {}", t.description, stream_text(stream_for(t.subject_filter))),
            "messages": { t.name: { "$ref": format!("#/components/messages/{}", t.name) } }
        });
        if !params.is_empty()
            && let Some(c) = channel.as_object_mut()
        {
            c.insert("parameters".into(), Value::Object(params));
        }
        channels.insert(t.name.to_owned(), channel);
        operations.insert(
            format!("publish_{}", t.name),
            json!({ "action": "send", "channel": { "$ref": format!("#/channels/{}", t.name) } }),
        );
        messages.insert(t.name.to_owned(), event_message(t));
    }
    let submission = json!({
        "name": "complaint_submission",
        "title": "redress.intake.v1.ComplaintSubmission",
        "summary": "A complaint as a channel submits it (proto/redress/intake/v1/intake.proto).",
        "contentType": "application/protobuf",
        "headers": {
            "type": "object",
            "properties": {
                "Nats-Msg-Id": { "type": "string", "description": "<channel>:<channelRef>: resends create nothing." },
                "Content-Type": { "type": "string", "enum": ["application/protobuf", "application/json"] }
            }
        },
        "payload": { "type": "object", "description": "redress.intake.v1.ComplaintSubmission" }
    });
    messages.insert("complaint_submission".into(), submission);
    messages.insert(
        "dead_letter".into(),
        json!({
            "name": "dead_letter",
            "summary": "A message a consumer could not handle, with Redress-Dlq-* headers saying why; intake's are sealed (Redress-Dlq-Sealed-Key).",
            "payload": { "type": "string", "format": "binary" }
        }),
    );
    let channel_param = json!({ "channel": {
        "description": "The channel: app, web, hotline, email, wechat, letter, walk_in, regulator_referral, other.",
        "enum": redress_proto::common::v1::Channel::ALL.map(|c| c.token()).to_vec()
    }});
    for (id, address, description) in [
        (
            "submit",
            "redress.intake.v1.submit.{channel}",
            "Core NATS: a request is answered with intake's receipt (redress.intake.v1.SubmissionReply) after registration; a plain publish has no acknowledgement.",
        ),
        (
            "durable",
            "redress.intake.v1.durable.{channel}",
            "JetStream publish: the PubAck means stored; intake registers it.",
        ),
    ] {
        let stream = stream_for(&address.replace("{channel}", "web"));
        channels.insert(
            id.into(),
            json!({
                "address": address,
                "description": format!("{description} {}", stream_text(stream)),
                "parameters": channel_param,
                "messages": { "complaint_submission": { "$ref": "#/components/messages/complaint_submission" } }
            }),
        );
        operations.insert(
            format!("receive_{id}"),
            json!({ "action": "receive", "channel": { "$ref": format!("#/channels/{id}") } }),
        );
    }
    channels.insert(
        "dead_letters".into(),
        json!({
            "address": "redress.dlq.v1.{service}",
            "description": stream_text(ALL_STREAMS.iter().find(|s| s.name == "DLQ")),
            "parameters": { "service": { "description": "The service whose consumer gave up." } },
            "messages": { "dead_letter": { "$ref": "#/components/messages/dead_letter" } }
        }),
    );
    operations.insert(
        "publish_dead_letters".into(),
        json!({ "action": "send", "channel": { "$ref": "#/channels/dead_letters" } }),
    );
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Redress bus",
            "version": "v1",
            "description": "Every subject of the Redress bus (NATS JetStream). Events are redress.events.v1.Event envelopes; a subject's department token lets a department subscribe to redress.case.v1.<department>.> only. Generated by `redress asyncapi` from the protos; docs/departments.md explains how to subscribe.",
            "license": { "name": "Apache-2.0" }
        },
        "defaultContentType": "application/protobuf",
        "servers": {
            "local": { "host": "127.0.0.1:4222", "protocol": "nats", "description": "`make run`'s NATS" }
        },
        "channels": channels,
        "operations": operations,
        "components": { "messages": messages }
    })
}

pub fn run() -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&document())?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_document_is_the_generated_one() {
        let committed = include_str!("../../../docs/asyncapi.json");
        let generated = serde_json::to_string_pretty(&document()).unwrap_or_default();
        assert!(
            committed.trim() == generated.trim(),
            "docs/asyncapi.json is stale: run `cargo run -q -p redress -- asyncapi > docs/asyncapi.json`"
        );
    }

    #[test]
    fn templates_become_named_parameters() {
        let (address, params) = parameters("redress.case.v1.{header.department|triage}.created");
        assert_eq!(address, "redress.case.v1.{department}.created");
        assert!(params.contains_key("department"));
    }
}
