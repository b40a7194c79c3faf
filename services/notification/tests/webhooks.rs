//! Department webhooks end to end: case events on the real bus fanned out to endpoints
//! registered over gRPC, sent to a real HTTP receiver that verifies every request with the
//! Standard Webhooks reference library for Python (`standardwebhooks`), through the SSRF guard,
//! on the retry schedule, with Retry-After, timeouts, 410 Gone and a day (here: a second) of
//! failures disabling, rotation, replay and test-fire.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{io::Write as _, time::Duration};

use prost::Message as _;
use redress_notification::{Config, config::NotificationConfig};
use redress_proto::{
    bus::NOTIFICATION_EVENTS,
    events::v1::{CaseAssigned, Event, event::Payload},
    notification::v1::{
        CreateWebhookEndpointRequest, DeleteWebhookEndpointRequest, EnableWebhookEndpointRequest,
        ListWebhookEndpointsRequest, ListWebhookMessagesRequest, ReplayWebhooksRequest,
        RotateWebhookSecretRequest, TestFireWebhookRequest, WebhookMessage,
        notification_service_client::NotificationServiceClient,
    },
};
use redress_runtime::{
    event::{new_event, service_actor, timestamp},
    testing::{TestEnv, eventually, free_port, grpc_channel, stored, token},
};
use support::*;
use tonic::transport::Channel;

fn config(env: &TestEnv) -> Config {
    Config {
        runtime: env.runtime_config(),
        notification: NotificationConfig {
            // No intake: these tests are about webhooks; notices to nobody fail quietly.
            intake_url: format!("http://127.0.0.1:{}", free_port()),
            service_key: Some(service_key()),
            poll: Duration::from_millis(100),
            webhook_allow_http: true,
            webhook_allowed_networks: vec!["127.0.0.0/8".parse().unwrap()],
            webhook_timeout: Duration::from_secs(1),
            // Svix's schedule scaled down, and a "day" of failures of two seconds.
            webhook_retry_delays: vec![Duration::from_millis(200); 30],
            webhook_disable_after: Some(Duration::from_secs(2)),
            ..NotificationConfig::default()
        },
    }
}

fn as_role<T>(
    message: T,
    subject: &str,
    roles: &[&str],
    department: Option<&str>,
) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let bearer = format!("Bearer {}", token(subject, roles, department));
    request
        .metadata_mut()
        .insert("authorization", bearer.parse().unwrap());
    request
}

fn head<T>(message: T) -> tonic::Request<T> {
    as_role(
        message,
        "user:wang.head",
        &["department_head"],
        Some("cards"),
    )
}

fn admin<T>(message: T) -> tonic::Request<T> {
    as_role(message, "user:root", &["admin"], None)
}

async fn create(
    client: &mut NotificationServiceClient<Channel>,
    url: String,
    subjects: &[&str],
) -> (String, String) {
    let created = client
        .create_webhook_endpoint(admin(CreateWebhookEndpointRequest {
            url,
            department: "cards".into(),
            subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    (created.endpoint.unwrap().endpoint_id, created.secret)
}

async fn messages(
    client: &NotificationServiceClient<Channel>,
    endpoint: &str,
) -> Vec<WebhookMessage> {
    client
        .clone()
        .list_webhook_messages(admin(ListWebhookMessagesRequest {
            endpoint_id: endpoint.into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .messages
}

fn add_secret(file: &std::path::Path, secret: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).open(file).unwrap();
    writeln!(f, "{secret}").unwrap();
}

fn assigned(case_id: &str, complaint_id: &str, department: &str) -> redress_runtime::NewEvent {
    let mut h = header(case_id, complaint_id, "RD-1");
    h.department = department.into();
    new_event(
        "case-coordination",
        case_id,
        2,
        service_actor("case-coordination"),
        CaseAssigned {
            header: Some(h),
            ..Default::default()
        },
    )
}

#[tokio::test]
async fn department_webhooks_are_signed_filtered_retried_disabled_rotated_and_replayed() {
    let env = TestEnv::new().await;
    let secrets = std::env::temp_dir().join(format!("redress-whsec-{}", uuid::Uuid::now_v7()));
    std::fs::write(&secrets, "").unwrap();
    let mut receiver = webhook_receiver(&secrets).await;
    let service = Notification::start(config(&env)).await;
    let mut client = NotificationServiceClient::new(grpc_channel(&service.url()).await);
    let base = receiver.url();

    // Who may register what: a head only for their department and within its subjects;
    // the SSRF guard refuses a link-local address; a handler may not manage endpoints.
    let refused = client
        .create_webhook_endpoint(head(CreateWebhookEndpointRequest {
            url: "http://169.254.169.254/latest/meta-data/".into(),
            department: "loans".into(),
            subjects: vec!["redress.case.v1.*.decided".into()],
            signature_scheme: "v2".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    for field in ["department", "subjects[0]", "url", "signatureScheme"] {
        assert!(
            refused.message().contains(field),
            "{field}: {}",
            refused.message()
        );
    }
    let denied = client
        .list_webhook_endpoints(as_role(
            ListWebhookEndpointsRequest {},
            "user:li",
            &["handler"],
            Some("cards"),
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);

    // The head's endpoint: every cards case event (the default filter).
    let created = client
        .create_webhook_endpoint(head(CreateWebhookEndpointRequest {
            url: format!("{base}ok"),
            department: "cards".into(),
            description: "卡部工单系统".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let ok = created.endpoint.unwrap();
    assert_eq!(ok.subjects, ["redress.case.v1.cards.>"]);
    assert_eq!(ok.owner, "user:wang.head");
    assert!(created.secret.starts_with("whsec_"));
    add_secret(&secrets, &created.secret);
    // Admin's endpoints for one subject each, answering badly.
    let (gone, gone_secret) = create(
        &mut client,
        format!("{base}gone"),
        &["redress.case.v1.cards.created"],
    )
    .await;
    let (error, error_secret) = create(
        &mut client,
        format!("{base}error"),
        &["redress.case.v1.cards.assigned"],
    )
    .await;
    let (throttle, throttle_secret) = create(
        &mut client,
        format!("{base}throttle"),
        &["redress.case.v1.cards.assigned"],
    )
    .await;
    let (slow, slow_secret) = create(
        &mut client,
        format!("{base}slow"),
        &["redress.case.v1.cards.assigned"],
    )
    .await;
    for s in [&gone_secret, &error_secret, &throttle_secret, &slow_secret] {
        add_secret(&secrets, s);
    }

    let bus = env.bus().await;
    let case = uuid::Uuid::now_v7().to_string();
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let created_event = case_created(&case, "c-1", "RD-1", "cn-nfra");
    let other_department = assigned(&uuid::Uuid::now_v7().to_string(), "c-2", "loans");
    let assigned_event = assigned(&case, "c-1", "cards");
    for event in [&created_event, &other_department, &assigned_event] {
        bus.publish_event(event).await.unwrap();
    }

    // The head's endpoint gets both cards events, verified by its secret, as proto3 JSON;
    // nothing of loans.
    let mut got = Vec::new();
    while got.len() < 2 {
        let r = receiver.next("REQUEST").await;
        if r["path"] == "/ok" {
            got.push(r);
        }
    }
    for r in &got {
        assert_eq!(r["verified_by"], serde_json::json!([0]), "{r}");
        assert!(r["id"].as_str().unwrap().starts_with("msg_"));
    }
    let ids: Vec<&str> = got
        .iter()
        .map(|r| r["body"]["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&created_event.id.as_str()) && ids.contains(&assigned_event.id.as_str()));
    let created_body = got
        .iter()
        .find(|r| r["body"]["id"] == created_event.id.as_str())
        .unwrap();
    assert_eq!(
        created_body["body"]["caseCreated"]["header"]["caseId"],
        case.as_str(),
        "{created_body}"
    );
    assert!(
        ids.iter().all(|id| *id != other_department.id),
        "loans' event went to cards"
    );

    // 429 with Retry-After: 1 → sent again no sooner than a second later, then delivered.
    let throttled = eventually("the throttled message delivered", WAIT, || async {
        let m = messages(&client, &throttle).await;
        m.first().filter(|m| m.state == "delivered").cloned()
    })
    .await;
    assert_eq!(throttled.attempts, 2);
    // The timeout: no answer within a second is a failed attempt, tried again.
    let timed_out = eventually("the slow receiver timed out", WAIT, || async {
        let m = messages(&client, &slow).await;
        m.first()
            .filter(|m| m.attempts >= 1 && m.last_status == 0 && !m.last_error.is_empty())
            .cloned()
    })
    .await;
    assert!(
        timed_out.last_error.to_lowercase().contains("time"),
        "{}",
        timed_out.last_error
    );

    // 410 Gone disables at once; a second of nothing but 500s disables too; the owner is told.
    let disabled = eventually(
        "the gone and the failing endpoint disabled",
        WAIT,
        || async {
            let all = client
                .clone()
                .list_webhook_endpoints(admin(ListWebhookEndpointsRequest {}))
                .await
                .unwrap()
                .into_inner()
                .endpoints;
            let d: Vec<_> = all.into_iter().filter(|e| e.state == "disabled").collect();
            let has = |id: &str| d.iter().any(|e| e.endpoint_id == id);
            (has(&gone) && has(&error)).then_some(d)
        },
    )
    .await;
    let ids: Vec<&str> = disabled.iter().map(|e| e.endpoint_id.as_str()).collect();
    assert!(
        ids.contains(&gone.as_str()) && ids.contains(&error.as_str()),
        "{ids:?}"
    );
    let told = eventually("webhook_disabled events", WAIT, || {
        let bus = bus.clone();
        let (gone, error) = (gone.clone(), error.clone());
        async move {
            let events: Vec<_> = stored(&bus, &NOTIFICATION_EVENTS)
                .await
                .iter()
                .filter_map(
                    |m| match Event::decode(m.payload.as_ref()).unwrap().payload {
                        Some(Payload::WebhookEndpointDisabled(d)) => Some(d),
                        _ => None,
                    },
                )
                .collect();
            let has = |id: &str| events.iter().any(|d| d.endpoint_id == id);
            (has(&gone) && has(&error)).then_some(events)
        }
    })
    .await;
    let by = |id: &str| told.iter().find(|d| d.endpoint_id == id).unwrap();
    assert_eq!(
        (by(&gone).cause.as_str(), by(&gone).owner.as_str()),
        ("gone", "user:root")
    );
    assert_eq!(by(&error).cause.as_str(), "failing");
    assert!(by(&error).failing_since.is_some());
    assert!(messages(&client, &error).await[0].attempts >= 2);

    // Rotation: the test-fire is signed with the old and the new secret at once.
    let rotated = client
        .rotate_webhook_secret(head(RotateWebhookSecretRequest {
            endpoint_id: ok.endpoint_id.clone(),
            overlap_seconds: 3600,
        }))
        .await
        .unwrap()
        .into_inner();
    add_secret(&secrets, &rotated.secret);
    let fired = client
        .test_fire_webhook(head(TestFireWebhookRequest {
            endpoint_id: ok.endpoint_id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(fired.delivered && fired.status == 204, "{fired:?}");
    let test = loop {
        let r = receiver.next("REQUEST").await;
        if r["id"] == fired.message_id.as_str() {
            break r;
        }
    };
    assert_eq!(
        test["verified_by"],
        serde_json::json!([0, 5]),
        "old and new secret: {test}"
    );
    assert_eq!(test["body"]["type"], "webhook.test");

    // Replay from a time, delivered ones too: the same webhook-ids again.
    let replayed = client
        .replay_webhooks(head(ReplayWebhooksRequest {
            endpoint_id: ok.endpoint_id.clone(),
            since: Some(timestamp(before)),
            include_delivered: true,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replayed.scheduled, 2);
    let first_ids: Vec<&str> = got.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let mut again = Vec::new();
    while again.len() < 2 {
        let r = receiver.next("REQUEST").await;
        if r["path"] == "/ok" {
            again.push(r["id"].as_str().unwrap().to_owned());
        }
    }
    assert!(
        again.iter().all(|id| first_ids.contains(&id.as_str())),
        "{again:?} vs {first_ids:?}"
    );

    // A disabled endpoint replays only once enabled; its failed message is scheduled again.
    let not_yet = client
        .replay_webhooks(admin(ReplayWebhooksRequest {
            endpoint_id: error.clone(),
            since: Some(timestamp(before)),
            include_delivered: false,
        }))
        .await
        .unwrap_err();
    assert_eq!(not_yet.code(), tonic::Code::FailedPrecondition);
    client
        .enable_webhook_endpoint(admin(EnableWebhookEndpointRequest {
            endpoint_id: error.clone(),
        }))
        .await
        .unwrap();
    let replayed = client
        .replay_webhooks(admin(ReplayWebhooksRequest {
            endpoint_id: error.clone(),
            since: Some(timestamp(before)),
            include_delivered: false,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replayed.scheduled, 1);

    // Deleted: gone from the list; another department's head cannot see or touch it.
    let hidden = client
        .delete_webhook_endpoint(as_role(
            DeleteWebhookEndpointRequest {
                endpoint_id: ok.endpoint_id.clone(),
            },
            "user:zhao",
            &["department_head"],
            Some("loans"),
        ))
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), tonic::Code::NotFound);
    client
        .delete_webhook_endpoint(head(DeleteWebhookEndpointRequest {
            endpoint_id: ok.endpoint_id.clone(),
        }))
        .await
        .unwrap();
    let left = client
        .list_webhook_endpoints(head(ListWebhookEndpointsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .endpoints;
    assert!(left.iter().all(|e| e.endpoint_id != ok.endpoint_id));

    service.stop().await;
    env.cleanup().await;
}
