//! Notices over e-mail end to end: case events on the real bus, contacts from a real intake
//! over gRPC, mail through STARTTLS to a real SMTP server (aiosmtpd) read back by Python's
//! e-mail parser, and the proof over the service's own gRPC API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use prost::Message as _;
use redress_proto::{
    bus::NOTIFICATION_EVENTS,
    events::v1::{Event, NoticeChannel, NoticeKind, event::Payload},
    notification::v1::{
        ListDeliveriesRequest, ListTasksRequest, PreviewRequest,
        notification_service_client::NotificationServiceClient,
    },
};
use redress_runtime::testing::{TestCa, TestEnv, authed, eventually, grpc_channel, stored};
use sha2::{Digest, Sha256};
use support::*;

#[tokio::test]
async fn each_case_is_told_once_in_its_language_with_proof() {
    let env = TestEnv::new().await;
    let ca = TestCa::new();
    let smtp = Smtp::start(Some(ca.issue("smtp"))).await;
    let intake = Intake::start(&env).await;
    let (zh_complaint, zh_ref) = intake.complaint("zhang.san@example.com", "zh-CN").await;
    let (en_complaint, en_ref) = intake.complaint("li.si@example.com", "en").await;
    // Reachable by SMS only, and no SMS provider here: a final failure, a specialist's task.
    let (sms_complaint, sms_ref) = intake
        .complaint_with("", "zh-CN", redress_proto::intake::v1::ContactMethod::Sms)
        .await;
    let mut config = config(&env, &intake.url(), &smtp);
    config.notification.smtp_url = Some(format!("smtp://127.0.0.1:{}?tls=required", smtp.port));
    config.notification.smtp_ca = Some(ca.ca_file());
    let service = Notification::start(config).await;

    let bus = env.bus().await;
    let zh_case = uuid::Uuid::now_v7().to_string();
    let en_case = uuid::Uuid::now_v7().to_string();
    let sms_case = uuid::Uuid::now_v7().to_string();
    let created = case_created(&zh_case, &zh_complaint, &zh_ref, "cn-nfra");
    // The same case announced twice (a replay under a new event id) and the same event
    // redelivered: one receipt each still.
    let replayed = case_created(&zh_case, &zh_complaint, &zh_ref, "cn-nfra");
    for event in [
        &created,
        &replayed,
        &created,
        &case_created(&en_case, &en_complaint, &en_ref, "uk-fca"),
        &case_decided(&zh_case, &zh_complaint, &zh_ref),
        &case_created(&sms_case, &sms_complaint, &sms_ref, "cn-nfra"),
    ] {
        bus.publish_event(event).await.unwrap();
    }
    // Receipts for both, the decision and the survey (回访) for the Chinese one.
    let mails = eventually("four mails", WAIT, || async {
        let mails = smtp.mails().await;
        (mails.len() >= 4).then_some(mails)
    })
    .await;

    let mut client = NotificationServiceClient::new(grpc_channel(&service.url()).await);
    let deliveries = eventually("the proof of four sends", WAIT, || {
        let mut client = client.clone();
        let (zh_case, en_case) = (zh_case.clone(), en_case.clone());
        async move {
            let mut all = Vec::new();
            for case_id in [zh_case, en_case] {
                let request = authed(ListDeliveriesRequest { case_id }, &["compliance"]);
                all.extend(
                    client
                        .list_deliveries(request)
                        .await
                        .ok()?
                        .into_inner()
                        .deliveries,
                );
            }
            (all.len() == 4 && all.iter().all(|d| d.state == "sent")).then_some(all)
        }
    })
    .await;
    assert_eq!(
        mails.len(),
        4,
        "nothing sent twice: {:?}",
        mails.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );

    let zh_receipt = mails
        .iter()
        .find(|m| m.template == "receipt.email.zh-CN;v1")
        .expect("the Chinese receipt");
    assert_eq!(
        zh_receipt.subject,
        format!("您的投诉已受理（编号 {zh_ref}）")
    );
    assert!(
        zh_receipt
            .raw_subject
            .to_ascii_lowercase()
            .starts_with("=?utf-8?"),
        "RFC 2047 encoded: {}",
        zh_receipt.raw_subject
    );
    assert_eq!(zh_receipt.content_language, "zh-CN");
    assert_eq!(zh_receipt.content_type, "text/plain");
    assert_eq!(zh_receipt.charset.as_deref(), Some("utf-8"));
    assert_eq!(zh_receipt.to, "zhang.san@example.com");
    assert!(zh_receipt.body.contains(&zh_ref) && zh_receipt.body.contains("作出处理决定"));

    let en_receipt = mails
        .iter()
        .find(|m| m.template == "receipt.email.en;v1")
        .unwrap();
    assert_eq!(
        en_receipt.raw_subject, en_receipt.subject,
        "ASCII needs no encoding"
    );
    assert_eq!(en_receipt.content_language, "en");
    assert!(en_receipt.body.contains("We registered your complaint"));

    let decision = mails
        .iter()
        .find(|m| m.template == "decision.email.zh-CN;v1")
        .unwrap();
    for element in [
        "核查情况",
        "依据和理由",
        "30日内",
        "调解",
        "仲裁",
        "诉讼",
        "退还重复扣款",
    ] {
        assert!(
            decision.body.contains(element),
            "{element} in {}",
            decision.body
        );
    }

    // The proof: masked address, template, hash of what was sent, provider id = Message-ID.
    for d in &deliveries {
        let mail = mails
            .iter()
            .find(|m| m.message_id == d.provider_message_id)
            .expect("the proof names the Message-ID of a mail received");
        assert_eq!(d.channel, NoticeChannel::Email as i32);
        assert!(d.masked_address == "z***@example.com" || d.masked_address == "l***@example.com");
        assert_eq!(
            mail.template,
            format!("{};v{}", d.template_id, d.template_version)
        );
        // SMTP carries CRLF line ends (and a 7bit body gains a final one); the hash is of
        // the text as rendered: LF line ends, one at the end.
        let body = format!("{}\n", mail.body.replace("\r\n", "\n").trim_end());
        let hash = Sha256::digest(format!("{}\n\n{body}", mail.subject));
        assert_eq!(d.body_sha256, hex::encode(hash), "{}", d.template_id);
        let statuses: Vec<&str> = d.history.iter().map(|s| s.status.as_str()).collect();
        assert_eq!(statuses, ["recorded", "sent"]);
        assert!(!d.article.is_empty() && d.sent_at.is_some());
    }
    let decision_proof = deliveries
        .iter()
        .find(|d| d.kind == NoticeKind::Decision as i32)
        .unwrap();
    assert!(
        decision_proof.article.contains("第十九条"),
        "{}",
        decision_proof.article
    );
    assert!(
        decision_proof.due_by.is_some(),
        "the decision is due by the case's deadline"
    );

    // `sent` on the bus for each, carrying no address.
    let sent = eventually("four sent events and one failed", WAIT, || {
        let bus = bus.clone();
        async move {
            let events: Vec<Event> = stored(&bus, &NOTIFICATION_EVENTS)
                .await
                .iter()
                .map(|m| Event::decode(m.payload.as_ref()).unwrap())
                .collect();
            (events.len() >= 5).then_some(events)
        }
    })
    .await;
    let mut failed = 0;
    for event in &sent {
        match &event.payload {
            Some(Payload::NotificationSent(s)) => {
                assert!(s.masked_address.contains("***") && s.body_sha256.len() == 64);
            }
            Some(Payload::NotificationFailed(f)) => {
                assert!(f.r#final && !f.in_doubt, "{f:?}");
                assert_eq!(f.header.as_ref().unwrap().case_id, sms_case);
                assert!(f.reason.contains("no channel"), "{}", f.reason);
                failed += 1;
            }
            other => panic!("a notification event: {other:?}"),
        }
    }
    assert_eq!(failed, 1, "one final failure");

    // Who may read the proof, and bad input named.
    let denied = client
        .list_deliveries(authed(
            ListDeliveriesRequest {
                case_id: zh_case.clone(),
            },
            &["handler"],
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let bad = client
        .preview(authed(
            PreviewRequest {
                kind: 99,
                channel: 1,
                language: "fr".into(),
            },
            &["specialist"],
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(
        bad.message().contains("kind") && bad.message().contains("language"),
        "{}",
        bad.message()
    );
    let preview = client
        .preview(authed(
            PreviewRequest {
                kind: NoticeKind::Decision as i32,
                channel: NoticeChannel::Sms as i32,
                language: "zh-CN".into(),
            },
            &["specialist"],
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(preview.body.starts_with("【Redress】"), "{}", preview.body);
    assert_eq!(preview.sms_encoding, "ucs2");
    let tasks = client
        .list_tasks(authed(ListTasksRequest {}, &["specialist"]))
        .await
        .unwrap()
        .into_inner()
        .tasks;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(
        (tasks[0].case_id.as_str(), tasks[0].in_doubt),
        (sms_case.as_str(), false)
    );
    assert_eq!(tasks[0].kind, NoticeKind::Receipt as i32);
    let failed = client
        .list_deliveries(authed(
            ListDeliveriesRequest {
                case_id: sms_case.clone(),
            },
            &["specialist"],
        ))
        .await
        .unwrap()
        .into_inner()
        .deliveries;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].state, "failed");
    assert!(
        failed[0].masked_address.is_empty(),
        "nothing was sent, no address recorded"
    );

    service.stop().await;
    intake.stop().await;
    env.cleanup().await;
}
