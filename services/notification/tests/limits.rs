//! The rate limit per consumer and Resend, against a real intake, the real bus and a real SMTP
//! server: a consumer past their hourly share waits an hour, unless a legal notice's period
//! would run out first; a resend is a new delivery of the same notice with its own proof.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use redress_proto::{
    events::v1::{CaseCreated, NoticeKind},
    notification::v1::{
        ListDeliveriesRequest, ResendRequest,
        notification_service_client::NotificationServiceClient,
    },
};
use redress_runtime::{
    NewEvent,
    event::{new_event, service_actor, timestamp},
    testing::{TestEnv, authed, eventually, grpc_channel},
};
use support::*;

/// A case whose decision is due in 30 minutes: its legal notices cannot wait an hour.
fn created_due_soon(case_id: &str, complaint_id: &str, reference: &str) -> NewEvent {
    let due = chrono::Utc::now() + chrono::Duration::minutes(30);
    new_event(
        "case-coordination",
        case_id,
        1,
        service_actor("case-coordination"),
        CaseCreated {
            header: Some(header(case_id, complaint_id, reference)),
            decision_due: Some(timestamp(due)),
            regime: "cn-nfra".into(),
            ..Default::default()
        },
    )
}

#[tokio::test]
async fn past_the_hourly_share_a_notice_waits_unless_its_legal_period_would_run_out() {
    let env = TestEnv::new().await;
    let smtp = Smtp::start(None).await;
    let intake = Intake::start(&env).await;
    let (complaint, reference) = intake.complaint("zhang.san@example.com", "zh-CN").await;
    let mut config = config(&env, &intake.url(), &smtp);
    config.notification.smtp_url = Some(format!("smtp://127.0.0.1:{}?tls=none", smtp.port));
    config.notification.rate_per_hour = 1;
    let service = Notification::start(config).await;
    let bus = env.bus().await;
    let case = uuid::Uuid::now_v7().to_string();

    // The receipt takes the hour's one notice.
    bus.publish_event(&created_due_soon(&case, &complaint, &reference))
        .await
        .unwrap();
    // Recorded as sent (not only received by the server): the limit counts the record.
    let pool = env.pool("notification").await;
    eventually("the receipt recorded as sent", WAIT, || {
        let pool = pool.clone();
        async move {
            let sent: i64 =
                sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE state = 'sent'")
                    .fetch_one(&pool)
                    .await
                    .ok()?;
            (sent == 1).then_some(())
        }
    })
    .await;
    // Then: the assignment (no legal period), the decision (legal, due in 30 minutes) and the
    // survey after it (not legal).
    let mut assigned = redress_proto::events::v1::CaseAssigned {
        header: Some(header(&case, &complaint, &reference)),
        ..Default::default()
    };
    assigned.header.as_mut().unwrap().department = "cards".into();
    let assigned = new_event(
        "case-coordination",
        &case,
        2,
        service_actor("case-coordination"),
        assigned,
    );
    bus.publish_event(&assigned).await.unwrap();
    bus.publish_event(&case_decided(&case, &complaint, &reference))
        .await
        .unwrap();

    let waiting: Vec<(String, chrono::DateTime<chrono::Utc>)> = eventually(
        "the decision sent, the others put off an hour",
        WAIT,
        || {
            let pool = pool.clone();
            async move {
                let sent: Vec<String> = sqlx::query_scalar(
                    "SELECT kind FROM deliveries WHERE state = 'sent' ORDER BY sent_at",
                )
                .fetch_all(&pool)
                .await
                .ok()?;
                let waiting: Vec<(String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
                    "SELECT d.kind, j.due_at FROM deliveries d
                     JOIN jobs j ON j.queue = 'deliver' AND j.key = d.id::text
                     WHERE d.state = 'pending' AND j.state = 'pending'
                       AND j.due_at > now() + interval '50 minutes'
                     ORDER BY d.kind",
                )
                .fetch_all(&pool)
                .await
                .ok()?;
                (sent == ["receipt", "decision"] && waiting.len() == 2).then_some(waiting)
            }
        },
    )
    .await;
    let kinds: Vec<&str> = waiting.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["assigned", "satisfaction_survey"]);
    assert_eq!(smtp.count(), 2, "the receipt and the decision only");

    service.stop().await;
    intake.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_resend_is_a_new_delivery_with_its_own_proof_and_the_old_keeps_its_record() {
    let env = TestEnv::new().await;
    let smtp = Smtp::start(None).await;
    let intake = Intake::start(&env).await;
    let (complaint, reference) = intake.complaint("li.si@example.com", "en").await;
    let mut config = config(&env, &intake.url(), &smtp);
    config.notification.smtp_url = Some(format!("smtp://127.0.0.1:{}?tls=none", smtp.port));
    let service = Notification::start(config).await;
    let case = uuid::Uuid::now_v7().to_string();
    env.bus()
        .await
        .publish_event(&case_created(&case, &complaint, &reference, "cn-nfra"))
        .await
        .unwrap();
    let mut client = NotificationServiceClient::new(grpc_channel(&service.url()).await);
    let list = |client: &NotificationServiceClient<_>| {
        let mut client = client.clone();
        let case_id = case.clone();
        async move {
            client
                .list_deliveries(authed(ListDeliveriesRequest { case_id }, &["specialist"]))
                .await
                .unwrap()
                .into_inner()
                .deliveries
        }
    };
    let first = eventually("the receipt sent", WAIT, || async {
        list(&client).await.into_iter().find(|d| d.state == "sent")
    })
    .await;

    // Who may resend, and why is required.
    let denied = client
        .resend(authed(
            ResendRequest {
                delivery_id: first.delivery_id.clone(),
                reason: "consumer says nothing came".into(),
            },
            &["handler"],
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let no_reason = client
        .resend(authed(
            ResendRequest {
                delivery_id: first.delivery_id.clone(),
                reason: " ".into(),
            },
            &["specialist"],
        ))
        .await
        .unwrap_err();
    assert_eq!(no_reason.code(), tonic::Code::InvalidArgument);
    assert!(
        no_reason.message().contains("reason"),
        "{}",
        no_reason.message()
    );
    let unknown = client
        .resend(authed(
            ResendRequest {
                delivery_id: uuid::Uuid::now_v7().to_string(),
                reason: "x".into(),
            },
            &["specialist"],
        ))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    let again = client
        .resend(authed(
            ResendRequest {
                delivery_id: first.delivery_id.clone(),
                reason: "consumer says nothing came".into(),
            },
            &["specialist"],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(again.delivery_id, first.delivery_id);
    let both = eventually("the resend sent", WAIT, || async {
        let all = list(&client).await;
        (all.len() == 2 && all.iter().all(|d| d.state == "sent")).then_some(all)
    })
    .await;
    let resent = both
        .iter()
        .find(|d| d.delivery_id == again.delivery_id)
        .unwrap();
    assert_eq!(resent.kind, NoticeKind::Receipt as i32);
    assert_eq!(resent.template_id, first.template_id);
    assert_eq!(resent.body_sha256, first.body_sha256, "the same notice");
    assert_ne!(
        resent.provider_message_id, first.provider_message_id,
        "its own Message-ID"
    );
    assert!(
        resent.history[0].detail.contains(&first.delivery_id)
            && resent.history[0]
                .detail
                .contains("consumer says nothing came"),
        "{:?}",
        resent.history[0]
    );
    let old = both
        .iter()
        .find(|d| d.delivery_id == first.delivery_id)
        .unwrap();
    assert_eq!(
        old.history.len(),
        first.history.len(),
        "the old record is untouched"
    );
    let mails = smtp.mails().await;
    assert_eq!(mails.len(), 2);
    assert!(mails.iter().all(|m| m.to == "li.si@example.com"));

    service.stop().await;
    intake.stop().await;
    env.cleanup().await;
}
