//! SMS adapters against local servers that check signatures as the providers document them
//! (tests/python/sms_provider.py, written independently of our signers).
// Helpers outside #[test] fns: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::Peer;
use redress_outbound::sms::aliyun::{Aliyun, AliyunConfig};
use redress_outbound::sms::tencent::{Tencent, TencentConfig};
use redress_outbound::sms::{
    PhoneNumber, ProviderError, ProviderKind, ReceiptStatus, SendFailure, Sender, SmsProvider,
    SmsRequest,
};

const KEY_ID: &str = "LTAI5tTestKeyId";
const SECRET: &str = "test-secret-of-30-characters-x";

fn aliyun(url: &str, secret: &str) -> Aliyun {
    Aliyun::new(aliyun_config(url, secret)).unwrap()
}

fn aliyun_config(url: &str, secret: &str) -> AliyunConfig {
    AliyunConfig {
        endpoint: url.parse().unwrap(),
        access_key_id: KEY_ID.into(),
        access_key_secret: secret.into(),
        region_id: "cn-hangzhou".into(),
        sign_name: "消费者权益保护".into(),
        templates: HashMap::from([("decision.zh-CN".into(), "SMS_71390007".into())]),
        timeout: Duration::from_secs(5),
    }
}

fn tencent(url: &str, secret: &str) -> Tencent {
    Tencent::new(TencentConfig {
        endpoint: url.parse().unwrap(),
        secret_id: KEY_ID.into(),
        secret_key: secret.into(),
        region: "ap-guangzhou".into(),
        sms_sdk_app_id: "1400006666".into(),
        sign_name: "消费者权益保护".into(),
        templates: HashMap::from([("decision.zh-CN".into(), "449739".into())]),
        timeout: Duration::from_secs(5),
    })
    .unwrap()
}

fn request(reference: &str) -> SmsRequest {
    SmsRequest {
        to: PhoneNumber::parse("+8613800135678").unwrap(),
        template: "decision.zh-CN".into(),
        params: vec![
            ("reference".into(), "RD-2026-000123".into()),
            ("date".into(), "2026年12月3日".into()),
        ],
        reference: reference.into(),
    }
}

async fn provider(kind: &str, mode: &str) -> Peer {
    Peer::start(
        "sms_provider.py",
        &[kind, "--key-id", KEY_ID, "--secret", SECRET, "--mode", mode],
    )
    .await
}

#[tokio::test]
async fn aliyun_send_is_signed_as_documented_and_queried_back() {
    let mut peer = provider("aliyun", "ok").await;
    let client = aliyun(&peer.url("/"), SECRET);
    let accepted = client.send(&request("delivery-1")).await.unwrap();
    assert_eq!(accepted.provider, ProviderKind::Aliyun);
    let sent = peer.next("SENT").await;
    assert_eq!(sent["id"], accepted.message_id.as_str());
    assert_eq!(sent["phone"], "13800135678");
    assert_eq!(sent["sign"], "消费者权益保护");
    assert_eq!(sent["template"], "SMS_71390007");
    assert_eq!(sent["params"]["date"], "2026年12月3日");
    assert_eq!(sent["ref"], "delivery-1");

    let today = chrono::Utc::now().date_naive();
    let receipts = client
        .query_send_details(&request("x").to, &accepted.message_id, today)
        .await
        .unwrap();
    assert_eq!(receipts.len(), 1);
    assert_eq!(
        receipts[0].key(),
        (ProviderKind::Aliyun, accepted.message_id.as_str())
    );
    assert_eq!(receipts[0].status, ReceiptStatus::Delivered);
    assert_eq!(receipts[0].reference.as_deref(), Some("delivery-1"));
}

#[tokio::test]
async fn tencent_send_is_signed_as_documented_and_pulled_back() {
    let mut peer = provider("tencent", "ok").await;
    let client = tencent(&peer.url("/"), SECRET);
    let accepted = client.send(&request("delivery-2")).await.unwrap();
    assert_eq!(accepted.provider, ProviderKind::Tencent);
    let sent = peer.next("SENT").await;
    assert_eq!(sent["id"], accepted.message_id.as_str());
    assert_eq!(sent["phone"], "+8613800135678");
    assert_eq!(sent["template"], "449739");
    assert_eq!(
        sent["params"],
        serde_json::json!(["RD-2026-000123", "2026年12月3日"])
    );
    assert_eq!(sent["app"], "1400006666");

    let receipts = client.pull_send_status(10).await.unwrap();
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0].message_id, accepted.message_id);
    assert_eq!(receipts[0].status, ReceiptStatus::Delivered);
    assert_eq!(receipts[0].reference.as_deref(), Some("delivery-2"));
    assert!(
        client.pull_send_status(10).await.unwrap().is_empty(),
        "pulled once"
    );
}

/// The verifiers can fail: a wrong secret is refused by both, with the providers' codes.
#[tokio::test]
async fn a_wrong_secret_is_refused_by_both_verifiers() {
    let ali = provider("aliyun", "ok").await;
    let err = aliyun(&ali.url("/"), "not-the-secret")
        .send(&request("d"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Refused { code, .. } if code == "SignatureDoesNotMatch"),
        "{err}"
    );
    let ten = provider("tencent", "ok").await;
    let err = tencent(&ten.url("/"), "not-the-secret")
        .send(&request("d"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Refused { code, .. } if code == "AuthFailure.SignatureFailure"),
        "{err}"
    );
}

#[tokio::test]
async fn a_throttled_provider_fails_over_to_the_next() {
    let ali = provider("aliyun", "throttle").await;
    let mut ten = provider("tencent", "ok").await;
    let sender = Sender::new(vec![
        Arc::new(aliyun(&ali.url("/"), SECRET)),
        Arc::new(tencent(&ten.url("/"), SECRET)),
    ]);
    let sent = sender.send(&request("delivery-3")).await.unwrap();
    assert_eq!(sent.accepted.provider, ProviderKind::Tencent);
    assert!(matches!(
        sent.failed_before.as_slice(),
        [ProviderError::Throttled { provider: ProviderKind::Aliyun, code, .. }] if code == "isv.BUSINESS_LIMIT_CONTROL"
    ));
    assert_eq!(ten.next("SENT").await["ref"], "delivery-3");

    // Both throttled: nothing sent, retry later.
    let ten_busy = provider("tencent", "throttle").await;
    let sender = Sender::new(vec![
        Arc::new(aliyun(&ali.url("/"), SECRET)),
        Arc::new(tencent(&ten_busy.url("/"), SECRET)),
    ]);
    match sender.send(&request("delivery-4")).await {
        Err(SendFailure::Exhausted(errors)) => {
            assert_eq!(errors.len(), 2);
            assert!(
                errors
                    .iter()
                    .all(|e| matches!(e, ProviderError::Throttled { .. }))
            );
        }
        other => panic!("expected exhausted, got {other:?}"),
    }
}

#[tokio::test]
async fn a_rejected_recipient_does_not_fail_over() {
    let refusing = provider("tencent", "bad-number").await;
    let mut other = provider("aliyun", "ok").await;
    let sender = Sender::new(vec![
        Arc::new(tencent(&refusing.url("/"), SECRET)),
        Arc::new(aliyun(&other.url("/"), SECRET)),
    ]);
    let failure = sender.send(&request("delivery-5")).await.unwrap_err();
    assert!(
        matches!(failure, SendFailure::Recipient { .. }),
        "{failure:?}"
    );
    assert!(
        other.drain().is_empty(),
        "the second provider was not asked"
    );
}

/// A refused connection proves nothing was sent (fail over); a request that got no answer
/// may have been sent (stop, in doubt).
#[tokio::test]
async fn connection_refused_fails_over_but_a_silent_provider_is_in_doubt() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_url = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let mut ten = provider("tencent", "ok").await;
    let sender = Sender::new(vec![
        Arc::new(aliyun(&closed_url, SECRET)),
        Arc::new(tencent(&ten.url("/"), SECRET)),
    ]);
    let sent = sender.send(&request("delivery-6")).await.unwrap();
    assert!(matches!(
        sent.failed_before.as_slice(),
        [ProviderError::Unavailable { .. }]
    ));
    assert_eq!(ten.next("SENT").await["ref"], "delivery-6");

    // Accepts the connection and the request, never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}/", silent.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let slow = Aliyun::new(AliyunConfig {
        timeout: Duration::from_millis(300),
        ..aliyun_config(&silent_url, SECRET)
    })
    .unwrap();
    let sender = Sender::new(vec![
        Arc::new(slow),
        Arc::new(tencent(&ten.url("/"), SECRET)),
    ]);
    let failure = sender.send(&request("delivery-7")).await.unwrap_err();
    assert!(
        matches!(failure, SendFailure::InDoubt { .. }),
        "{failure:?}"
    );
    assert!(
        ten.drain().is_empty(),
        "no second send after an in-doubt attempt"
    );
    hold.abort();
}
