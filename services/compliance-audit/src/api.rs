//! AuditService: checkpoints, proofs, entries and evidence bundles, for compliance and admin.

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use redress_proto::{
    audit::v1::{
        AcknowledgeViolationRequest, Checkpoint, DrawInspectionSampleRequest,
        DrawInspectionSampleResponse, Entry, ExportCaseRequest, ExportCaseResponse,
        GetCheckpointRequest, GetCheckpointResponse, GetConsistencyProofRequest,
        GetConsistencyProofResponse, GetEntriesRequest, GetEntriesResponse,
        GetInclusionProofRequest, GetInclusionProofResponse, ListCheckpointsRequest,
        ListCheckpointsResponse, ListViolationsRequest, ListViolationsResponse, ReconcileRequest,
        ReconcileResponse, RecordInspectionRequest, RecordInspectionResponse,
        ResolveViolationRequest, Violation, audit_service_server::AuditService,
        get_inclusion_proof_request::Leaf,
    },
    events::v1::FieldViolation,
    vocab::{TextKind, code},
};
use std::sync::Arc;

use redress_runtime::{Bus, Principal, Role, db::Database, event::timestamp, grpc, paging::Pager};
use tonic::{Request, Response, Status};

use crate::{
    checkpoints,
    inspection::{self, Inspection, InspectionError, Scoring},
    merkle::{Query, leaf_hash},
    note::NoteSigner,
    reconcile,
    store::{self, StoreError, StoredCheckpoint},
    verify::{BUNDLE_FORMAT, Bundle, EntryJson},
    violations::Judge,
    worklist,
};

/// At most this many entries or checkpoints per call.
pub const PAGE: u64 = 1000;
const ROLES: &[Role] = &[Role::Compliance, Role::Admin];

pub struct Api {
    pub db: Database,
    pub signer: NoteSigner,
    pub bus: Bus,
    pub pager: Pager,
    pub judge: Arc<Judge>,
    pub inspection: Arc<Inspection>,
    pub reviewers: Vec<String>,
}

fn store_error(what: &str, error: StoreError) -> Status {
    match error {
        StoreError::Database(e) => grpc::database(what, &e),
        StoreError::Proof(e) => Status::failed_precondition(e.to_string()),
        StoreError::BadNode(..) => {
            tracing::error!(%error, what, "audit log store");
            Status::internal("the stored tree is damaged; it has been logged")
        }
    }
}

fn inspection_error(error: InspectionError) -> Status {
    match error {
        InspectionError::Invalid(v) => grpc::invalid(v),
        InspectionError::NotReady(m) => Status::failed_precondition(m),
        InspectionError::NotFound(m) => Status::not_found(m),
        InspectionError::Denied(m) => Status::permission_denied(m),
        InspectionError::Exists(m) => Status::already_exists(m),
        InspectionError::Database(e) => grpc::database("inspection", &e),
        InspectionError::File(m) => Status::internal(m),
    }
}

fn violation(field: &str, code: &str, message: impl Into<String>) -> Status {
    grpc::invalid(FieldViolation::new(field, code, message))
}

fn to_proto(stored: StoredCheckpoint) -> Checkpoint {
    let origin = stored.note.lines().next().unwrap_or_default().to_owned();
    Checkpoint {
        note: stored.note,
        origin,
        tree_size: stored.tree_size as u64,
        root_hash: stored.root_hash,
        signed_at: Some(timestamp(stored.signed_at)),
    }
}

impl Api {
    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, Status> {
        self.db
            .pool()
            .acquire()
            .await
            .map_err(|e| grpc::database("connect", &e))
    }

    /// The checkpoint of `size` (0: the latest), or NOT_FOUND.
    async fn checkpoint(&self, size: u64) -> Result<StoredCheckpoint, Status> {
        let mut conn = self.conn().await?;
        store::checkpoint(&mut conn, (size > 0).then_some(size))
            .await
            .map_err(|e| grpc::database("checkpoint", &e))?
            .ok_or_else(|| match size {
                0 => Status::not_found("no checkpoint has been signed yet"),
                _ => Status::not_found(format!("no checkpoint of tree size {size}")),
            })
    }
}

#[tonic::async_trait]
impl AuditService for Api {
    async fn get_checkpoint(
        &self,
        request: Request<GetCheckpointRequest>,
    ) -> Result<Response<GetCheckpointResponse>, Status> {
        Principal::of(&request)?.require(ROLES)?;
        let stored = self.checkpoint(request.get_ref().tree_size).await?;
        Ok(Response::new(GetCheckpointResponse {
            checkpoint: Some(to_proto(stored)),
            verifier_key: self.signer.verifier().encode(),
        }))
    }

    async fn list_checkpoints(
        &self,
        request: Request<ListCheckpointsRequest>,
    ) -> Result<Response<ListCheckpointsResponse>, Status> {
        Principal::of(&request)?.require(ROLES)?;
        let after = i64::try_from(request.get_ref().after_size)
            .map_err(|_| violation("after_size", code::OUT_OF_RANGE, "too large"))?;
        let rows: Vec<StoredCheckpoint> = sqlx::query_as(
            "SELECT tree_size, root_hash, note, signed_at FROM checkpoints
             WHERE tree_size > $1 ORDER BY tree_size LIMIT $2",
        )
        .bind(after)
        .bind(PAGE as i64)
        .fetch_all(self.db.pool())
        .await
        .map_err(|e| grpc::database("list checkpoints", &e))?;
        Ok(Response::new(ListCheckpointsResponse {
            checkpoints: rows.into_iter().map(to_proto).collect(),
        }))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<GetInclusionProofRequest>,
    ) -> Result<Response<GetInclusionProofResponse>, Status> {
        Principal::of(&request)?.require(ROLES)?;
        let request = request.into_inner();
        let mut conn = self.conn().await?;
        let index = match request.leaf {
            Some(Leaf::LeafIndex(index)) => index,
            Some(Leaf::EventId(id)) => {
                let id = grpc::id("event_id", &id)?.to_string();
                store::index_of(&mut conn, &id)
                    .await
                    .map_err(|e| grpc::database("find entry", &e))?
                    .ok_or_else(|| Status::not_found(format!("event {id} is not in the log")))?
            }
            None => {
                return Err(violation(
                    "leaf",
                    code::REQUIRED,
                    "name an event_id or a leaf_index",
                ));
            }
        };
        let size = match request.tree_size {
            0 => self.checkpoint(0).await?.tree_size as u64,
            size => size,
        };
        let logged = store::size(&mut conn)
            .await
            .map_err(|e| grpc::database("size", &e))?;
        if size > logged {
            return Err(violation(
                "tree_size",
                code::OUT_OF_RANGE,
                format!("the log holds {logged} entries"),
            ));
        }
        if index >= size {
            return Err(violation(
                "leaf_index",
                code::OUT_OF_RANGE,
                format!("entry {index} is not in the tree of size {size}"),
            ));
        }
        let proof = store::prove(&mut conn, Query::Inclusion { index, size })
            .await
            .map_err(|e| store_error("inclusion proof", e))?;
        let leaf = store::entries(&mut conn, index, index + 1)
            .await
            .map_err(|e| grpc::database("entry", &e))?
            .pop()
            .map(|e| e.leaf)
            .unwrap_or_default();
        Ok(Response::new(GetInclusionProofResponse {
            leaf_index: index,
            tree_size: size,
            leaf_hash: leaf_hash(&leaf).to_vec(),
            leaf,
            proof: proof.iter().map(|h| h.to_vec()).collect(),
        }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<GetConsistencyProofRequest>,
    ) -> Result<Response<GetConsistencyProofResponse>, Status> {
        Principal::of(&request)?.require(ROLES)?;
        let GetConsistencyProofRequest { old_size, new_size } = request.into_inner();
        let mut conn = self.conn().await?;
        let logged = store::size(&mut conn)
            .await
            .map_err(|e| grpc::database("size", &e))?;
        if new_size > logged {
            return Err(violation(
                "new_size",
                code::OUT_OF_RANGE,
                format!("the log holds {logged} entries"),
            ));
        }
        if old_size == 0 || old_size > new_size {
            return Err(violation(
                "old_size",
                code::OUT_OF_RANGE,
                "must be between 1 and new_size",
            ));
        }
        let proof = store::prove(
            &mut conn,
            Query::Consistency {
                old: old_size,
                new: new_size,
            },
        )
        .await
        .map_err(|e| store_error("consistency proof", e))?;
        Ok(Response::new(GetConsistencyProofResponse {
            proof: proof.iter().map(|h| h.to_vec()).collect(),
        }))
    }

    async fn get_entries(
        &self,
        request: Request<GetEntriesRequest>,
    ) -> Result<Response<GetEntriesResponse>, Status> {
        Principal::of(&request)?.require(ROLES)?;
        let GetEntriesRequest { start, end } = request.into_inner();
        if end <= start || end - start > PAGE {
            return Err(violation(
                "end",
                code::OUT_OF_RANGE,
                format!("must be above start and at most {PAGE} after it"),
            ));
        }
        let mut conn = self.conn().await?;
        let entries = store::entries(&mut conn, start, end)
            .await
            .map_err(|e| grpc::database("entries", &e))?;
        Ok(Response::new(GetEntriesResponse {
            entries: entries
                .into_iter()
                .map(|e| Entry {
                    leaf_index: e.leaf_index as u64,
                    entry_key: e.entry_key,
                    stream: e.stream,
                    subject: e.subject,
                    leaf_hash: e.leaf_hash,
                    leaf: e.leaf,
                })
                .collect(),
        }))
    }

    async fn export_case(
        &self,
        request: Request<ExportCaseRequest>,
    ) -> Result<Response<ExportCaseResponse>, Status> {
        Principal::of(&request)?.require(ROLES)?;
        let case_id = grpc::id("case_id", &request.get_ref().case_id)?.to_string();
        // Sign what is logged now, so the bundle covers every event of the case so far.
        checkpoints::sign_now(&self.db, &self.signer)
            .await
            .map_err(|e| store_error("sign checkpoint", e))?;
        let checkpoint = self.checkpoint(0).await?;
        let size = checkpoint.tree_size as u64;
        let mut conn = self.conn().await?;
        let entries = store::case_entries(&mut conn, &case_id)
            .await
            .map_err(|e| grpc::database("case entries", &e))?;
        let mut bundled = Vec::with_capacity(entries.len());
        for entry in entries.into_iter().filter(|e| (e.leaf_index as u64) < size) {
            let index = entry.leaf_index as u64;
            let proof = store::prove(&mut conn, Query::Inclusion { index, size })
                .await
                .map_err(|e| store_error("inclusion proof", e))?;
            bundled.push(EntryJson {
                index,
                entry_key: entry.entry_key,
                stream: entry.stream,
                subject: entry.subject,
                leaf: B64.encode(&entry.leaf),
                leaf_hash: None,
                proof: Some(proof.iter().map(|h| B64.encode(h)).collect()),
            });
        }
        if bundled.is_empty() {
            return Err(Status::not_found(format!(
                "no logged event of case {case_id}"
            )));
        }
        let bundle = Bundle {
            format: BUNDLE_FORMAT.into(),
            case_id,
            checkpoint: checkpoint.note,
            entries: bundled,
            consistency: Vec::new(),
        };
        let entries = bundle.entries.len() as u64;
        let bundle_json = serde_json::to_string_pretty(&bundle)
            .map_err(|e| Status::internal(format!("bundle encoding: {e}")))?;
        Ok(Response::new(ExportCaseResponse {
            bundle_json,
            entries,
        }))
    }

    async fn list_violations(
        &self,
        request: Request<ListViolationsRequest>,
    ) -> Result<Response<ListViolationsResponse>, Status> {
        Principal::of(&request)?.require(ROLES)?;
        let listed = worklist::list(&self.db, &self.pager, request.into_inner()).await?;
        Ok(Response::new(listed))
    }

    async fn acknowledge_violation(
        &self,
        request: Request<AcknowledgeViolationRequest>,
    ) -> Result<Response<Violation>, Status> {
        let (principal, role) = redress_runtime::require(&request, ROLES)?;
        let r = request.into_inner();
        let done =
            worklist::acknowledge(&self.db, &principal, role, &r.violation_id, &r.note).await?;
        Ok(Response::new(done))
    }

    async fn resolve_violation(
        &self,
        request: Request<ResolveViolationRequest>,
    ) -> Result<Response<Violation>, Status> {
        let (principal, role) = redress_runtime::require(&request, ROLES)?;
        let r = request.into_inner();
        let done =
            worklist::resolve(&self.db, &principal, role, &r.violation_id, &r.reason).await?;
        Ok(Response::new(done))
    }

    async fn reconcile(
        &self,
        request: Request<ReconcileRequest>,
    ) -> Result<Response<ReconcileResponse>, Status> {
        Principal::of(&request)?.require(ROLES)?;
        let (report, consistent) = reconcile::run(&self.bus, &self.db, &self.judge.rules)
            .await
            .map_err(|e| match e {
                reconcile::ReconcileError::Database(e) => grpc::database("reconcile", &e),
                other => Status::unavailable(other.to_string()),
            })?;
        Ok(Response::new(ReconcileResponse {
            report: Some(report),
            consistent,
        }))
    }

    async fn draw_inspection_sample(
        &self,
        request: Request<DrawInspectionSampleRequest>,
    ) -> Result<Response<DrawInspectionSampleResponse>, Status> {
        Principal::of(&request)?.require(ROLES)?;
        let month = request.into_inner().month;
        let sample = inspection::sample(
            self.db.pool(),
            &self.inspection,
            &self.reviewers,
            month.trim(),
            chrono::Utc::now(),
        )
        .await
        .map_err(inspection_error)?;
        Ok(Response::new(DrawInspectionSampleResponse {
            sample: Some(sample),
        }))
    }

    async fn record_inspection(
        &self,
        request: Request<RecordInspectionRequest>,
    ) -> Result<Response<RecordInspectionResponse>, Status> {
        let (principal, role) = redress_runtime::require(&request, ROLES)?;
        let r = request.into_inner();
        let findings = grpc::text("findings", &r.findings, 4000, TextKind::Prose, false)
            .map_err(grpc::invalid)?;
        let scoring = Scoring {
            month: r.month.trim(),
            case_id: r.case_id.trim(),
            scores: r.scores,
            findings,
        };
        let scored =
            inspection::record(self.db.pool(), &self.inspection, &principal, role, scoring)
                .await
                .map_err(inspection_error)?;
        Ok(Response::new(RecordInspectionResponse {
            scored: Some(scored),
        }))
    }
}
