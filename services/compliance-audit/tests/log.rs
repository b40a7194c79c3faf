//! The log over real NATS, Postgres and gRPC: every stream's messages logged once, proofs that
//! a known RFC 9162 implementation accepts, evidence bundles, and who may ask.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use redress_compliance_audit::{
    NoteVerifier, client,
    merkle::leaf_hash,
    note::Checkpoint,
    verify::{verify_bundle, verify_export},
};
use redress_proto::{
    audit::v1::{
        ExportCaseRequest, GetCheckpointRequest, GetConsistencyProofRequest, GetEntriesRequest,
        GetInclusionProofRequest, get_inclusion_proof_request::Leaf,
    },
    bus::{DLQ, headers},
};
use redress_runtime::{
    bus::Outgoing,
    testing::{TestEnv, authed, eventually},
};
use support::*;

#[tokio::test]
async fn every_stream_is_logged_once_and_proved() {
    let env = TestEnv::new().await;
    let (signer, key) = key_file();
    let audit = start(&env, &key).await;
    let bus = env.bus().await;

    let (case, complaint) = (id(900), id(901));
    let received = received(&complaint);
    let events = [
        received.clone(),
        case_created(&case, &complaint),
        contact_read(&complaint),
        case_decided(&case, &complaint),
        received.clone(), // the same event again: logged once
        super_unrelated(),
    ];
    for event in &events {
        bus.publish_event(event).await.unwrap();
    }
    // The same event published again under another message id (past JetStream's
    // de-duplication): the stream holds it twice, the log once.
    let mut again = Outgoing::from(redress_runtime::OutboxMessage::event(&received));
    again
        .headers
        .insert(headers::MSG_ID, "republished-after-window");
    bus.publish(again).await.unwrap();
    // A dead letter repeating that event's bytes: a message of its own, logged.
    let mut dead = HeaderMap::new();
    dead.insert(headers::MSG_ID, "dlq:classification:7");
    dead.insert(headers::DLQ_REASON, "no such category");
    bus.publish(Outgoing {
        subject: "redress.dlq.v1.classification".into(),
        headers: dead,
        payload: Bytes::from(redress_runtime::OutboxMessage::event(&received).payload),
    })
    .await
    .unwrap();

    let expected = 6; // five distinct events and the dead letter
    let size = checkpointed(&audit.client, expected).await;
    assert_eq!(size, expected, "each message once");
    let export = export(&audit.client).await;
    let verifier = NoteVerifier::parse(&signer.verifier().encode()).unwrap();
    let report = verify_export(&export, &verifier, &[]).unwrap();
    assert_eq!(report.entries, expected);
    let streams: Vec<&str> = export.entries.iter().map(|e| e.stream.as_str()).collect();
    for stream in ["COMPLAINT_EVENTS", "CASE_EVENTS", "DLQ"] {
        assert!(streams.contains(&stream), "{stream} logged: {streams:?}");
    }
    let leaves: Vec<_> = export
        .entries
        .iter()
        .map(|e| e.entry_key.as_str())
        .collect();
    assert!(leaves.contains(&"dlq:classification:7"));

    // An inclusion proof by event id, against the signed checkpoint, checked with ct-merkle.
    let mut api = audit.client.clone();
    let reply = api
        .get_inclusion_proof(authed(
            GetInclusionProofRequest {
                leaf: Some(Leaf::EventId(received.uuid().to_string())),
                tree_size: 0,
            },
            &["compliance"],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.leaf,
        redress_runtime::OutboxMessage::event(&received).payload
    );
    assert_eq!(reply.leaf_hash, leaf_hash(&reply.leaf).to_vec());
    let checkpoint = api
        .get_checkpoint(authed(GetCheckpointRequest { tree_size: size }, &["admin"]))
        .await
        .unwrap()
        .into_inner();
    let signed = Checkpoint::open(&checkpoint.checkpoint.unwrap().note, &verifier).unwrap();
    let root = ct_merkle::RootHash::<sha2::Sha256>::new(signed.root.into(), signed.size);
    let digests: Vec<[u8; 32]> = reply
        .proof
        .iter()
        .map(|h| h.as_slice().try_into().unwrap())
        .collect();
    let proof = ct_merkle::InclusionProof::<sha2::Sha256>::from_digests(
        digests.iter().map(Into::into).collect::<Vec<_>>(),
    );
    root.verify_inclusion(&reply.leaf, reply.leaf_index, &proof)
        .unwrap();

    // Consistency between the first and the latest checkpoint.
    let first = Checkpoint::open(&export.checkpoints[0], &verifier).unwrap();
    let proof = api
        .get_consistency_proof(authed(
            GetConsistencyProofRequest {
                old_size: first.size,
                new_size: size,
            },
            &["compliance"],
        ))
        .await
        .unwrap()
        .into_inner()
        .proof;
    let digests: Vec<[u8; 32]> = proof
        .iter()
        .map(|h| h.as_slice().try_into().unwrap())
        .collect();
    let proof = ct_merkle::ConsistencyProof::<sha2::Sha256>::from_digests(
        digests.iter().map(Into::into).collect::<Vec<_>>(),
    );
    let old = ct_merkle::RootHash::<sha2::Sha256>::new(first.root.into(), first.size);
    root.verify_consistency(&old, &proof).unwrap();

    // The case's evidence bundle: its events and its complaint's, each proved.
    let bundle = client::bundle(&mut api, &compliance, &case, &verifier, &export.checkpoints)
        .await
        .unwrap();
    let report = verify_bundle(&bundle, &verifier, &export.checkpoints).unwrap();
    assert_eq!(
        report.entries, 4,
        "created, decided, received, contact read"
    );
    assert!(!bundle.consistency.is_empty());
    std::fs::write(
        std::env::temp_dir().join(format!("redress-audit-bundle-{}.json", env.namespace)),
        serde_json::to_string(&bundle).unwrap(),
    )
    .unwrap();

    // Who may ask: compliance and admin; not a handler, not a service.
    for roles in [
        &["handler"][..],
        &["service:case-coordination"],
        &["analyst"],
    ] {
        let denied = api
            .get_entries(authed(GetEntriesRequest { start: 0, end: 1 }, roles))
            .await
            .map(|_| ())
            .unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{roles:?}");
        let denied = api
            .export_case(authed(
                ExportCaseRequest {
                    case_id: case.clone(),
                },
                roles,
            ))
            .await
            .map(|_| ())
            .unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{roles:?}");
    }
    let unauthenticated = api
        .get_checkpoint(GetCheckpointRequest { tree_size: 0 })
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(unauthenticated.code(), tonic::Code::Unauthenticated);
    // Bad input names the field.
    let bad = api
        .get_entries(authed(
            GetEntriesRequest {
                start: 5,
                end: 5000,
            },
            &["compliance"],
        ))
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("end"), "{}", bad.message());
    let bad = api
        .export_case(authed(
            ExportCaseRequest {
                case_id: "x".into(),
            },
            &["compliance"],
        ))
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(bad.message().contains("case_id"), "{}", bad.message());

    // The checkpoint events are published on redress.audit.v1.checkpoint.
    eventually("a checkpoint event", Duration::from_secs(20), || async {
        let stored =
            redress_runtime::testing::stored(&bus, &redress_proto::bus::AUDIT_EVENTS).await;
        (!stored.is_empty()).then_some(())
    })
    .await;

    audit.stop().await;
    let _ = std::fs::remove_file(key);
    let _ = DLQ;
    env.cleanup().await;
}

/// An event of a stream nobody else in this test touches.
fn super_unrelated() -> redress_runtime::NewEvent {
    redress_runtime::new_event(
        "notification",
        id(42),
        1,
        redress_runtime::event::service_actor("notification"),
        redress_proto::events::v1::NotificationSent::default(),
    )
}
