//! Outbound channels (`redress-outbound`): signatures per second in-process, and webhook
//! deliveries per second to a local receiver that verifies every signature — through the
//! `Deliverer` (SSRF check, a client pinned to the checked address per attempt) and, for
//! comparison, through one shared client without the guard.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use futures::StreamExt;
use redress_outbound::sms::{aliyun, tencent};
use redress_outbound::webhook::{
    Deliverer, Endpoint, Guard, Message, MessageId, Outcome, Secret, SignatureKey, Signer,
    SsrfPolicy, VerifyKey, signing::Keypair, verify,
};

use crate::report::{Row, percentiles, write};

fn rate(case: &str, n: usize, mut f: impl FnMut(usize)) -> Row {
    let start = Instant::now();
    for i in 0..n {
        f(i);
    }
    let secs = start.elapsed().as_secs_f64();
    Row {
        case: case.into(),
        count: n,
        per_second: n as f64 / secs,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
    }
}

fn signing_rows() -> anyhow::Result<Vec<Row>> {
    let params: BTreeMap<String, String> = [
        ("AccessKeyId", "LTAI5t"),
        ("Action", "SendSms"),
        ("PhoneNumbers", "13800135678"),
        ("SignName", "消费者权益保护"),
        ("TemplateCode", "SMS_71390007"),
        ("TemplateParam", r#"{"reference":"RD-2026-000123"}"#),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let body = br#"{"PhoneNumberSet":["+8613800135678"],"TemplateId":"449739"}"#;
    let headers = [
        ("content-type", "application/json; charset=utf-8"),
        ("host", "sms.tencentcloudapi.com"),
    ];
    let secret = Secret::generate()?;
    let v1 = Signer::new(vec![SignatureKey::Symmetric(secret.clone())])?;
    let v1a = Signer::new(vec![SignatureKey::Asymmetric(Keypair::generate()?)])?;
    let id = MessageId::new();
    let payload = vec![b'x'; 1024];
    Ok(vec![
        rate("sign aliyun RPC v1 (HMAC-SHA1)", 50_000, |_| {
            std::hint::black_box(aliyun::sign("POST", &params, "secret"));
        }),
        rate("sign tencent TC3-HMAC-SHA256", 50_000, |i| {
            std::hint::black_box(tencent::authorization(
                "AKID", "key", "sms", i as i64, &headers, body,
            ));
        }),
        rate("sign webhook v1, 1 KiB", 50_000, |i| {
            std::hint::black_box(v1.sign(&id, i as i64, &payload));
        }),
        rate("sign webhook v1a (Ed25519), 1 KiB", 10_000, |i| {
            std::hint::black_box(v1a.sign(&id, i as i64, &payload));
        }),
    ])
}

/// A receiver that verifies every `v1` signature, as a department would.
async fn receiver(secret: Secret) -> anyhow::Result<u16> {
    let keys = Arc::new(vec![VerifyKey::Symmetric(secret)]);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let keys = keys.clone();
            async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                };
                let now = chrono::Utc::now().timestamp();
                match verify(
                    &keys,
                    &h("webhook-id"),
                    &h("webhook-timestamp"),
                    &h("webhook-signature"),
                    &body,
                    now,
                    300,
                ) {
                    Ok(()) => StatusCode::NO_CONTENT,
                    Err(_) => StatusCode::UNAUTHORIZED,
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(port)
}

async fn deliveries(
    case: &str,
    total: usize,
    in_flight: usize,
    send: impl Fn() -> futures::future::BoxFuture<'static, bool>,
) -> anyhow::Result<Row> {
    let start = Instant::now();
    let results: Vec<(bool, f64)> = futures::stream::iter(0..total)
        .map(|_| {
            let attempt = send();
            async move {
                let t = Instant::now();
                let ok = attempt.await;
                (ok, t.elapsed().as_secs_f64() * 1000.0)
            }
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let secs = start.elapsed().as_secs_f64();
    let failed = results.iter().filter(|(ok, _)| !ok).count();
    anyhow::ensure!(failed == 0, "{case}: {failed} deliveries failed");
    let (p50, p99) = percentiles(results.into_iter().map(|(_, ms)| ms).collect());
    Ok(Row {
        case: case.into(),
        count: total,
        per_second: total as f64 / secs,
        p50_ms: p50,
        p99_ms: p99,
    })
}

pub async fn run() -> anyhow::Result<()> {
    let mut rows = signing_rows()?;
    let secret = Secret::generate()?;
    let port = receiver(secret.clone()).await?;
    let url = format!("http://127.0.0.1:{port}/hook");
    let policy = SsrfPolicy {
        allow_insecure_http: true,
        allowed_networks: vec!["127.0.0.1/32".parse()?],
    };
    let deliverer = Arc::new(Deliverer::new(Guard::new(policy), Duration::from_secs(15)));
    let endpoint = Arc::new(Endpoint {
        url: url.parse()?,
        signer: Signer::new(vec![SignatureKey::Symmetric(secret.clone())])?,
    });
    let payload = serde_json::json!({"type": "redress.case.v1.extended", "timestamp": "2026-12-03T08:00:00Z",
        "data": {"caseId": "0193a6c2-7f1e-7000-8000-000000000001", "newDue": "2026-12-31"}});
    for in_flight in [1usize, 16] {
        let (d, e, p) = (deliverer.clone(), endpoint.clone(), payload.clone());
        rows.push(
            deliveries(
                &format!("webhook deliveries, Deliverer, {in_flight} in flight"),
                2_000,
                in_flight,
                move || {
                    let (d, e, p) = (d.clone(), e.clone(), p.clone());
                    Box::pin(async move {
                        matches!(
                            d.deliver(&e, &Message::json(MessageId::new(), &p)).await,
                            Outcome::Delivered { .. }
                        )
                    })
                },
            )
            .await?,
        );
    }
    // The same signed POSTs through one shared, pooled client: what guard and pinning cost.
    let shared = reqwest::Client::new();
    for in_flight in [1usize, 16] {
        let (c, e, p, u) = (
            shared.clone(),
            endpoint.clone(),
            payload.clone(),
            url.clone(),
        );
        rows.push(
            deliveries(
                &format!("webhook POSTs, one shared client, {in_flight} in flight"),
                2_000,
                in_flight,
                move || {
                    let (c, e, p, u) = (c.clone(), e.clone(), p.clone(), u.clone());
                    Box::pin(async move {
                        let m = Message::json(MessageId::new(), &p);
                        let ts = chrono::Utc::now().timestamp();
                        c.post(u)
                            .header("webhook-id", m.id.as_str())
                            .header("webhook-timestamp", ts.to_string())
                            .header("webhook-signature", e.signer.sign(&m.id, ts, &m.body))
                            .body(m.body)
                            .send()
                            .await
                            .is_ok_and(|r| r.status().is_success())
                    })
                },
            )
            .await?,
        );
    }
    write(
        "outbound",
        "Outbound: signatures in-process, webhook deliveries to a verifying local receiver",
        &rows,
    )
}
