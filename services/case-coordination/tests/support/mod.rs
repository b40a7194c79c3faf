//! What case-coordination's tests share: a running service on a fresh database and
//! namespace, a classification stand-in that publishes complaint events, a gRPC client with
//! tokens, and readers of the CASE_EVENTS stream.

#![allow(dead_code)]

use std::time::Duration;

use async_nats::HeaderMap;
use chrono::{DateTime, Utc};
use prost::Message as _;
use redress_case_coordination::{Config, config::CasesConfig};
use redress_proto::{
    cases::v1::{Case, GetCaseRequest, ListCasesRequest, case_service_client::CaseServiceClient},
    common::v1::{Channel, Severity},
    events::v1::{
        Classification, ComplaintClassified, ComplaintSummary, ComplaintWithdrawn,
        DuplicateSuspected, Event, TaxonomyLabel,
    },
};
use redress_runtime::{
    Bus, Running,
    bus::{self, headers},
    event::{new_event, service_actor, timestamp},
    testing::{TestEnv, eventually, token},
};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel as GrpcChannel;

pub const WAIT: Duration = Duration::from_secs(60);

pub fn config(env: &TestEnv) -> Config {
    Config {
        runtime: env.runtime_config(),
        cases: CasesConfig {
            timer_poll: Duration::from_millis(200),
            ..CasesConfig::default()
        },
    }
}

pub struct Cases {
    pub running: Running,
    pub shutdown: CancellationToken,
}

impl Cases {
    pub async fn start(env: &TestEnv) -> Self {
        let shutdown = CancellationToken::new();
        match redress_case_coordination::run(config(env), shutdown.clone()).await {
            Ok(running) => Self { running, shutdown },
            Err(error) => panic!("case-coordination did not start: {error}"),
        }
    }

    pub async fn client(&self) -> Client {
        let url = format!("http://{}", self.running.endpoints.grpc);
        let channel = match GrpcChannel::from_shared(url.clone()) {
            Ok(endpoint) => match endpoint.connect().await {
                Ok(c) => c,
                Err(e) => panic!("connect {url}: {e}"),
            },
            Err(e) => panic!("{e}"),
        };
        Client {
            inner: CaseServiceClient::new(channel),
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.running.stopped().await;
    }
}

/// The gRPC client, with a token per call.
#[derive(Clone)]
pub struct Client {
    pub inner: CaseServiceClient<GrpcChannel>,
}

/// A caller: subject, roles, department.
#[derive(Clone, Copy)]
pub struct As(
    pub &'static str,
    pub &'static [&'static str],
    pub Option<&'static str>,
);

pub const SPECIALIST: As = As("s-1", &["specialist"], None);
pub const COMPLIANCE: As = As("c-1", &["compliance"], None);

pub fn handler(subject: &'static str, department: &'static str) -> As {
    As(subject, &["handler"], Some(department))
}

pub fn req<T>(who: As, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let token = token(who.0, who.1, who.2);
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

impl Client {
    pub async fn get(&self, who: As, case_id: &str) -> Result<Case, tonic::Status> {
        self.inner
            .clone()
            .get_case(req(
                who,
                GetCaseRequest {
                    case_id: case_id.into(),
                },
            ))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn list(
        &self,
        who: As,
        filter: ListCasesRequest,
    ) -> Result<Vec<Case>, tonic::Status> {
        self.inner
            .clone()
            .list_cases(req(who, filter))
            .await
            .map(|r| r.into_inner().cases)
    }

    /// The case of a complaint, once it exists.
    pub async fn case_of(&self, complaint_id: &str) -> Case {
        eventually("the complaint's case", WAIT, || async {
            let cases = self
                .list(SPECIALIST, ListCasesRequest::default())
                .await
                .ok()?;
            cases
                .into_iter()
                .find(|c| complaint_of(c).complaint_id == complaint_id)
        })
        .await
    }
}

/// The classification service, as far as these tests need it.
pub struct Classifier {
    pub bus: Bus,
}

/// What a test complaint is about.
#[derive(Clone)]
pub struct Complaint {
    pub id: String,
    pub category: &'static str,
    pub cause: &'static str,
    pub product: &'static str,
    pub severity: Severity,
    pub channel: Channel,
    pub regulator_ref: &'static str,
    pub received_at: DateTime<Utc>,
    pub needs_review: bool,
}

impl Complaint {
    /// An online-lending fee complaint received now (routes to `lending`).
    pub fn lending() -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            category: "B02.04",
            cause: "C11",
            product: "消费贷",
            severity: Severity::Medium,
            channel: Channel::Web,
            regulator_ref: "",
            received_at: Utc::now(),
            needs_review: false,
        }
    }

    pub fn event(&self) -> Event {
        let label = |code: &str| TaxonomyLabel {
            code: code.into(),
            confidence: 0.9,
            ..Default::default()
        };
        new_event(
            "classification",
            self.id.clone(),
            2,
            service_actor("classification"),
            ComplaintClassified {
                complaint: Some(ComplaintSummary {
                    complaint_id: self.id.clone(),
                    reference: format!("RD-TEST-{}", &self.id[self.id.len() - 6..]),
                    channel: self.channel as i32,
                    received_at: Some(timestamp(self.received_at)),
                    consumer_ref: "cref-1".into(),
                    regulator_ref: self.regulator_ref.into(),
                    title: "重复收费".into(),
                    description: "平台收取了未告知的服务费".into(),
                    ..Default::default()
                }),
                classification: Some(Classification {
                    category: Some(label(self.category)),
                    cause: Some(label(self.cause)),
                    product: self.product.into(),
                    severity: self.severity as i32,
                    confidence: 0.9,
                    needs_review: self.needs_review,
                    ..Default::default()
                }),
            },
        )
        .into_event()
    }
}

impl Classifier {
    pub async fn new(env: &TestEnv) -> Self {
        let bus = env.bus().await;
        if let Err(e) = bus
            .ensure_streams(&[bus::COMPLAINT_EVENTS, bus::CASE_EVENTS])
            .await
        {
            panic!("streams: {e}");
        }
        Self { bus }
    }

    /// Publishes an event on `redress.complaint.v1.<name>` as the bus contract says.
    pub async fn publish(&self, name: &str, event: &Event) {
        let mut h = HeaderMap::new();
        h.insert(headers::MSG_ID, event.id.as_str());
        h.insert(headers::EVENT_TYPE, event_type(event));
        h.insert(headers::CONTENT_TYPE, headers::PROTOBUF);
        let outgoing = bus::Outgoing {
            subject: format!("redress.complaint.v1.{name}"),
            headers: h,
            payload: event.encode_to_vec().into(),
        };
        if let Err(e) = self.bus.publish(outgoing).await {
            panic!("publish: {e}");
        }
    }

    pub async fn classified(&self, complaint: &Complaint) {
        self.publish("classified", &complaint.event()).await;
    }

    pub async fn withdrawn(&self, complaint_id: &str) {
        let event = new_event(
            "intake",
            complaint_id,
            3,
            service_actor("intake"),
            ComplaintWithdrawn {
                complaint_id: complaint_id.into(),
                reason: "consumer withdrew by phone".into(),
            },
        )
        .into_event();
        self.publish("withdrawn", &event).await;
    }

    pub async fn duplicate(&self, complaint_id: &str, earlier: &str) {
        let event = new_event(
            "intake",
            complaint_id,
            1,
            service_actor("intake"),
            DuplicateSuspected {
                complaint_id: complaint_id.into(),
                earlier_complaint_id: earlier.into(),
                similarity: 0.9,
                method: "test".into(),
                ..Default::default()
            },
        )
        .into_event();
        self.publish("duplicate_suspected", &event).await;
    }
}

/// Every case event stored so far, with its subject (namespace removed).
pub async fn case_events(bus: &Bus) -> Vec<(String, Event)> {
    redress_runtime::testing::stored(bus, &redress_runtime::bus::CASE_EVENTS)
        .await
        .into_iter()
        .filter_map(|m| {
            let event = Event::decode(m.payload.as_ref()).ok()?;
            Some((bus.contract_subject(m.subject.as_str()).to_owned(), event))
        })
        .collect()
}

/// The `Redress-Event-Type` of each event of a case, in order.
pub fn types_of(events: &[(String, Event)], case_id: &str) -> Vec<&'static str> {
    events
        .iter()
        .filter(|(_, e)| e.aggregate_id == case_id)
        .map(|(_, e)| event_type(e))
        .collect()
}

/// A pool in the service's schema of the test: table names need no schema.
pub async fn pool(env: &TestEnv) -> sqlx::PgPool {
    env.pool("cases").await
}

/// The `Redress-Event-Type` of an event: its payload's field name.
pub fn event_type(event: &Event) -> &'static str {
    event
        .payload
        .as_ref()
        .map(|p| p.event_type())
        .unwrap_or("unknown")
}

/// The complaint a case is about.
pub fn complaint_of(case: &Case) -> ComplaintSummary {
    case.complaint.clone().unwrap_or_default()
}

pub fn code(result: Result<Case, tonic::Status>) -> tonic::Code {
    match result {
        Ok(_) => tonic::Code::Ok,
        Err(s) => s.code(),
    }
}

pub fn ok(result: Result<tonic::Response<Case>, tonic::Status>) -> Case {
    match result {
        Ok(r) => r.into_inner(),
        Err(s) => panic!("call failed: {:?} {}", s.code(), s.message()),
    }
}

pub fn refused(result: Result<tonic::Response<Case>, tonic::Status>) -> tonic::Status {
    match result {
        Ok(r) => panic!("expected a refusal, got {:?}", r.into_inner().state),
        Err(s) => s,
    }
}
