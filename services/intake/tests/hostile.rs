//! Intake probed as a hostile or careless client would: personal data planted in every field
//! and in wrong-typed values, control and invisible characters, backdated complaints, odd
//! subjects, forged page tokens, bad gRPC fields, service identities that are not ours, and a
//! second environment on the same Postgres. Nothing raw leaves the vault, no bad input is
//! answered as a server fault, and nothing is silently dropped.

mod support;

use async_nats::HeaderMap;
use prost::Message as _;
use redress_proto::{
    intake::v1::{
        ComplaintSubmission, GetComplaintRequest, GetContactRequest, ListComplaintsRequest,
        SubmissionReply, SubmitComplaintRequest, intake_service_client::IntakeServiceClient,
        submission_reply::Outcome,
    },
    types::Timestamp,
};
use redress_runtime::{
    bus::{self, headers},
    testing::{OwnNats, TestEnv, eventually},
};
use support::*;

const PHONE: &str = "13812345678";
const EMAIL: &str = "zhang.san@example.com";
const ID_NUMBER: &str = "11010519491231002X";
const NAME: &str = "张三丰";
const ADDRESS: &str = "北京市朝阳区建国路88号";

fn leaks(haystack: &[u8]) -> Vec<&'static str> {
    [PHONE, EMAIL, ID_NUMBER, NAME, ADDRESS]
        .into_iter()
        .filter(|n| haystack.windows(n.len()).any(|w| w == n.as_bytes()))
        .collect()
}

fn violations(reply: &SubmissionReply) -> Vec<(String, String)> {
    match &reply.outcome {
        Some(Outcome::Rejected(r)) => r
            .violations
            .iter()
            .map(|v| (v.field.clone(), v.code.clone()))
            .collect(),
        _ => Vec::new(),
    }
}

fn planted(channel_ref: &str) -> ComplaintSubmission {
    let mut s = submission(channel_ref);
    s.title = format!("{NAME}的投诉 {PHONE}");
    s.description = format!(
        "我是{NAME}，住在{ADDRESS}，电话{PHONE}，邮箱{EMAIL}，身份证{ID_NUMBER}。平台重复扣款。"
    );
    s.desired_resolution = format!("退款寄到{ADDRESS}，联系{NAME}");
    if let Some(c) = s.consumer.as_mut() {
        c.name = NAME.into();
        c.address = ADDRESS.into();
    }
    s
}

#[tokio::test]
async fn personal_data_planted_in_every_field_never_leaves_the_vault() {
    let env = TestEnv::new().await;
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut intake = start(&env, log.clone());
    let channel = Publisher::new(&env).await;
    eventually("intake to serve", WAIT, || async {
        let lines = log.lock().map(|l| l.clone()).unwrap_or_default();
        lines.iter().any(|l| l.contains("serving")).then_some(())
    })
    .await;

    let mut replies = Vec::new();
    // Accepted: personal data in free text is masked.
    replies.push(channel.submit(&planted("plant-ok")).await);
    // Refused: identifiers that hold personal data.
    let mut by_ref = planted(PHONE);
    by_ref.channel_ref = PHONE.into();
    replies.push(channel.submit(&by_ref).await);
    for mutate in [
        (|s: &mut ComplaintSubmission| s.product = format!("贷款{PHONE}"))
            as fn(&mut ComplaintSubmission),
        |s| s.regulator_ref = ID_NUMBER.into(),
        |s| {
            s.attachments = vec![redress_proto::intake::v1::Attachment {
                uri: format!("https://files.example.com/{PHONE}.mp3"),
                sha256: "a".repeat(64),
                media_type: "audio/mpeg".into(),
                size_bytes: 1,
            }]
        },
    ] {
        let mut s = planted(&format!("plant-{}", replies.len()));
        mutate(&mut s);
        replies.push(channel.submit(&s).await);
    }
    // Refused: wrong-typed and mis-shaped JSON carrying personal data.
    for (n, body) in [
        format!(r#"{{"channel":"CHANNEL_WEB","channelRef":"j1","description":"d","consumer":{{"phone":{PHONE}}}}}"#),
        r#"{"channel":"CHANNEL_WEB","channelRef":"j2","description":"d","consumer":{"idNumber":110105194912310020}}"#.to_owned(),
        format!(r#"{{"channel":"CHANNEL_WEB","channelRef":"j3","description":"d","consumer":"{NAME} {PHONE} {EMAIL}"}}"#),
    ]
    .into_iter()
    .enumerate()
    {
        replies.push(channel.request("web", body.into_bytes().into(), true, &format!("j{n}")).await);
    }
    // A NUL in channelRef: a violation, answered at once.
    let mut nul = planted("x");
    nul.channel_ref = "a\u{0}b".into();
    replies.push(channel.submit(&nul).await);

    for reply in &replies {
        let json = serde_json::to_vec(reply).unwrap_or_default();
        assert!(
            leaks(&json).is_empty(),
            "a reply leaks {:?}: {reply:?}",
            leaks(&json)
        );
    }
    assert!(
        matches!(replies[0].outcome, Some(Outcome::Receipt(_))),
        "{:?}",
        replies[0]
    );
    for reply in &replies[1..] {
        assert!(!violations(reply).is_empty(), "refused: {reply:?}");
    }
    assert!(violations(&replies[1]).contains(&("channelRef".into(), "personal_data".into())));
    assert!(
        violations(replies.last().unwrap_or(&SubmissionReply::default()))
            .contains(&("channelRef".into(), "control_characters".into()))
    );

    let pool = pool(&env).await;
    eventually(
        "the accepted complaint registered and the submissions consumed",
        WAIT,
        || async {
            let registered = count(&pool, "SELECT count(*) FROM complaints").await == 1;
            let drained = stream_count(&channel.bus, &bus::INTAKE).await == 0;
            (registered && drained && received(&channel.bus).await.len() == 1).then_some(())
        },
    )
    .await;
    kill(&mut intake).await;

    // Every message of every stream, dead letters and rejections included.
    for spec in bus::ALL_STREAMS {
        for message in stored(&channel.bus, spec).await {
            let leaked = leaks(&message.payload);
            let headers = format!("{:?}", message.headers);
            assert!(
                leaked.is_empty() && leaks(headers.as_bytes()).is_empty(),
                "{} leaks {leaked:?}",
                message.subject
            );
        }
    }
    assert_eq!(
        stream_count(&channel.bus, &bus::DLQ).await,
        0,
        "nothing dead-lettered"
    );
    // Every log line.
    for line in log.lock().map(|l| l.clone()).unwrap_or_default() {
        assert!(leaks(line.as_bytes()).is_empty(), "log line leaks: {line}");
    }
    // Every column of every table, but the sealed one.
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema NOT IN ('pg_catalog', 'information_schema') \
           AND NOT (table_name = 'complaints' AND column_name = 'sealed')",
    )
    .fetch_all(&pool)
    .await
    .unwrap_or_default();
    assert!(columns.len() > 20, "found the tables: {}", columns.len());
    for (schema, table, column) in columns {
        let sql = format!(
            "SELECT convert_to(\"{column}\"::text, 'UTF8') FROM \"{schema}\".\"{table}\" WHERE \"{column}\" IS NOT NULL"
        );
        let values: Vec<Vec<u8>> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
        for value in values {
            assert!(
                leaks(&value).is_empty(),
                "{schema}.{table}.{column} holds {:?}",
                leaks(&value)
            );
        }
    }
    env.cleanup().await;
}

#[tokio::test]
async fn hostile_values_and_subjects_get_violations_never_silence() {
    let env = TestEnv::new().await;
    let intake = Intake::start(&env).await;
    let channel = Publisher::new(&env).await;
    let year = |y: i64| Timestamp {
        seconds: (y - 1970) * 31_556_952,
        nanos: 0,
    };
    type Case = (fn(&mut ComplaintSubmission), &'static str, &'static str);
    let cases: Vec<Case> = vec![
        (
            |s| s.title = "退款\u{202E}gnp.exe".into(),
            "title",
            "invisible_characters",
        ),
        (
            |s| s.channel_ref = "ref\u{2066}x".into(),
            "channelRef",
            "invisible_characters",
        ),
        (
            |s| {
                if let Some(c) = s.consumer.as_mut() {
                    c.name = "张\u{200D}三".into()
                }
            },
            "consumer.name",
            "invisible_characters",
        ),
        (
            |s| s.description = "扣款\u{FEFF}".into(),
            "description",
            "invisible_characters",
        ),
        (
            |s| {
                s.amount_in_dispute = Some(redress_proto::common::v1::Money {
                    currency_code: "CNY".into(),
                    units: 9_200_000_000_000_000_000,
                    nanos: 0,
                })
            },
            "amountInDispute.units",
            "out_of_range",
        ),
        (
            |s| {
                s.attachments = vec![redress_proto::intake::v1::Attachment {
                    uri: "file:///etc/passwd".into(),
                    sha256: "a".repeat(64),
                    media_type: "text/plain".into(),
                    size_bytes: 1,
                }]
            },
            "attachments[0].uri",
            "invalid_format",
        ),
    ];
    for (n, (mutate, field, code)) in cases.into_iter().enumerate() {
        let mut s = submission(&format!("hostile-{n}"));
        mutate(&mut s);
        let found = violations(&channel.submit(&s).await);
        assert!(
            found.contains(&(field.into(), code.into())),
            "{field} {code}: {found:?}"
        );
    }
    for (y, code) in [(1, "out_of_range"), (1900, "too_old"), (1970, "too_old")] {
        let mut s = submission(&format!("old-{y}"));
        s.received_at = Some(year(y));
        let found = violations(&channel.submit(&s).await);
        assert!(
            found
                .iter()
                .any(|(f, c)| f == "receivedAt" && (c == code || c == "too_old")),
            "{y}: {found:?}"
        );
    }
    // A subject with more tokens than the contract, and a channel that does not exist: each
    // answered with a violation naming the channel.
    let body = submission("extra").encode_to_vec();
    let reply = channel
        .request("web.extra", body.clone().into(), false, "extra")
        .await;
    assert!(
        violations(&reply).iter().any(|(f, _)| f == "channel"),
        "{reply:?}"
    );
    let reply = channel.request("fax", body.into(), false, "fax").await;
    let message = match &reply.outcome {
        Some(Outcome::Rejected(r)) => r.violations.first().map(|v| v.message.clone()),
        _ => None,
    };
    assert!(message.is_some_and(|m| m.contains("walk_in")), "{reply:?}");
    intake.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn the_durable_path_acknowledges_stored_and_registers_once() {
    let env = TestEnv::new().await;
    let intake = Intake::start(&env).await;
    let channel = Publisher::new(&env).await;
    let s = submission("durable-1");
    let mut h = HeaderMap::new();
    h.insert(headers::MSG_ID, "web:durable-1");
    let subject = channel.bus.subject("redress.intake.v1.durable.web");
    for _ in 0..3 {
        let ack = channel
            .bus
            .jetstream()
            .publish_with_headers(subject.clone(), h.clone(), s.encode_to_vec().into())
            .await;
        let ack = match ack {
            Ok(future) => future.await,
            Err(e) => panic!("publish: {e}"),
        };
        assert!(ack.is_ok(), "the PubAck means stored: {ack:?}");
    }
    let pool = pool(&env).await;
    // The event leaves through the outbox relay, after the row is committed:
    // wait for all three, then check there is exactly one.
    eventually(
        "registered once, the stream drained, one event",
        WAIT,
        || async {
            let registered = count(&pool, "SELECT count(*) FROM complaints").await == 1;
            let drained = stream_count(&channel.bus, &bus::INTAKE_DURABLE).await == 0;
            let published = !received(&channel.bus).await.is_empty();
            (registered && drained && published).then_some(())
        },
    )
    .await;
    assert_eq!(received(&channel.bus).await.len(), 1);
    intake.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn bad_grpc_input_is_invalid_argument_and_roles_are_explicit() {
    let env = TestEnv::new().await;
    let intake = Intake::start(&env).await;
    let channel = Publisher::new(&env).await;
    let Some(Outcome::Receipt(receipt)) = channel.submit(&submission("g-1")).await.outcome else {
        panic!("no receipt")
    };
    let mut client = IntakeServiceClient::new(support::channel(&intake.grpc_url()).await);
    let code = |r: Result<tonic::Code, tonic::Code>| r.err().unwrap_or(tonic::Code::Ok);
    let get = |id: &str| authed(GetComplaintRequest { id: id.into() }, &["specialist"]);
    assert_eq!(
        code(
            client
                .get_complaint(get("a\u{0}b"))
                .await
                .map(|_| tonic::Code::Ok)
                .map_err(|s| s.code())
        ),
        tonic::Code::InvalidArgument
    );
    let list = |r: ListComplaintsRequest| authed(r, &["analyst"]);
    let ancient = ListComplaintsRequest {
        received_after: Some(Timestamp {
            seconds: -(7000 * 31_556_952),
            nanos: 0,
        }),
        ..Default::default()
    };
    let forged = ListComplaintsRequest {
        page: Some(redress_proto::common::v1::PageRequest {
            page_size: 10,
            page_token: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
        }),
        ..Default::default()
    };
    for request in [ancient, forged] {
        let status = client
            .list_complaints(list(request))
            .await
            .err()
            .map(|s| s.code());
        assert_eq!(status, Some(tonic::Code::InvalidArgument));
    }
    let contact = |purpose: String| {
        authed(
            GetContactRequest {
                complaint_id: receipt.complaint_id.clone(),
                purpose,
            },
            &["specialist"],
        )
    };
    for purpose in ["x".repeat(100_000), "send\u{0}notice".into()] {
        let status = client
            .get_contact(contact(purpose))
            .await
            .err()
            .map(|s| s.code());
        assert_eq!(status, Some(tonic::Code::InvalidArgument));
    }
    // Service identities are a list per RPC, and only count as their own subject.
    for roles in [
        &["service:anything"][..],
        &["service:classification"],
        &["handler", "service:notification"],
    ] {
        let mut request = tonic::Request::new(ListComplaintsRequest::default());
        let token = redress_runtime::testing::token("someone", roles, Some("cards"));
        if let Ok(v) = format!("Bearer {token}").parse() {
            request.metadata_mut().insert("authorization", v);
        }
        let status = client
            .list_complaints(request)
            .await
            .err()
            .map(|s| s.code());
        assert_eq!(status, Some(tonic::Code::PermissionDenied), "{roles:?}");
    }
    // A channel submits only for itself.
    let mut app = submission("g-2");
    app.channel = redress_proto::common::v1::Channel::App as i32;
    let status = client
        .submit_complaint(authed(
            SubmitComplaintRequest {
                submission: Some(app),
            },
            &["service:channel-web"],
        ))
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(status, Some(tonic::Code::PermissionDenied));
    intake.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn two_environments_on_one_postgres_never_see_each_other() {
    // One database, two namespaces, two NATS servers: each suite's relay publishes only its
    // own rows, on its own server.
    let a = TestEnv::new().await;
    let second = OwnNats::start().await;
    let mut b_config = config(&a);
    b_config.runtime.bus_namespace = format!("{}b", a.namespace);
    b_config.runtime.nats_url = second.url();
    let intake_a = Intake::start(&a).await;
    let intake_b = Intake::start_with(b_config.clone()).await;
    let channel_a = Publisher::new(&a).await;
    for n in 0..20 {
        channel_a.submit(&submission(&format!("iso-{n}"))).await;
    }
    eventually("A's received events", WAIT, || async {
        (received(&channel_a.bus).await.len() == 20).then_some(())
    })
    .await;
    let bus_b = match async_nats::connect(second.url().as_str()).await {
        Ok(c) => redress_runtime::Bus::from_client(c, &b_config.runtime.bus_namespace, 1),
        Err(e) => panic!("second NATS: {e}"),
    };
    // B's relay reads B's schema only: its outbox never held A's events, so it can never
    // publish them (the bug this guards against: one shared outbox relayed by both).
    let b_outbox = format!(
        "SELECT count(*) FROM {}_intake.outbox",
        b_config.runtime.bus_namespace
    );
    let a_pool = pool(&a).await;
    eventually("A's outbox relayed", WAIT, || async {
        (count(
            &a_pool,
            "SELECT count(*) FROM outbox WHERE published_at IS NULL",
        )
        .await
            == 0)
            .then_some(())
    })
    .await;
    let in_b: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(b_outbox))
        .fetch_one(&a_pool)
        .await
        .unwrap_or(-1);
    assert_eq!(in_b, 0, "B's outbox holds nothing of A's");
    assert_eq!(
        received(&bus_b).await.len(),
        0,
        "B published A's complaints"
    );
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE '%intake' ORDER BY 1",
    )
    .fetch_all(&pool(&a).await)
    .await
    .unwrap_or_default();
    assert_eq!(schemas.len(), 2, "one schema per environment: {schemas:?}");
    intake_a.stop().await;
    intake_b.stop().await;
    drop(second);
    a.cleanup().await;
}

/// Arbitrary JSON and protobuf on the submission subjects: every request is answered (a
/// receipt or violations), the service keeps serving, and nothing is dead-lettered.
#[tokio::test]
async fn generated_garbage_on_the_bus_is_always_answered() {
    use proptest::{prelude::*, strategy::ValueTree, test_runner::TestRunner};
    let env = TestEnv::new().await;
    let intake = Intake::start(&env).await;
    let channel = Publisher::new(&env).await;
    let mut runner = TestRunner::deterministic();
    let json = proptest::arbitrary::any::<String>();
    let bytes = proptest::collection::vec(any::<u8>(), 0..512);
    let field = "[a-zA-Z]{1,12}";
    for n in 0..150 {
        let text = json
            .new_tree(&mut runner)
            .map(|t| t.current())
            .unwrap_or_default();
        let key = field
            .new_tree(&mut runner)
            .map(|t| t.current())
            .unwrap_or_default();
        let raw = bytes
            .new_tree(&mut runner)
            .map(|t| t.current())
            .unwrap_or_default();
        let shaped = serde_json::json!({"channel": "CHANNEL_WEB", "channelRef": format!("p{n}"), key.clone(): text, "description": text});
        for (payload, is_json) in [
            (serde_json::to_vec(&shaped).unwrap_or_default(), true),
            (text.clone().into_bytes(), true),
            (raw.clone(), false),
        ] {
            let reply = channel
                .request("web", payload.into(), is_json, &format!("p{n}"))
                .await;
            assert!(reply.outcome.is_some(), "an answer for {n}");
        }
    }
    // Valid protobuf with unknown fields is still a submission.
    let mut with_unknown = submission("unknown-fields").encode_to_vec();
    with_unknown.extend_from_slice(&[0xF8, 0x7F, 0x01]);
    let reply = channel
        .request("web", with_unknown.into(), false, "unknown-fields")
        .await;
    assert!(
        matches!(reply.outcome, Some(Outcome::Receipt(_))),
        "{reply:?}"
    );
    assert_eq!(stream_count(&channel.bus, &bus::DLQ).await, 0);
    intake.stop().await;
    env.cleanup().await;
}

/// Arbitrary values in every field of the read RPCs: never INTERNAL, UNAVAILABLE or UNKNOWN.
#[tokio::test]
async fn generated_grpc_fields_are_never_a_server_fault() {
    use proptest::{prelude::*, strategy::ValueTree, test_runner::TestRunner};
    let env = TestEnv::new().await;
    let intake = Intake::start(&env).await;
    let mut client = IntakeServiceClient::new(support::channel(&intake.grpc_url()).await);
    let mut runner = TestRunner::deterministic();
    let text = any::<String>();
    let number = any::<i64>();
    let small = any::<i32>();
    let faults = [
        tonic::Code::Internal,
        tonic::Code::Unavailable,
        tonic::Code::Unknown,
    ];
    for _ in 0..200 {
        let s = text
            .new_tree(&mut runner)
            .map(|t| t.current())
            .unwrap_or_default();
        let seconds = number
            .new_tree(&mut runner)
            .map(|t| t.current())
            .unwrap_or_default();
        let nanos = small
            .new_tree(&mut runner)
            .map(|t| t.current())
            .unwrap_or_default();
        let codes = [
            client
                .get_complaint(authed(GetComplaintRequest { id: s.clone() }, &["analyst"]))
                .await
                .err(),
            client
                .list_complaints(authed(
                    ListComplaintsRequest {
                        channel: nanos,
                        consumer_ref: s.clone(),
                        received_after: Some(Timestamp { seconds, nanos }),
                        received_before: Some(Timestamp {
                            seconds: -seconds,
                            nanos: 0,
                        }),
                        page: Some(redress_proto::common::v1::PageRequest {
                            page_size: nanos.unsigned_abs(),
                            page_token: s.clone(),
                        }),
                    },
                    &["analyst"],
                ))
                .await
                .err(),
            client
                .get_contact(authed(
                    GetContactRequest {
                        complaint_id: s.clone(),
                        purpose: s.clone(),
                    },
                    &["specialist"],
                ))
                .await
                .err(),
        ];
        for status in codes.into_iter().flatten() {
            assert!(
                !faults.contains(&status.code()),
                "{s:?} {seconds} {nanos}: {status:?}"
            );
        }
    }
    intake.stop().await;
    env.cleanup().await;
}
