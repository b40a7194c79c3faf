//! Fetching exports and bundles over gRPC for the offline verifier (used by `redress audit`).

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use redress_proto::audit::v1::{
    ExportCaseRequest, GetCheckpointRequest, GetConsistencyProofRequest, GetEntriesRequest,
    ListCheckpointsRequest, audit_service_client::AuditServiceClient,
};
use tonic::{Request, Status, transport::Channel};

use crate::{
    api::PAGE,
    note::{Checkpoint, NoteVerifier},
    verify::{Bundle, ConsistencyJson, EXPORT_FORMAT, EntryJson, Export},
};

/// Adds a bearer token to each request.
pub type Authorize = dyn Fn(&mut tonic::metadata::MetadataMap) + Send + Sync;

fn request<T>(message: T, authorize: &Authorize) -> Request<T> {
    let mut request = Request::new(message);
    authorize(request.metadata_mut());
    request
}

/// The log's verifier key as the service states it (a verifier should hold its own copy).
pub async fn verifier_key(
    client: &mut AuditServiceClient<Channel>,
    authorize: &Authorize,
) -> Result<String, Status> {
    let reply = client
        .get_checkpoint(request(GetCheckpointRequest { tree_size: 0 }, authorize))
        .await?;
    Ok(reply.into_inner().verifier_key)
}

/// Every signed checkpoint and every entry up to the largest one.
pub async fn export(
    client: &mut AuditServiceClient<Channel>,
    authorize: &Authorize,
) -> Result<Export, Status> {
    let mut checkpoints = Vec::new();
    let mut after = 0;
    loop {
        let page = client
            .list_checkpoints(request(
                ListCheckpointsRequest { after_size: after },
                authorize,
            ))
            .await?
            .into_inner()
            .checkpoints;
        let Some(last) = page.last() else { break };
        after = last.tree_size;
        checkpoints.extend(page.into_iter().map(|c| c.note));
    }
    let mut entries = Vec::new();
    let mut start = 0;
    while start < after {
        let end = (start + PAGE).min(after);
        let page = client
            .get_entries(request(GetEntriesRequest { start, end }, authorize))
            .await?
            .into_inner()
            .entries;
        if page.is_empty() {
            break;
        }
        start += page.len() as u64;
        entries.extend(page.into_iter().map(|e| EntryJson {
            index: e.leaf_index,
            entry_key: e.entry_key,
            stream: e.stream,
            subject: e.subject,
            leaf: B64.encode(&e.leaf),
            leaf_hash: Some(B64.encode(&e.leaf_hash)),
            proof: None,
        }));
    }
    Ok(Export {
        format: EXPORT_FORMAT.into(),
        checkpoints,
        entries,
    })
}

/// A case's evidence bundle, with consistency proofs from each witnessed checkpoint no larger
/// than the bundle's to it.
pub async fn bundle(
    client: &mut AuditServiceClient<Channel>,
    authorize: &Authorize,
    case_id: &str,
    verifier: &NoteVerifier,
    witnessed: &[String],
) -> Result<Bundle, Status> {
    let json = client
        .export_case(request(
            ExportCaseRequest {
                case_id: case_id.to_owned(),
            },
            authorize,
        ))
        .await?
        .into_inner()
        .bundle_json;
    let mut bundle: Bundle = serde_json::from_str(&json)
        .map_err(|e| Status::internal(format!("the service sent an unreadable bundle: {e}")))?;
    let new = Checkpoint::open(&bundle.checkpoint, verifier)
        .map_err(|e| Status::failed_precondition(format!("the bundle's checkpoint: {e}")))?;
    for note in witnessed {
        let Ok(old) = Checkpoint::open(note, verifier) else {
            continue;
        };
        if old.size == 0 || old.size > new.size {
            continue;
        }
        let proof = client
            .get_consistency_proof(request(
                GetConsistencyProofRequest {
                    old_size: old.size,
                    new_size: new.size,
                },
                authorize,
            ))
            .await?
            .into_inner()
            .proof;
        bundle.consistency.push(ConsistencyJson {
            old_checkpoint: note.clone(),
            proof: proof.iter().map(|h| B64.encode(h)).collect(),
        });
    }
    Ok(bundle)
}
