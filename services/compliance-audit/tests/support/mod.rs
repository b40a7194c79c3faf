//! What the audit tests share: a signer key file, the service, events to log, exports.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::{path::PathBuf, time::Duration};

use redress_compliance_audit::{AuditConfig, Config, NoteSigner, client, run, verify::Export};
use redress_proto::{
    audit::v1::{GetCheckpointRequest, audit_service_client::AuditServiceClient},
    events::v1::{
        CaseCreated, CaseDecided, CaseHeader, ComplaintReceived, ComplaintSummary, ContactRead,
    },
};
use redress_runtime::{
    NewEvent, Running,
    event::{new_event, service_actor},
    testing::{TestEnv, eventually, grpc_channel, token},
};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

pub const ORIGIN: &str = "audit.redress.test";

/// A fresh signer and the key file holding it.
pub fn key_file() -> (NoteSigner, PathBuf) {
    let signer = NoteSigner::generate(ORIGIN).unwrap();
    let path = std::env::temp_dir().join(format!("redress-audit-{}.key", uuid::Uuid::now_v7()));
    std::fs::write(&path, signer.encode()).unwrap();
    (signer, path)
}

pub struct Audit {
    pub running: Running,
    pub shutdown: CancellationToken,
    pub client: AuditServiceClient<Channel>,
}

/// The service with the compliance rules off: the log's tests count entries exactly, and a
/// rule firing on their made-up events would add its violation event to the log
/// (tests/rules.rs runs with the rules on).
pub async fn start(env: &TestEnv, key: &std::path::Path) -> Audit {
    start_with(env, key, |audit| audit.rules = false).await
}

pub async fn start_with(
    env: &TestEnv,
    key: &std::path::Path,
    adjust: impl FnOnce(&mut AuditConfig),
) -> Audit {
    let shutdown = CancellationToken::new();
    let mut audit = AuditConfig {
        signing_key_file: Some(key.to_path_buf()),
        checkpoint_interval: Duration::from_millis(300),
        checkpoint_entries: 4,
        rules: true,
        rules_settle: Duration::from_secs(1),
        reconcile_interval: Duration::from_secs(3600),
        reviewers: Vec::new(),
    };
    adjust(&mut audit);
    let config = Config {
        runtime: env.runtime_config(),
        audit,
    };
    let running = run(config, shutdown.clone()).await.expect("audit starts");
    let client =
        AuditServiceClient::new(grpc_channel(&format!("http://{}", running.endpoints.grpc)).await);
    Audit {
        running,
        shutdown,
        client,
    }
}

impl Audit {
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.running.stopped().await;
    }
}

pub fn compliance(metadata: &mut tonic::metadata::MetadataMap) {
    let value = format!("Bearer {}", token("auditor", &["compliance"], None));
    metadata.insert("authorization", value.parse().unwrap());
}

/// Waits until a checkpoint covers at least `size` entries; returns its size.
pub async fn checkpointed(client: &AuditServiceClient<Channel>, size: u64) -> u64 {
    eventually(
        &format!("a checkpoint of {size} entries"),
        Duration::from_secs(40),
        || {
            let mut client = client.clone();
            async move {
                let mut request = tonic::Request::new(GetCheckpointRequest { tree_size: 0 });
                compliance(request.metadata_mut());
                let reply = client.get_checkpoint(request).await.ok()?.into_inner();
                let logged = reply.checkpoint?.tree_size;
                (logged >= size).then_some(logged)
            }
        },
    )
    .await
}

pub async fn export(client: &AuditServiceClient<Channel>) -> Export {
    client::export(&mut client.clone(), &compliance)
        .await
        .unwrap()
}

pub fn id(n: u64) -> String {
    format!("00000000-0000-7000-8000-{n:012}")
}

pub fn received(complaint: &str) -> NewEvent {
    new_event(
        "intake",
        complaint.to_owned(),
        1,
        service_actor("intake"),
        ComplaintReceived {
            complaint: Some(ComplaintSummary {
                complaint_id: complaint.to_owned(),
                ..Default::default()
            }),
        },
    )
}

pub fn contact_read(complaint: &str) -> NewEvent {
    new_event(
        "intake",
        complaint.to_owned(),
        2,
        service_actor("notification"),
        ContactRead {
            complaint_id: complaint.to_owned(),
            purpose: "decision notice".into(),
            ..Default::default()
        },
    )
}

fn header(case: &str, complaint: &str) -> Option<CaseHeader> {
    Some(CaseHeader {
        case_id: case.to_owned(),
        complaint_id: complaint.to_owned(),
        department: "cards".into(),
        ..Default::default()
    })
}

pub fn case_created(case: &str, complaint: &str) -> NewEvent {
    new_event(
        "case-coordination",
        case.to_owned(),
        1,
        service_actor("case-coordination"),
        CaseCreated {
            header: header(case, complaint),
            ..Default::default()
        },
    )
}

pub fn case_decided(case: &str, complaint: &str) -> NewEvent {
    new_event(
        "case-coordination",
        case.to_owned(),
        2,
        service_actor("case-coordination"),
        CaseDecided {
            header: header(case, complaint),
            ..Default::default()
        },
    )
}

/// `n` complaints received (event ids differ), for volume.
pub fn many(n: u64, offset: u64) -> Vec<NewEvent> {
    (0..n).map(|i| received(&id(offset + i))).collect()
}

/// The export read straight from the service's tables (what a DBA's copy would hold).
pub async fn db_export(pool: &sqlx::PgPool) -> Export {
    use base64::{Engine, engine::general_purpose::STANDARD as B64};
    let checkpoints: Vec<String> =
        sqlx::query_scalar("SELECT note FROM checkpoints ORDER BY tree_size")
            .fetch_all(pool)
            .await
            .unwrap();
    type Row = (i64, String, String, String, Vec<u8>, Option<Vec<u8>>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT e.leaf_index, e.entry_key, e.stream, e.subject, e.leaf, n.hash
         FROM log_entries e LEFT JOIN tree_nodes n ON n.level = 0 AND n.idx = e.leaf_index
         ORDER BY e.leaf_index",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    Export {
        format: redress_compliance_audit::verify::EXPORT_FORMAT.into(),
        checkpoints,
        entries: rows
            .into_iter()
            .map(|(index, entry_key, stream, subject, leaf, hash)| {
                redress_compliance_audit::verify::EntryJson {
                    index: index as u64,
                    entry_key,
                    stream,
                    subject,
                    leaf: B64.encode(leaf),
                    leaf_hash: hash.map(|h| B64.encode(h)),
                    proof: None,
                }
            })
            .collect(),
    }
}

pub async fn logged(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM log_entries")
        .fetch_one(pool)
        .await
        .unwrap_or(0)
}
