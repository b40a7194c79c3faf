//! The channel contract end to end: real NATS JetStream, real Postgres, real gRPC.

mod support;

use std::{collections::HashSet, time::Duration};

use prost::Message as _;
use redress_proto::{
    common::v1::{Channel, Money},
    events::v1::event::Payload,
    intake::v1::{
        ComplaintSubmission, GetComplaintRequest, GetContactRequest, SubmissionRejected,
        SubmitComplaintRequest, intake_service_client::IntakeServiceClient,
        submission_reply::Outcome,
    },
};
use redress_runtime::{
    bus,
    testing::{TestEnv, eventually},
};
use support::*;

fn receipt(
    reply: &redress_proto::intake::v1::SubmissionReply,
) -> redress_proto::intake::v1::SubmissionReceipt {
    match &reply.outcome {
        Some(Outcome::Receipt(r)) => r.clone(),
        other => panic!("expected a receipt, got {other:?}"),
    }
}

fn violations(reply: &redress_proto::intake::v1::SubmissionReply) -> Vec<(String, String)> {
    match &reply.outcome {
        Some(Outcome::Rejected(r)) => r
            .violations
            .iter()
            .map(|v| (v.field.clone(), v.code.clone()))
            .collect(),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn protobuf_and_json_requests_get_receipts_and_emit_received_events() {
    let env = TestEnv::new().await;
    let intake = Intake::start(&env).await;
    let channel = Publisher::new(&env).await;

    let first = receipt(&channel.submit(&submission("pb-1")).await);
    assert!(!first.duplicate);
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y%m%d")
        .to_string();
    assert!(
        first.reference.starts_with(&format!("RD-{today}-")),
        "{}",
        first.reference
    );
    assert_eq!(first.reference.len(), "RD-20261122-000042".len());
    assert_eq!(
        uuid::Uuid::parse_str(&first.complaint_id)
            .map(|u| u.get_version_num())
            .ok(),
        Some(7)
    );

    let json = serde_json::json!({
        "channel": "CHANNEL_WEB",
        "channelRef": "json-1",
        "kind": "COMPLAINT_KIND_INQUIRY",
        "description": "My card was charged twice for one purchase.",
        "consumer": {"email": "pat@example.com", "vulnerable": {"elderly": true}},
        "amountInDispute": {"currencyCode": "USD", "units": "120", "nanos": 500000000}
    });
    let reply = channel
        .request(
            "web",
            serde_json::to_vec(&json).unwrap_or_default().into(),
            true,
            "json-1",
        )
        .await;
    let second = receipt(&reply);
    assert_ne!(second.reference, first.reference);

    let received = eventually("2 received events", WAIT, || async {
        let r = received(&channel.bus).await;
        (r.len() == 2).then_some(r)
    })
    .await;
    let en = received.iter().find(|r| r.channel_ref == "json-1");
    let Some(en) = en else {
        panic!("no event for json-1")
    };
    assert_eq!(
        en.kind,
        redress_proto::events::v1::ComplaintKind::Inquiry as i32
    );
    assert_eq!(en.vulnerability.as_ref().map(|v| v.elderly), Some(true));
    assert_eq!(en.amount_in_dispute.as_ref().map(|m| m.units), Some(120));
    assert!(en.consumer_ref.starts_with("cr_"));
    let zh = received.iter().find(|r| r.channel_ref == "pb-1");
    let Some(zh) = zh else {
        panic!("no event for pb-1")
    };
    assert!(
        zh.description.contains("[phone]")
            && zh.description.contains("[email]")
            && zh.description.contains("[id]")
    );

    intake.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn fire_and_forget_submissions_are_registered_from_the_stream() {
    let env = TestEnv::new().await;
    let intake = Intake::start(&env).await;
    let channel = Publisher::new(&env).await;
    for n in 0..20 {
        channel.publish(&submission(&format!("ff-{n}"))).await;
    }
    let pool = pool(&env).await;
    eventually("20 registrations", WAIT, || async {
        (count(&pool, "SELECT count(*) FROM complaints").await == 20).then_some(())
    })
    .await;
    eventually("20 received events", WAIT, || async {
        (received(&channel.bus).await.len() == 20).then_some(())
    })
    .await;
    // A resend after the fact returns the first receipt.
    let again = receipt(&channel.submit(&submission("ff-3")).await);
    assert!(again.duplicate);
    intake.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn every_invalid_case_names_its_field_and_reason() {
    let env = TestEnv::new().await;
    let intake = Intake::start(&env).await;
    let channel = Publisher::new(&env).await;

    type Mutation = fn(&mut ComplaintSubmission);
    let cases: Vec<(&str, Mutation, &str, &str)> = vec![
        (
            "no-description",
            |s| s.description.clear(),
            "description",
            "required",
        ),
        (
            "long-description",
            |s| s.description = "长".repeat(20_001),
            "description",
            "too_long",
        ),
        (
            "control-chars",
            |s| s.title = "a\u{1b}[31m".into(),
            "title",
            "control_characters",
        ),
        (
            "bad-phone",
            |s| {
                if let Some(c) = s.consumer.as_mut() {
                    c.phone = "12345".into()
                }
            },
            "consumer.phone",
            "invalid_format",
        ),
        (
            "bad-email",
            |s| {
                if let Some(c) = s.consumer.as_mut() {
                    c.email = "a@@b".into()
                }
            },
            "consumer.email",
            "invalid_format",
        ),
        (
            "bad-id",
            |s| {
                if let Some(c) = s.consumer.as_mut() {
                    c.id_number = "110105194912310021".into()
                }
            },
            "consumer.idNumber",
            "checksum",
        ),
        (
            "bad-currency",
            |s| {
                s.amount_in_dispute = Some(Money {
                    currency_code: "RMB".into(),
                    units: 1,
                    nanos: 0,
                })
            },
            "amountInDispute.currencyCode",
            "unknown_value",
        ),
        (
            "three-decimals",
            |s| {
                s.amount_in_dispute = Some(Money {
                    currency_code: "CNY".into(),
                    units: 1,
                    nanos: 5_000_000,
                })
            },
            "amountInDispute.nanos",
            "invalid_format",
        ),
        (
            "negative",
            |s| {
                s.amount_in_dispute = Some(Money {
                    currency_code: "CNY".into(),
                    units: -1,
                    nanos: 0,
                })
            },
            "amountInDispute",
            "out_of_range",
        ),
        (
            "unreachable",
            |s| s.consumer = Some(Default::default()),
            "consumer",
            "unreachable",
        ),
        (
            "future",
            |s| {
                s.received_at = Some(redress_runtime::event::timestamp(
                    chrono::Utc::now() + chrono::Duration::days(1),
                ))
            },
            "receivedAt",
            "in_future",
        ),
        ("unknown-kind", |s| s.kind = 42, "kind", "unknown_value"),
        (
            "wrong-channel",
            |s| s.channel = Channel::App as i32,
            "channel",
            "mismatch",
        ),
        (
            "no-ref",
            |s| s.channel_ref.clear(),
            "channelRef",
            "required",
        ),
    ];
    for (name, mutate, field, code) in cases {
        let mut s = submission(name);
        mutate(&mut s);
        let found = violations(&channel.submit(&s).await);
        assert!(
            found.contains(&(field.to_owned(), code.to_owned())),
            "{name}: {found:?}"
        );
    }

    // A regulator referral needs its reference.
    let mut referral = submission("ref-1");
    referral.channel = Channel::RegulatorReferral as i32;
    let reply = channel
        .request(
            "regulator_referral",
            referral.encode_to_vec().into(),
            false,
            "ref-1",
        )
        .await;
    assert!(violations(&reply).contains(&("regulatorRef".into(), "required".into())));

    // Not decodable at all: rejected with a decode violation, never dropped.
    let garbage = channel
        .request("web", vec![0xff, 0x00, 0x13, 0x37].into(), false, "garbage")
        .await;
    assert_eq!(
        violations(&garbage).first().map(|v| v.1.as_str()),
        Some("undecodable")
    );
    let bad_enum =
        serde_json::json!({"channel": "CHANNEL_FAX", "channelRef": "x", "description": "d"});
    let reply = channel
        .request(
            "web",
            serde_json::to_vec(&bad_enum).unwrap_or_default().into(),
            true,
            "x",
        )
        .await;
    assert_eq!(
        violations(&reply)
            .first()
            .map(|v| (v.0.as_str(), v.1.as_str())),
        Some(("channel", "undecodable"))
    );
    let too_big = vec![b'a'; 300 * 1024];
    let reply = channel.request("web", too_big.into(), false, "big").await;
    assert_eq!(
        violations(&reply).first().map(|v| v.1.as_str()),
        Some("too_large")
    );

    // Every rejection is also published for the channel, and nothing was registered.
    eventually(
        "rejections on redress.intake.v1.rejected.web",
        WAIT,
        || async { (stream_count(&channel.bus, &bus::INTAKE_REJECTED).await >= 18).then_some(()) },
    )
    .await;
    let pool = pool(&env).await;
    assert_eq!(count(&pool, "SELECT count(*) FROM complaints").await, 0);
    intake.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_thousand_concurrent_submissions_and_a_hundred_resends_register_a_thousand() {
    let env = TestEnv::new().await;
    let intake = Intake::start(&env).await;
    let channel = std::sync::Arc::new(Publisher::new(&env).await);

    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..1000 {
        let channel = channel.clone();
        tasks.spawn(
            async move { receipt(&channel.submit(&submission(&format!("burst-{n}"))).await) },
        );
    }
    let mut firsts = Vec::new();
    while let Some(result) = tasks.join_next().await {
        if let Ok(r) = result {
            firsts.push(r);
        }
    }
    for n in 0..100 {
        let channel = channel.clone();
        tasks.spawn(async move {
            receipt(
                &channel
                    .submit(&submission(&format!("burst-{}", n * 7)))
                    .await,
            )
        });
    }
    let mut resends = Vec::new();
    while let Some(result) = tasks.join_next().await {
        if let Ok(r) = result {
            resends.push(r);
        }
    }
    assert_eq!(firsts.len() + resends.len(), 1100);
    assert_eq!(firsts.iter().filter(|r| r.duplicate).count(), 0);
    assert_eq!(resends.iter().filter(|r| r.duplicate).count(), 100);
    let first_ids: HashSet<_> = firsts.iter().map(|r| r.complaint_id.clone()).collect();
    assert_eq!(first_ids.len(), 1000);
    assert!(
        resends.iter().all(|r| first_ids.contains(&r.complaint_id)),
        "a resend returns the first receipt"
    );
    let references: HashSet<_> = firsts.iter().map(|r| r.reference.clone()).collect();
    assert_eq!(references.len(), 1000, "reference numbers are unique");

    let pool = pool(&env).await;
    assert_eq!(count(&pool, "SELECT count(*) FROM complaints").await, 1000);
    eventually("1000 received events", WAIT, || async {
        (stream_count(&channel.bus, &bus::COMPLAINT_EVENTS).await >= 1000).then_some(())
    })
    .await;
    // The stream's copies of the same requests must not add anything once drained.
    eventually("the INTAKE stream to be consumed", WAIT, || async {
        let mut consumer = channel
            .bus
            .jetstream()
            .get_consumer_from_stream::<async_nats::jetstream::consumer::pull::Config, _, _>(
                "intake-submissions",
                channel.bus.stream_name("INTAKE"),
            )
            .await
            .ok()?;
        let info = consumer.info().await.ok()?;
        (info.num_pending == 0 && info.num_ack_pending == 0).then_some(())
    })
    .await;
    let received = received(&channel.bus).await;
    assert_eq!(received.len(), 1000);
    let distinct: HashSet<_> = received.iter().map(|r| r.complaint_id.clone()).collect();
    assert_eq!(distinct.len(), 1000);
    assert_eq!(count(&pool, "SELECT count(*) FROM complaints").await, 1000);
    intake.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_similar_complaint_from_the_same_consumer_is_a_suspected_duplicate() {
    let env = TestEnv::new().await;
    let intake = Intake::start(&env).await;
    let channel = Publisher::new(&env).await;
    let mut a = submission("dup-a");
    a.description = "催收人员每天打电话骚扰我的家人和同事，威胁上门，要求立即停止暴力催收。".into();
    let mut b = submission("dup-b");
    b.description = "催收人员每天打电话骚扰我家人和同事，还威胁上门，请立即停止暴力催收！".into();
    let mut c = submission("dup-c");
    c.description = "信用卡年费未经同意被扣除，要求退还。".into();
    let first = receipt(&channel.submit(&a).await);
    let second = receipt(&channel.submit(&b).await);
    receipt(&channel.submit(&c).await);
    eventually("3 received events", WAIT, || async {
        (received(&channel.bus).await.len() == 3).then_some(())
    })
    .await;
    let events = events(&stored(&channel.bus, &bus::COMPLAINT_EVENTS).await);
    let suspected: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Some(Payload::DuplicateSuspected(d)) => Some(d.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(suspected.len(), 1, "{suspected:?}");
    assert_eq!(suspected[0].complaint_id, second.complaint_id);
    assert_eq!(suspected[0].earlier_complaint_id, first.complaint_id);
    assert!(suspected[0].similarity >= 0.6);
    intake.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn grpc_reads_are_redacted_and_contact_details_need_the_right_role() {
    let env = TestEnv::new().await;
    let intake = Intake::start(&env).await;
    let channel = Publisher::new(&env).await;
    let registered = receipt(&channel.submit(&submission("grpc-1")).await);
    let mut client = IntakeServiceClient::new(support::channel(&intake.grpc_url()).await);

    let unauthenticated = client
        .get_complaint(GetComplaintRequest {
            id: registered.reference.clone(),
        })
        .await;
    assert_eq!(
        unauthenticated.err().map(|s| s.code()),
        Some(tonic::Code::Unauthenticated)
    );

    let complaint = client
        .get_complaint(authed(
            GetComplaintRequest {
                id: registered.reference.clone(),
            },
            &["analyst"],
        ))
        .await;
    let Ok(complaint) = complaint else {
        panic!("{complaint:?}")
    };
    let complaint = complaint.into_inner();
    assert_eq!(complaint.complaint_id, registered.complaint_id);
    assert!(
        !complaint.description.contains("13812345678") && complaint.description.contains("[phone]")
    );

    let ask = || GetContactRequest {
        complaint_id: registered.complaint_id.clone(),
        purpose: "send the decision notice".into(),
    };
    for role in ["analyst", "handler", "product", "service:classification"] {
        let denied = client.get_contact(authed(ask(), &[role])).await;
        assert_eq!(
            denied.err().map(|s| s.code()),
            Some(tonic::Code::PermissionDenied),
            "{role}"
        );
    }
    let contact = client
        .get_contact(authed(ask(), &["service:notification"]))
        .await;
    let Ok(contact) = contact else {
        panic!("{contact:?}")
    };
    assert_eq!(contact.into_inner().phone, "+8613812345678");
    let no_purpose = client
        .get_contact(authed(
            GetContactRequest {
                complaint_id: registered.complaint_id.clone(),
                purpose: String::new(),
            },
            &["specialist"],
        ))
        .await;
    assert_eq!(
        no_purpose.err().map(|s| s.code()),
        Some(tonic::Code::InvalidArgument)
    );

    let reads = eventually("the contact_read audit event", WAIT, || async {
        let reads: Vec<_> = events(&stored(&channel.bus, &bus::COMPLAINT_EVENTS).await)
            .into_iter()
            .filter_map(|e| match e.payload {
                Some(Payload::ContactRead(r)) => Some(r),
                _ => None,
            })
            .collect();
        (!reads.is_empty()).then_some(reads)
    })
    .await;
    assert_eq!(reads[0].purpose, "send the decision notice");
    assert_eq!(
        reads[0].reader.as_ref().map(|a| a.role.as_str()),
        Some("service:notification")
    );
    intake.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn grpc_submissions_follow_the_same_rules() {
    let env = TestEnv::new().await;
    let intake = Intake::start(&env).await;
    let mut client = IntakeServiceClient::new(support::channel(&intake.grpc_url()).await);
    let request = |s: ComplaintSubmission, role: &str| {
        authed(
            SubmitComplaintRequest {
                submission: Some(s),
            },
            &[role],
        )
    };

    let ok = client
        .submit_complaint(request(submission("g-1"), "service:channel-web"))
        .await;
    let Ok(ok) = ok else { panic!("{ok:?}") };
    assert!(!ok.into_inner().duplicate);
    let again = client
        .submit_complaint(request(submission("g-1"), "specialist"))
        .await;
    assert_eq!(again.map(|r| r.into_inner().duplicate).ok(), Some(true));

    let foreign = client
        .submit_complaint(request(submission("g-2"), "service:channel-app"))
        .await;
    assert_eq!(
        foreign.err().map(|s| s.code()),
        Some(tonic::Code::PermissionDenied)
    );

    let mut bad = submission("g-3");
    bad.description.clear();
    let refused = client.submit_complaint(request(bad, "specialist")).await;
    let Err(status) = refused else {
        panic!("an empty description must be refused")
    };
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("description"));
    let details = SubmissionRejected::decode(status.details()).unwrap_or_default();
    assert_eq!(
        details.violations.first().map(|v| v.code.as_str()),
        Some("required")
    );
    intake.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn rotating_the_key_reseals_every_record_and_keeps_it_readable() {
    let env = TestEnv::new().await;
    let intake = Intake::start(&env).await;
    let channel = Publisher::new(&env).await;
    for n in 0..5 {
        receipt(&channel.submit(&submission(&format!("rot-{n}"))).await);
    }
    intake.stop().await;

    let keys = format!(
        "{},dev2:{}",
        redress_intake::vault::dev::KEYS,
        "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="
    );
    let vault =
        redress_intake::vault::Vault::new(&keys, "dev2", redress_intake::vault::dev::PSEUDONYM);
    let Ok(vault) = vault else {
        panic!("{vault:?}")
    };
    let db = redress_runtime::Database::connect(
        &env.database_url,
        "intake",
        &env.schema("intake"),
        2,
        &redress_intake::MIGRATIONS,
    )
    .await;
    let Ok(db) = db else { panic!("{db:?}") };
    let rotated = redress_intake::store::rotate_keys(db.pool(), &vault)
        .await
        .ok();
    assert_eq!(rotated, Some(5));
    let pool = pool(&env).await;
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM complaints WHERE key_id = 'dev2'"
        )
        .await,
        5
    );

    let mut config = config(&env);
    config.intake.keys = Some(keys.into());
    config.intake.active_key = Some("dev2".into());
    let intake = Intake::start_with(config).await;
    let mut client = IntakeServiceClient::new(support::channel(&intake.grpc_url()).await);
    let id: String = sqlx::query_scalar("SELECT id::text FROM complaints LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap_or_default();
    let contact = client
        .get_contact(authed(
            GetContactRequest {
                complaint_id: id,
                purpose: "verify rotation".into(),
            },
            &["compliance"],
        ))
        .await;
    assert_eq!(
        contact.map(|c| c.into_inner().name).ok().as_deref(),
        Some("张三")
    );
    tokio::time::timeout(Duration::from_secs(30), intake.stop())
        .await
        .ok();
    env.cleanup().await;
}

#[tokio::test]
async fn the_sample_submissions_in_examples_do_what_the_readme_says() {
    let env = TestEnv::new().await;
    let intake = Intake::start(&env).await;
    let channel = Publisher::new(&env).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for (file, subject, valid) in [
        ("zh-valid.json", "web", true),
        ("en-valid.json", "email", true),
        ("zh-invalid.json", "web", false),
        ("en-invalid.json", "regulator_referral", false),
    ] {
        let body = std::fs::read(dir.join(file)).unwrap_or_default();
        let reply = channel.request(subject, body.into(), true, file).await;
        match (&reply.outcome, valid) {
            (Some(Outcome::Receipt(_)), true) => {}
            (Some(Outcome::Rejected(r)), false) => {
                assert!(r.violations.len() >= 3, "{file}: {r:?}")
            }
            (other, _) => panic!("{file}: unexpected {other:?}"),
        }
    }
    intake.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn the_channels_trace_continues_on_the_received_event() {
    let env = TestEnv::new().await;
    let intake = Intake::start(&env).await;
    let channel = Publisher::new(&env).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut h = async_nats::HeaderMap::new();
    h.insert("Nats-Msg-Id", "web:traced-1");
    h.insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01").as_str(),
    );
    let reply = channel
        .bus
        .client()
        .request_with_headers(
            channel.bus.subject("redress.intake.v1.submit.web"),
            h,
            submission("traced-1").encode_to_vec().into(),
        )
        .await;
    assert!(reply.is_ok(), "{reply:?}");
    let traceparent = eventually("the received event", WAIT, || async {
        stored(&channel.bus, &bus::COMPLAINT_EVENTS)
            .await
            .into_iter()
            .find(|m| {
                m.headers.get("Redress-Event-Type").map(|v| v.as_str())
                    == Some("complaint_received")
            })
            .and_then(|m| m.headers.get("traceparent").map(|v| v.to_string()))
    })
    .await;
    assert_eq!(
        traceparent.split('-').nth(1),
        Some(trace_id),
        "{traceparent}"
    );
    intake.stop().await;
    env.cleanup().await;
}
