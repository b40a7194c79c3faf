//! Notices by SMS end to end: case events on the real bus, the number from a real intake over
//! gRPC, the send through local stand-ins of Aliyun dysmsapi and Tencent Cloud SMS that check
//! each request's signature as the provider documents it (crates/outbound/tests/python), and
//! delivery receipts pushed to the service's callback or asked for by it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{path::PathBuf, time::Duration};

use prost::Message as _;
use redress_notification::{Config, config::NotificationConfig};
use redress_proto::{
    bus::NOTIFICATION_EVENTS,
    events::v1::{Event, NoticeChannel, event::Payload},
    intake::v1::ContactMethod,
    notification::v1::{
        Delivery, ListDeliveriesRequest, notification_service_client::NotificationServiceClient,
    },
};
use redress_runtime::testing::{TestEnv, authed, eventually, free_port, grpc_channel, stored};
use sha2::{Digest, Sha256};
use support::*;

const SIGN: &str = "消费者权益保护";

fn sms_service(
    env: &TestEnv,
    intake_url: &str,
    sms: PathBuf,
    receipts: Option<u16>,
    gap: Duration,
) -> Config {
    Config {
        runtime: env.runtime_config(),
        notification: NotificationConfig {
            intake_url: intake_url.to_owned(),
            service_key: Some(service_key()),
            sms_signature: SIGN.into(),
            sms_config: Some(sms),
            sms_receipts_addr: receipts.map(|p| ([127, 0, 0, 1], p).into()),
            sms_receipt_gap: gap,
            // Never quiet: these tests run at any hour.
            quiet_hours: "00:00-00:00".parse().unwrap(),
            poll: Duration::from_millis(100),
            retry_first: Duration::from_millis(200),
            rate_per_hour: 10_000,
            ..NotificationConfig::default()
        },
    }
}

async fn delivery_in_state(service: &Notification, case_id: &str, state: &str) -> Delivery {
    let client = NotificationServiceClient::new(grpc_channel(&service.url()).await);
    eventually(&format!("the delivery {state}"), WAIT, || {
        let mut client = client.clone();
        let case_id = case_id.to_owned();
        async move {
            let request = authed(ListDeliveriesRequest { case_id }, &["compliance"]);
            let all = client.list_deliveries(request).await.ok()?.into_inner();
            all.deliveries.into_iter().find(|d| d.state == state)
        }
    })
    .await
}

async fn notification_events(env: &TestEnv, at_least: usize) -> Vec<Payload> {
    let bus = env.bus().await;
    eventually("notification events", WAIT, || {
        let bus = bus.clone();
        async move {
            let events: Vec<Payload> = stored(&bus, &NOTIFICATION_EVENTS)
                .await
                .iter()
                .filter_map(|m| Event::decode(m.payload.as_ref()).unwrap().payload)
                .collect();
            (events.len() >= at_least).then_some(events)
        }
    })
    .await
}

fn statuses(d: &Delivery) -> Vec<&str> {
    d.history.iter().map(|s| s.status.as_str()).collect()
}

#[tokio::test]
async fn a_throttled_provider_fails_over_and_a_missing_receipt_is_asked_for() {
    let env = TestEnv::new().await;
    let intake = Intake::start(&env).await;
    let (complaint, reference) = intake.complaint_with("", "zh-CN", ContactMethod::Sms).await;
    // Tencent first, throttling every send; Aliyun takes it. No receipt is pushed: the
    // service asks Aliyun's QuerySendDetails (with the number read again from intake).
    let tencent = sms_provider("tencent", "throttle", None).await;
    let mut aliyun = sms_provider("aliyun", "ok", None).await;
    let path = sms_config(&["tencent", "aliyun"], &aliyun.url(), &tencent.url(), "");
    let config = sms_service(&env, &intake.url(), path, None, Duration::from_millis(300));
    let service = Notification::start(config).await;
    let case = uuid::Uuid::now_v7().to_string();
    env.bus()
        .await
        .publish_event(&case_created(&case, &complaint, &reference, "cn-nfra"))
        .await
        .unwrap();

    let sent = aliyun.next("SENT").await;
    assert_eq!(sent["phone"], "13812345678");
    assert_eq!(sent["sign"], SIGN);
    assert_eq!(
        sent["template"], "SMS_0001",
        "the approved id for receipt.sms.zh-CN.v1"
    );
    assert_eq!(sent["params"]["reference"], reference.as_str());
    let due_date = sent["params"]["decision_due_date"].as_str().unwrap();

    let d = delivery_in_state(&service, &case, "delivered").await;
    assert_eq!(d.channel, NoticeChannel::Sms as i32);
    assert_eq!(d.masked_address, "138****5678");
    assert_eq!(
        (d.provider.as_str(), d.template_id.as_str()),
        ("aliyun", "receipt.sms.zh-CN")
    );
    assert_eq!(d.provider_message_id, sent["id"].as_str().unwrap());
    assert_eq!(
        sent["ref"],
        d.delivery_id.as_str(),
        "our delivery id is the OutId"
    );
    // The hash is of the text the approved template gives with the parameters sent.
    let text =
        format!("【{SIGN}】您的投诉已受理，编号{reference}，我们将于{due_date}前告知处理决定。");
    assert_eq!(d.body_sha256, hex::encode(Sha256::digest(&text)));
    assert_eq!(statuses(&d), ["recorded", "sent", "delivered"]);
    assert!(
        d.history[2].detail.contains("(query)"),
        "{:?}",
        d.history[2]
    );

    // Tencent was tried first and throttled (the attempt's record says so).
    let pool = env.pool("notification").await;
    let detail: String = sqlx::query_scalar("SELECT detail FROM attempts WHERE outcome = 'sent'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        detail.contains("tencent throttled") && detail.contains("LimitExceeded"),
        "{detail}"
    );

    let events = notification_events(&env, 2).await;
    let sent_event = events
        .iter()
        .find_map(|p| match p {
            Payload::NotificationSent(s) => Some(s),
            _ => None,
        })
        .unwrap();
    assert_eq!(sent_event.provider, "aliyun");
    assert_eq!(sent_event.masked_address, "138****5678");
    let delivered = events
        .iter()
        .find_map(|p| match p {
            Payload::NotificationDelivered(s) => Some(s),
            _ => None,
        })
        .unwrap();
    assert_eq!(delivered.provider_message_id, d.provider_message_id);

    service.stop().await;
    intake.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn receipts_pushed_before_the_send_is_recorded_twice_and_late_count_once() {
    let env = TestEnv::new().await;
    let intake = Intake::start(&env).await;
    let (complaint, reference) = intake.complaint_with("", "en", ContactMethod::Sms).await;
    let port = free_port();
    let callback = format!("http://127.0.0.1:{port}/sms/receipts/tencent?token=s3cret");
    // Tencent pushes each receipt twice *before* it answers the send.
    let mut tencent = sms_provider("tencent", "ok", Some((&callback, 2))).await;
    let aliyun = sms_provider("aliyun", "ok", None).await;
    let path = sms_config(
        &["tencent", "aliyun"],
        &aliyun.url(),
        &tencent.url(),
        "s3cret",
    );
    let config = sms_service(
        &env,
        &intake.url(),
        path,
        Some(port),
        Duration::from_secs(3600),
    );
    let service = Notification::start(config).await;
    let case = uuid::Uuid::now_v7().to_string();
    env.bus()
        .await
        .publish_event(&case_created(&case, &complaint, &reference, "cn-nfra"))
        .await
        .unwrap();

    let sent = tencent.next("SENT").await;
    assert_eq!(sent["phone"], "+8613812345678");
    assert_eq!(
        sent["template"], "449740",
        "the approved id for receipt.sms.en.v1"
    );
    let params = sent["params"].as_array().unwrap();
    assert_eq!(
        params[0],
        reference.as_str(),
        "Tencent's parameters are positional"
    );
    for _ in 0..2 {
        let pushed = tencent.next("PUSHED").await;
        assert_eq!(pushed["status"], 200);
        assert_eq!(pushed["body"], r#"{"result":0,"errmsg":"OK"}"#);
    }
    let d = delivery_in_state(&service, &case, "delivered").await;
    assert_eq!(d.provider_message_id, sent["id"].as_str().unwrap());
    assert_eq!(statuses(&d), ["recorded", "sent", "delivered"]);
    assert!(d.history[2].detail.contains("(push)"));
    // The receipt was stored before the send was recorded, and applied when it was.
    let pool = env.pool("notification").await;
    let (stored, early): (i64, bool) = sqlx::query_as(
        "SELECT count(*), bool_and(r.received_at < s.at) FROM sms_receipts r
         JOIN delivery_status s ON s.status = 'sent' AND s.delivery_id = $1::uuid",
    )
    .bind(&d.delivery_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (stored, early),
        (1, true),
        "one receipt kept, received before the send was recorded"
    );

    // Late: the same report again, then a contradicting one; neither changes the outcome.
    let http = reqwest::Client::new();
    let report = |status: &str| {
        serde_json::json!([{
            "user_receive_time": "2026-12-03 10:00:09", "nationcode": "86", "mobile": "13812345678",
            "report_status": status, "errmsg": "DELIVRD", "description": "late", "sid": sent["id"],
        }])
    };
    for status in ["SUCCESS", "FAIL"] {
        let answer = http
            .post(&callback)
            .json(&report(status))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    // Refused: a wrong token, a body not in the provider's format, an unknown provider.
    let base = format!("http://127.0.0.1:{port}/sms/receipts");
    let wrong = http
        .post(format!("{base}/tencent?token=guess"))
        .json(&report("SUCCESS"));
    assert_eq!(wrong.send().await.unwrap().status(), 403);
    let malformed = http
        .post(&callback)
        .body("{\"sid\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let text = malformed.text().await.unwrap();
    assert!(text.contains("tencent"), "{text}");
    let unknown = http
        .post(format!("{base}/twilio?token=s3cret"))
        .json(&report("SUCCESS"));
    assert_eq!(unknown.send().await.unwrap().status(), 404);

    let d = delivery_in_state(&service, &case, "delivered").await;
    assert_eq!(
        statuses(&d),
        ["recorded", "sent", "delivered", "receipt_failed"]
    );
    let events = notification_events(&env, 2).await;
    let delivered = events
        .iter()
        .filter(|p| matches!(p, Payload::NotificationDelivered(_)))
        .count();
    assert_eq!(delivered, 1, "one delivered event: {events:?}");

    service.stop().await;
    intake.stop().await;
    env.cleanup().await;
}
