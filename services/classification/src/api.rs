//! gRPC `redress.classification.v1.ClassificationService`. Roles are an explicit list per
//! RPC; every request field is checked into INVALID_ARGUMENT naming the field.

use std::sync::Arc;

use redress_proto::{
    Violations,
    classification::v1::{
        ClassifyRequest, ComplaintClassification, GetClassificationRequest, GetTaxonomyRequest,
        ListModelsRequest, ListModelsResponse, ListReviewQueueRequest, ListReviewQueueResponse,
        ModelRecord, ReclassifyRequest, RetrainRequest, RetrainResponse, RollbackRequest,
        RollbackResponse, ShadowMetrics, Taxonomy, TaxonomyEntry,
        classification_service_server::ClassificationService,
    },
    common::v1::{Channel, Severity},
    events::v1::{Classification, ComplaintReclassified, Reason, TaxonomyLabel},
    vocab::{self, TextKind, code},
};
use redress_runtime::{
    Database, OutboxMessage, Principal, Role, ServiceId, event::new_event, grpc, paging::Pager,
};
use tonic::{Request, Response, Status};

use crate::{
    SERVICE,
    config::Slot,
    engine::minor_units,
    live::Live,
    models::{self, ModelRow, RollbackError},
    retrain::{RetrainError, Retrainer},
    store::{self, StoreError},
};

/// Who may read classifications, try the classifier and read the taxonomy.
const READERS: &[Role] = &[
    Role::Specialist,
    Role::Compliance,
    Role::Analyst,
    Role::Product,
    Role::Educator,
    Role::Admin,
    Role::Handler,
    Role::Service(ServiceId::CaseCoordination),
    Role::Service(ServiceId::Analytics),
];
/// Who may try the classifier: readers, and every channel's system (a channel may show the
/// consumer a category before submitting).
fn classifiers() -> Vec<Role> {
    READERS
        .iter()
        .copied()
        .chain(Channel::ALL.map(Role::Channel))
        .collect()
}

/// Who works the review queue.
const REVIEWERS: &[Role] = &[Role::Specialist, Role::Compliance, Role::Admin];
/// Longest text accepted for a dry run (the contract's description limit).
const TEXT_CHARS: usize = 20_000;
const NOTE_CHARS: usize = 2_000;

pub struct Api {
    pub live: Arc<Live>,
    pub retrainer: Arc<Retrainer>,
    pub db: Database,
    pub pager: Pager,
}

#[tonic::async_trait]
impl ClassificationService for Api {
    async fn classify(
        &self,
        request: Request<ClassifyRequest>,
    ) -> Result<Response<Classification>, Status> {
        Principal::of(&request)?.require(&classifiers())?;
        let r = request.into_inner();
        let mut v = Violations::default();
        let text = v.check(grpc::text(
            "text",
            &r.text,
            TEXT_CHARS,
            TextKind::Prose,
            true,
        ));
        let title = v.check(grpc::text("title", &r.title, 200, TextKind::Line, false));
        let product = v.check(grpc::text(
            "product",
            &r.product,
            128,
            TextKind::Line,
            false,
        ));
        let language = v.check(grpc::text(
            "language",
            &r.language,
            35,
            TextKind::Line,
            false,
        ));
        if !r.channel.is_empty() {
            v.check(Channel::parse_token("channel", &r.channel));
        }
        if let Some(amount) = &r.amount_in_dispute
            && let Err(found) = amount.check("amountInDispute")
        {
            v.0.extend(found.0);
        }
        let (Some(text), Some(title), Some(product), Some(language)) =
            (text, title, product, language)
        else {
            return Err(grpc::invalid(v));
        };
        if !v.is_empty() {
            return Err(grpc::invalid(v));
        }
        let input = redress_classifier::ComplaintInput {
            text,
            title: Some(title).filter(|t| !t.is_empty()),
            product: Some(product).filter(|p| !p.is_empty()),
            channel: r.channel,
            language_hint: Some(language).filter(|l| !l.is_empty()),
            amount: r.amount_in_dispute.as_ref().and_then(minor_units),
            vulnerable: redress_classifier::VulnerableFlags {
                elderly: r.elderly,
                disabled: r.disability,
                other: Vec::new(),
            },
            repeat_count: r.recent_complaints,
        };
        let engine = self.live.current();
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
        Principal::of(&request)?.require(READERS)?;
        let id = grpc::id("complaintId", &request.get_ref().complaint_id)?;
        store::get(self.db.pool(), id)
            .await
            .map_err(status)?
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("complaint {id} has not been classified")))
    }

    async fn list_review_queue(
        &self,
        request: Request<ListReviewQueueRequest>,
    ) -> Result<Response<ListReviewQueueResponse>, Status> {
        Principal::of(&request)?.require(REVIEWERS)?;
        let page = request.into_inner().page.unwrap_or_default();
        let page = store::review_queue(
            self.db.pool(),
            &self.pager,
            page.page_size,
            &page.page_token,
        )
        .await
        .map_err(status)?;
        Ok(Response::new(ListReviewQueueResponse {
            items: page.items,
            next_page_token: page.next_page_token,
        }))
    }

    async fn reclassify(
        &self,
        request: Request<ReclassifyRequest>,
    ) -> Result<Response<ComplaintClassification>, Status> {
        let principal = Principal::of(&request)?.clone();
        let role = principal.require(&[Role::Specialist])?;
        let r = request.into_inner();
        let mut v = Violations::default();
        let id = v.check(vocab::parse_id("complaintId", &r.complaint_id));
        let note = v.check(grpc::text(
            "note",
            &r.note,
            NOTE_CHARS,
            TextKind::Prose,
            true,
        ));
        let (Some(id), Some(note)) = (id, note) else {
            return Err(grpc::invalid(v));
        };
        let actor = principal.actor(role);
        let database = |e: sqlx::Error| grpc::database("reclassifying", &e);
        let mut tx = self.db.pool().begin().await.map_err(database)?;
        let current = store::current_for_update(&mut tx, id)
            .await
            .map_err(status)?
            .ok_or_else(|| Status::not_found(format!("complaint {id} has not been classified")))?;
        let next = self.overridden(&current.classification, &r, &note)?;
        let version = store::reclassify(&mut tx, &current, &next, &actor, &note)
            .await
            .map_err(database)?;
        let event = new_event(
            SERVICE,
            id.to_string(),
            u64::try_from(version).unwrap_or_default(),
            actor,
            ComplaintReclassified {
                complaint_id: id.to_string(),
                reference: current.complaint.reference.clone(),
                previous: Some(current.classification.clone()),
                classification: Some(next),
                note,
            },
        );
        redress_runtime::outbox::enqueue(&mut tx, &[OutboxMessage::event(&event)])
            .await
            .map_err(database)?;
        tx.commit().await.map_err(database)?;
        store::get(self.db.pool(), id)
            .await
            .map_err(status)?
            .map(Response::new)
            .ok_or_else(|| Status::internal("the reclassified complaint vanished"))
    }

    async fn get_taxonomy(
        &self,
        request: Request<GetTaxonomyRequest>,
    ) -> Result<Response<Taxonomy>, Status> {
        Principal::of(&request)?.require(READERS)?;
        let engine = self.live.current();
        let t = engine.taxonomy();
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

    async fn retrain(
        &self,
        request: Request<RetrainRequest>,
    ) -> Result<Response<RetrainResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        principal.require(MODEL_ADMINS)?;
        let slots = match request.get_ref().slot.trim() {
            "" => self.retrainer.config.slots.clone(),
            slot => vec![slot_of(slot)?],
        };
        let database = |e: sqlx::Error| grpc::database("retraining", &e);
        let mut tx = self.db.pool().begin().await.map_err(database)?;
        let trigger = format!("command:{}", principal.subject);
        let done = self
            .retrainer
            .retrain(&mut tx, &slots, &trigger)
            .await
            .map_err(retrain_status)?;
        tx.commit().await.map_err(database)?;
        self.switch().await;
        Ok(Response::new(RetrainResponse {
            models: done.models.iter().map(model_record).collect(),
            notes: done.notes,
        }))
    }

    async fn list_models(
        &self,
        request: Request<ListModelsRequest>,
    ) -> Result<Response<ListModelsResponse>, Status> {
        Principal::of(&request)?.require(MODEL_READERS)?;
        let r = request.into_inner();
        let slot = match r.slot.trim() {
            "" => None,
            slot => Some(slot_of(slot)?),
        };
        let page = r.page.unwrap_or_default();
        let page = models::list(
            self.db.pool(),
            slot,
            &self.pager,
            page.page_size,
            &page.page_token,
        )
        .await
        .map_err(status)?;
        Ok(Response::new(ListModelsResponse {
            models: page.items.iter().map(model_record).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn rollback(
        &self,
        request: Request<RollbackRequest>,
    ) -> Result<Response<RollbackResponse>, Status> {
        Principal::of(&request)?.require(MODEL_ADMINS)?;
        let r = request.into_inner();
        if r.slot.trim().is_empty() {
            return Err(grpc::invalid(Violations::one(
                "slot",
                code::REQUIRED,
                "name the slot to roll back, e.g. zh-cause",
            )));
        }
        let slot = slot_of(&r.slot)?;
        let to = Some(r.to_version.trim()).filter(|v| !v.is_empty());
        let database = |e: sqlx::Error| grpc::database("rolling back", &e);
        let mut tx = self.db.pool().begin().await.map_err(database)?;
        let (active, rolled_back) = models::rollback(&mut tx, self.db.schema(), slot, to)
            .await
            .map_err(rollback_status)?;
        tx.commit().await.map_err(database)?;
        self.switch().await;
        Ok(Response::new(RollbackResponse {
            slot: slot.to_string(),
            active_version: active.unwrap_or_default(),
            rolled_back_version: rolled_back.unwrap_or_default(),
        }))
    }
}

impl Api {
    /// The current classification with the specialist's codes and severity put in.
    fn overridden(
        &self,
        current: &Classification,
        r: &ReclassifyRequest,
        note: &str,
    ) -> Result<Classification, Status> {
        use redress_classifier::taxonomy::Dimension;
        let engine = self.live.current();
        let taxonomy = engine.taxonomy();
        let label = |dimension,
                     field: &str,
                     code: &str,
                     old: &Option<TaxonomyLabel>|
         -> Result<Option<TaxonomyLabel>, Status> {
            if code.trim().is_empty() {
                return Ok(old.clone());
            }
            let entry = taxonomy.entry(dimension, code.trim()).ok_or_else(|| {
                grpc::invalid(Violations::one(
                    field,
                    code::UNKNOWN_VALUE,
                    format!(
                        "not a code of taxonomy {} (GetTaxonomy lists them)",
                        taxonomy.version()
                    ),
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
                    detail: note.to_owned(),
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
                    detail: note.to_owned(),
                    evidence: String::new(),
                });
            }
            Err(_) => {
                return Err(grpc::invalid(Violations::one(
                    "severity",
                    code::UNKNOWN_VALUE,
                    "not a Severity (SEVERITY_LOW … SEVERITY_CRITICAL)",
                )));
            }
        }
        next.confidence = 1.0;
        next.needs_review = false;
        Ok(next)
    }
}

/// This replica switches at once (the others on the notification).
impl Api {
    async fn switch(&self) {
        if let Err(error) = self.live.refresh().await {
            tracing::error!(%error, "active models not installed; the watcher retries");
        }
    }
}

/// Who trains, promotes and rolls back models.
const MODEL_ADMINS: &[Role] = &[Role::Admin];
/// Who reads the models and their comparisons.
const MODEL_READERS: &[Role] = &[Role::Admin, Role::Compliance];

fn slot_of(text: &str) -> Result<Slot, Status> {
    Slot::parse(text)
        .map_err(|reason| grpc::invalid(Violations::one("slot", code::UNKNOWN_VALUE, reason)))
}

fn model_record(row: &ModelRow) -> ModelRecord {
    let comparison = row.comparison();
    let metrics = |s: &redress_classifier::ShadowScore| ShadowMetrics {
        model_version: s.model_version.clone(),
        accuracy: s.accuracy,
        auto_routed: u32::try_from(s.auto_routed).unwrap_or(u32::MAX),
        auto_routed_correct: u32::try_from(s.auto_routed_correct).unwrap_or(u32::MAX),
        auto_routed_precision: s.auto_routed_precision,
    };
    ModelRecord {
        version: row.version.clone(),
        slot: row.slot(),
        status: row.status.clone(),
        created_at: Some(redress_runtime::event::timestamp(row.created_at)),
        decision: row.decision.clone(),
        reason: row.reason.clone(),
        criterion: comparison
            .as_ref()
            .map(|c| c.criterion.clone())
            .unwrap_or_default(),
        compared_with: row.compared_with.clone(),
        current: comparison.as_ref().map(|c| metrics(&c.current)),
        candidate: comparison.as_ref().map(|c| metrics(&c.candidate)),
        training_examples: u32::try_from(row.training_examples).unwrap_or(0),
        shadow_examples: u32::try_from(row.shadow_examples).unwrap_or(0),
        trigger: row.trigger.clone(),
        replaces: row.replaces.clone().unwrap_or_default(),
    }
}

fn retrain_status(error: RetrainError) -> Status {
    match error {
        RetrainError::Store(e) => status(e),
        other => {
            tracing::error!(error = %other, "retraining");
            Status::failed_precondition(other.to_string())
        }
    }
}

fn rollback_status(error: RollbackError) -> Status {
    match error {
        RollbackError::Store(e) => status(e),
        RollbackError::Unknown(..) => Status::not_found(error.to_string()),
        RollbackError::NeverPromoted(..) => grpc::invalid(Violations::one(
            "toVersion",
            code::UNKNOWN_VALUE,
            error.to_string(),
        )),
        RollbackError::NothingActive(_) | RollbackError::AlreadyActive(_) => {
            Status::failed_precondition(error.to_string())
        }
    }
}

fn status(error: StoreError) -> Status {
    match error {
        StoreError::Database(e) => grpc::database("classification store", &e),
        StoreError::PageToken(e) => e.into(),
        StoreError::Corrupt(_) => {
            tracing::error!(%error, "classification store");
            Status::internal("classification could not complete the call; it has been logged")
        }
    }
}
