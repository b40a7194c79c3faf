//! gRPC `redress.classification.v1.ClassificationService`.

use std::sync::Arc;

use redress_proto::{
    classification::v1::{
        ClassifyRequest, ComplaintClassification, GetClassificationRequest, GetTaxonomyRequest,
        ListReviewQueueRequest, ListReviewQueueResponse, ReclassifyRequest, Taxonomy,
        TaxonomyEntry, classification_service_server::ClassificationService,
    },
    common::v1::Severity,
    events::v1::{Classification, ComplaintReclassified, Reason, TaxonomyLabel, event::Payload},
};
use redress_runtime::{Database, OutboxMessage, Principal, event::new_event, require};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    SERVICE,
    engine::{Engine, minor_units},
    store::{self, StoreError},
};

const STAFF: &[&str] = &[
    "specialist",
    "compliance",
    "analyst",
    "product",
    "educator",
    "admin",
    "handler",
];

pub struct Api {
    pub engine: Arc<Engine>,
    pub db: Database,
}

#[tonic::async_trait]
impl ClassificationService for Api {
    async fn classify(
        &self,
        request: Request<ClassifyRequest>,
    ) -> Result<Response<Classification>, Status> {
        may_read(&request)?;
        let r = request.into_inner();
        if r.text.trim().is_empty() {
            return Err(Status::invalid_argument("text: required"));
        }
        if r.text.chars().count() > 20_000 {
            return Err(Status::invalid_argument("text: at most 20,000 characters"));
        }
        let input = redress_classifier::ComplaintInput {
            text: r.text,
            title: Some(r.title).filter(|t| !t.is_empty()),
            product: Some(r.product).filter(|p| !p.is_empty()),
            channel: r.channel,
            language_hint: Some(r.language).filter(|l| !l.is_empty()),
            amount: r.amount_in_dispute.as_ref().and_then(minor_units),
            vulnerable: redress_classifier::VulnerableFlags {
                elderly: r.elderly,
                disabled: r.disability,
                other: Vec::new(),
            },
            repeat_count: r.recent_complaints,
        };
        let engine = self.engine.clone();
        // CPU-bound: off the async workers.
        let classification = tokio::task::spawn_blocking(move || engine.classify(&input))
            .await
            .map_err(|_| Status::internal("classification failed"))?;
        Ok(Response::new(classification))
    }

    async fn get_classification(
        &self,
        request: Request<GetClassificationRequest>,
    ) -> Result<Response<ComplaintClassification>, Status> {
        may_read(&request)?;
        let id = complaint_id(&request.get_ref().complaint_id)?;
        store::get(self.db.pool(), id)
            .await
            .map_err(internal)?
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("complaint {id} has not been classified")))
    }

    async fn list_review_queue(
        &self,
        request: Request<ListReviewQueueRequest>,
    ) -> Result<Response<ListReviewQueueResponse>, Status> {
        require(&request, &["specialist", "compliance", "admin"])?;
        let page = request.into_inner().page.unwrap_or_default();
        let (items, next_page_token) =
            store::review_queue(self.db.pool(), page.page_size, &page.page_token)
                .await
                .map_err(|e| match e {
                    StoreError::PageToken => {
                        Status::invalid_argument("page.pageToken: not a token this service issued")
                    }
                    other => internal(other),
                })?;
        Ok(Response::new(ListReviewQueueResponse {
            items,
            next_page_token,
        }))
    }

    async fn reclassify(
        &self,
        request: Request<ReclassifyRequest>,
    ) -> Result<Response<ComplaintClassification>, Status> {
        let (principal, role) = require(&request, &["specialist"])?;
        let r = request.into_inner();
        let id = complaint_id(&r.complaint_id)?;
        if r.note.trim().is_empty() {
            return Err(Status::invalid_argument(
                "note: required — say why, it is kept with the labelled example",
            ));
        }
        let actor = principal.actor(&role);
        let mut tx = self
            .db
            .pool()
            .begin()
            .await
            .map_err(|e| internal(e.into()))?;
        let current = store::current_for_update(&mut tx, id)
            .await
            .map_err(|e| internal(e.into()))?
            .ok_or_else(|| Status::not_found(format!("complaint {id} has not been classified")))?;
        let next = self.overridden(&current.classification, &r)?;
        let version = store::reclassify(&mut tx, &current, &next, &actor, r.note.trim())
            .await
            .map_err(|e| internal(e.into()))?;
        let event = new_event(
            SERVICE,
            id.to_string(),
            version as u64,
            actor,
            Payload::ComplaintReclassified(ComplaintReclassified {
                complaint_id: id.to_string(),
                reference: current.complaint.reference.clone(),
                previous: Some(current.classification.clone()),
                classification: Some(next),
                note: r.note.trim().to_owned(),
            }),
        );
        redress_runtime::outbox::enqueue(
            &mut tx,
            &[OutboxMessage::event(
                "redress.complaint.v1.reclassified",
                &event,
            )],
        )
        .await
        .map_err(|e| internal(e.into()))?;
        tx.commit().await.map_err(|e| internal(e.into()))?;
        store::get(self.db.pool(), id)
            .await
            .map_err(internal)?
            .map(Response::new)
            .ok_or_else(|| Status::internal("the reclassified complaint vanished"))
    }

    async fn get_taxonomy(
        &self,
        request: Request<GetTaxonomyRequest>,
    ) -> Result<Response<Taxonomy>, Status> {
        may_read(&request)?;
        let t = self.engine.taxonomy();
        let entries = |list: &[redress_classifier::taxonomy::Entry]| {
            list.iter()
                .map(|e| TaxonomyEntry {
                    code: e.code.clone(),
                    name_zh: e.zh.clone(),
                    name_en: e.en.clone(),
                    code_confirmed: e.code_confirmed,
                })
                .collect()
        };
        Ok(Response::new(Taxonomy {
            version: t.version().to_owned(),
            standard: t.standard().to_owned(),
            categories: entries(t.categories()),
            causes: entries(t.causes()),
        }))
    }
}

impl Api {
    /// The current classification with the specialist's codes and severity put in.
    fn overridden(
        &self,
        current: &Classification,
        r: &ReclassifyRequest,
    ) -> Result<Classification, Status> {
        use redress_classifier::taxonomy::Dimension;
        let taxonomy = self.engine.taxonomy();
        let label = |dimension,
                     field: &str,
                     code: &str,
                     old: &Option<TaxonomyLabel>|
         -> Result<Option<TaxonomyLabel>, Status> {
            if code.trim().is_empty() {
                return Ok(old.clone());
            }
            let entry = taxonomy.entry(dimension, code.trim()).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "{field}: `{code}` is not in taxonomy {}",
                    taxonomy.version()
                ))
            })?;
            Ok(Some(TaxonomyLabel {
                code: entry.code.clone(),
                name_zh: entry.zh.clone(),
                name_en: entry.en.clone(),
                confidence: 1.0,
                decided_by: "specialist".into(),
                reasons: vec![Reason {
                    code: "specialist".into(),
                    detail: r.note.trim().to_owned(),
                    evidence: String::new(),
                }],
            }))
        };
        let mut next = current.clone();
        next.category = label(
            Dimension::Category,
            "categoryCode",
            &r.category_code,
            &current.category,
        )?;
        next.cause = label(Dimension::Cause, "causeCode", &r.cause_code, &current.cause)?;
        match Severity::try_from(r.severity) {
            Ok(Severity::Unspecified) => {}
            Ok(severity) => {
                next.severity = severity as i32;
                next.severity_reasons.push(Reason {
                    code: "specialist".into(),
                    detail: r.note.trim().to_owned(),
                    evidence: String::new(),
                });
            }
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "severity: unknown value {}",
                    r.severity
                )));
            }
        }
        next.confidence = 1.0;
        next.needs_review = false;
        Ok(next)
    }
}

fn may_read<T>(request: &Request<T>) -> Result<(), Status> {
    let principal = request
        .extensions()
        .get::<Principal>()
        .ok_or_else(|| Status::unauthenticated("no authenticated caller"))?;
    if principal.roles.iter().any(|r| r.starts_with("service:")) {
        return Ok(());
    }
    require(request, STAFF).map(|_| ())
}

fn complaint_id(text: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(text.trim())
        .map_err(|_| Status::invalid_argument("complaintId: not a complaint id"))
}

fn internal(error: StoreError) -> Status {
    tracing::error!(%error, "classification store");
    Status::internal("classification could not complete the call; it has been logged")
}
