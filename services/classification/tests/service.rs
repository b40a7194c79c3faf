//! Classification over real NATS and Postgres: received → classified; low confidence → review
//! queue → override → reclassified; a redelivered `received` has one effect.

use std::time::Duration;

use async_nats::HeaderMap;
use prost::Message as _;
use redress_classification::{Config, config::ClassificationConfig};
use redress_proto::{
    classification::v1::{
        ClassifyRequest, GetClassificationRequest, GetTaxonomyRequest, ListReviewQueueRequest,
        ReclassifyRequest, classification_service_client::ClassificationServiceClient,
    },
    common::v1::{Channel, Severity},
    events::v1::{ComplaintReceived, ComplaintSummary, Event, event::Payload},
};
use redress_runtime::{
    Bus,
    bus::{self, Outgoing, headers},
    event::{new_event, service_actor},
    testing::{TestEnv, authed, eventually, grpc_channel, stored},
};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(60);

struct Running {
    running: redress_runtime::Running,
    shutdown: CancellationToken,
}

async fn start(env: &TestEnv, threshold: f32) -> Running {
    let shutdown = CancellationToken::new();
    let config = Config {
        runtime: env.runtime_config(),
        classification: ClassificationConfig {
            target_precision: threshold,
            ..Default::default()
        },
        command: None,
    };
    match redress_classification::run(config, shutdown.clone()).await {
        Ok(running) => Running { running, shutdown },
        Err(error) => panic!("classification did not start: {error}"),
    }
}

fn received(id: &str, text: &str, channel: Channel) -> Event {
    new_event(
        "intake",
        id,
        1,
        service_actor("intake"),
        ComplaintReceived {
            complaint: Some(ComplaintSummary {
                complaint_id: id.into(),
                reference: format!("RD-20261124-{}", &id[id.len() - 6..]),
                channel: channel as i32,
                description: text.into(),
                consumer_ref: "cr_test".into(),
                ..Default::default()
            }),
        },
    )
    .into_event()
}

async fn publish(bus: &Bus, event: &Event, msg_id: &str) {
    let mut h = HeaderMap::new();
    h.insert(headers::MSG_ID, msg_id);
    h.insert(headers::EVENT_TYPE, "complaint_received");
    let outgoing = Outgoing {
        subject: "redress.complaint.v1.received".into(),
        headers: h,
        payload: event.encode_to_vec().into(),
    };
    if let Err(error) = bus.publish(outgoing).await {
        panic!("publish: {error}");
    }
}

/// Events of one type on COMPLAINT_EVENTS.
async fn published(bus: &Bus, event_type: &str) -> Vec<Event> {
    stored(bus, &bus::COMPLAINT_EVENTS)
        .await
        .into_iter()
        .filter(|m| m.headers.get(headers::EVENT_TYPE).map(|v| v.as_str()) == Some(event_type))
        .filter_map(|m| Event::decode(m.payload.as_ref()).ok())
        .collect()
}

async fn client(url: String) -> ClassificationServiceClient<tonic::transport::Channel> {
    ClassificationServiceClient::new(grpc_channel(&url).await)
}

#[tokio::test]
async fn received_complaints_are_classified_once_with_reasons() {
    let env = TestEnv::new().await;
    let service = start(&env, 0.0).await;
    let bus = env.bus().await;
    let id = uuid::Uuid::now_v7().to_string();
    let event = received(
        &id,
        "I found a hard inquiry on my credit report that I never authorized. The credit bureau refuses to remove it and I have filed a complaint with the CFPB before. I will contact a lawyer.",
        Channel::Web,
    );
    publish(&bus, &event, &event.id).await;
    // The same event again under another message id (a republish after the dedupe window).
    publish(&bus, &event, &format!("{}-again", event.id)).await;

    let classified = eventually("one classified event", WAIT, || async {
        let found = published(&bus, "complaint_classified").await;
        (!found.is_empty()).then_some(found)
    })
    .await;
    let Some(Payload::ComplaintClassified(c)) = classified[0].payload.clone() else {
        panic!("payload")
    };
    let complaint_id = c.complaint.as_ref().map(|c| c.complaint_id.as_str());
    assert_eq!(complaint_id, Some(id.as_str()));
    let label = c.classification.clone().unwrap_or_default();
    assert!(
        label
            .category
            .as_ref()
            .is_some_and(|l| !l.code.is_empty() && !l.reasons.is_empty()),
        "{label:?}"
    );
    assert!(
        label.severity >= Severity::Medium as i32,
        "legal threat raises severity: {label:?}"
    );
    assert!(!label.model_version.is_empty() && !label.taxonomy_version.is_empty());

    // Both deliveries handled, one effect.
    let mut grpc = client(format!("http://{}", service.running.endpoints.grpc)).await;
    eventually("the duplicate to be consumed", WAIT, || async {
        let mut consumer = bus
            .jetstream()
            .get_consumer_from_stream::<async_nats::jetstream::consumer::pull::Config, _, _>(
                "classification-received",
                bus.stream_name(bus::COMPLAINT_EVENTS.name),
            )
            .await
            .ok()?;
        let info = consumer.info().await.ok()?;
        (info.num_pending == 0 && info.num_ack_pending == 0).then_some(())
    })
    .await;
    assert_eq!(published(&bus, "complaint_classified").await.len(), 1);
    let got = grpc
        .get_classification(authed(
            GetClassificationRequest {
                complaint_id: id.clone(),
            },
            &["analyst"],
        ))
        .await;
    let Ok(got) = got else { panic!("{got:?}") };
    assert_eq!(got.into_inner().history.len(), 1);

    service.shutdown.cancel();
    let _ = service.running.stopped().await;
    env.cleanup().await;
}

#[tokio::test]
async fn low_confidence_waits_for_a_specialist_whose_override_is_published() {
    let env = TestEnv::new().await;
    // Everything is below a threshold of 1.01: every complaint goes to review.
    let service = start(&env, 1.01).await;
    let bus = env.bus().await;
    let id = uuid::Uuid::now_v7().to_string();
    let event = received(
        &id,
        "催收人员天天打电话骚扰我的家人和同事，还威胁上门。",
        Channel::App,
    );
    publish(&bus, &event, &event.id).await;
    eventually("classified", WAIT, || async {
        (!published(&bus, "complaint_classified").await.is_empty()).then_some(())
    })
    .await;

    let mut grpc = client(format!("http://{}", service.running.endpoints.grpc)).await;
    let queue = grpc
        .list_review_queue(authed(ListReviewQueueRequest::default(), &["specialist"]))
        .await;
    let Ok(queue) = queue else {
        panic!("{queue:?}")
    };
    let items = queue.into_inner().items;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].review_status, "pending");
    assert!(
        items[0]
            .classification
            .as_ref()
            .is_some_and(|c| c.needs_review)
    );

    let denied = grpc
        .list_review_queue(authed(ListReviewQueueRequest::default(), &["analyst"]))
        .await;
    assert_eq!(
        denied.err().map(|s| s.code()),
        Some(tonic::Code::PermissionDenied)
    );

    let taxonomy = grpc
        .get_taxonomy(authed(GetTaxonomyRequest {}, &["specialist"]))
        .await
        .map(|t| t.into_inner())
        .ok();
    let Some(taxonomy) = taxonomy else {
        panic!("taxonomy")
    };
    let (category, cause) = (
        taxonomy.categories[0].code.clone(),
        taxonomy.causes[0].code.clone(),
    );
    let bad = grpc
        .reclassify(authed(
            ReclassifyRequest {
                complaint_id: id.clone(),
                category_code: "NOPE".into(),
                note: "x".into(),
                ..Default::default()
            },
            &["specialist"],
        ))
        .await;
    assert_eq!(
        bad.err().map(|s| s.code()),
        Some(tonic::Code::InvalidArgument)
    );
    let by_analyst = grpc
        .reclassify(authed(
            ReclassifyRequest {
                complaint_id: id.clone(),
                category_code: category.clone(),
                note: "x".into(),
                ..Default::default()
            },
            &["analyst"],
        ))
        .await;
    assert_eq!(
        by_analyst.err().map(|s| s.code()),
        Some(tonic::Code::PermissionDenied)
    );

    let reclassified = grpc
        .reclassify(authed(
            ReclassifyRequest {
                complaint_id: id.clone(),
                category_code: category.clone(),
                cause_code: cause.clone(),
                severity: Severity::High as i32,
                note: "violent collection towards family".into(),
            },
            &["specialist"],
        ))
        .await;
    let Ok(reclassified) = reclassified else {
        panic!("{reclassified:?}")
    };
    let r = reclassified.into_inner();
    assert_eq!(r.review_status, "reviewed");
    assert_eq!(r.history.len(), 2, "history kept");
    let current = r.classification.unwrap_or_default();
    assert_eq!(
        current.category.map(|l| (l.code, l.decided_by)),
        Some((category, "specialist".into()))
    );
    assert_eq!(current.severity, Severity::High as i32);

    let events = eventually("reclassified", WAIT, || async {
        let e = published(&bus, "complaint_reclassified").await;
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert_eq!(events[0].aggregate_version, 2);
    let queue = grpc
        .list_review_queue(authed(ListReviewQueueRequest::default(), &["specialist"]))
        .await;
    assert_eq!(queue.map(|q| q.into_inner().items.len()).ok(), Some(0));
    let pool = Some(env.pool("classification").await);
    let examples: i64 = match &pool {
        Some(p) => sqlx::query_scalar("SELECT count(*) FROM training_examples")
            .fetch_one(p)
            .await
            .unwrap_or(0),
        None => 0,
    };
    assert_eq!(examples, 1, "the override is kept as a labelled example");

    service.shutdown.cancel();
    let _ = service.running.stopped().await;
    env.cleanup().await;
}

#[tokio::test]
async fn classify_is_a_dry_run_for_channels_and_tuning() {
    let env = TestEnv::new().await;
    let service = start(&env, 0.7).await;
    let mut grpc = client(format!("http://{}", service.running.endpoints.grpc)).await;
    let result = grpc
        .classify(authed(
            ClassifyRequest {
                text: "My mortgage servicer misapplied my escrow payment.".into(),
                ..Default::default()
            },
            &["service:channel-web"],
        ))
        .await;
    let Ok(result) = result else {
        panic!("{result:?}")
    };
    assert!(result.into_inner().category.is_some());
    let empty = grpc
        .classify(authed(ClassifyRequest::default(), &["specialist"]))
        .await;
    assert_eq!(
        empty.err().map(|s| s.code()),
        Some(tonic::Code::InvalidArgument)
    );
    let anonymous = grpc
        .classify(ClassifyRequest {
            text: "x".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(
        anonymous.err().map(|s| s.code()),
        Some(tonic::Code::Unauthenticated)
    );
    service.shutdown.cancel();
    let _ = service.running.stopped().await;
    env.cleanup().await;
}
