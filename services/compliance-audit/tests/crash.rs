//! SIGKILL while appending: nothing lost, nothing twice, and the tree after the restart is
//! consistent with every checkpoint signed before the kill.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use redress_compliance_audit::{NoteVerifier, note::Checkpoint, verify::verify_export};
use redress_runtime::testing::{TestEnv, eventually};
use support::*;

const EVENTS: u64 = 600;

fn audit_process(env: &TestEnv, key: &std::path::Path) -> tokio::process::Child {
    env.command(env!("CARGO_BIN_EXE_redress-compliance-audit"))
        .env("REDRESS_AUDIT_SIGNING_KEY_FILE", key)
        .env("REDRESS_AUDIT_CHECKPOINT_ENTRIES", "25")
        .env("REDRESS_AUDIT_CHECKPOINT_INTERVAL", "100ms")
        .env("REDRESS_CONSUMER_BATCH", "20")
        .env("REDRESS_CONSUMER_ACK_WAIT", "2s")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn sigkill_mid_append_loses_and_duplicates_nothing() {
    let env = TestEnv::new().await;
    let (signer, key) = key_file();
    let bus = env.bus().await;
    bus.ensure_streams(redress_proto::bus::ALL_STREAMS)
        .await
        .unwrap();
    let events = many(EVENTS, 1000);
    for event in &events {
        bus.publish_event(event).await.unwrap();
    }
    let mut first = audit_process(&env, &key);
    let pool = env.pool("compliance_audit").await;
    // Kill while the backlog is being appended (and checkpoints signed).
    eventually("some entries appended", Duration::from_secs(60), || async {
        let n = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM log_entries")
            .fetch_one(&pool)
            .await
            .ok()?;
        (n >= 30).then_some(())
    })
    .await;
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();
    let at_kill = logged(&pool).await;
    let before: Vec<String> = sqlx::query_scalar("SELECT note FROM checkpoints ORDER BY tree_size")
        .fetch_all(&pool)
        .await
        .unwrap();

    let mut second = audit_process(&env, &key);
    eventually("every event logged", Duration::from_secs(60), || async {
        (logged(&pool).await >= EVENTS as i64).then_some(())
    })
    .await;
    eventually(
        "a checkpoint of every entry",
        Duration::from_secs(30),
        || async {
            let size: Option<i64> = sqlx::query_scalar("SELECT max(tree_size) FROM checkpoints")
                .fetch_one(&pool)
                .await
                .ok()?;
            (size? >= EVENTS as i64).then_some(())
        },
    )
    .await;
    second.start_kill().unwrap();
    second.wait().await.unwrap();

    let (rows, keys, top): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT entry_key), max(leaf_index) FROM log_entries",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (rows, keys, top),
        (EVENTS as i64, EVENTS as i64, EVENTS as i64 - 1)
    );
    let ids: std::collections::HashSet<String> =
        sqlx::query_scalar("SELECT entry_key FROM log_entries")
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert!(events.iter().all(|e| ids.contains(&e.uuid().to_string())));

    let verifier = NoteVerifier::parse(&signer.verifier().encode()).unwrap();
    let report = verify_export(&db_export(&pool).await, &verifier, &before).unwrap();
    assert_eq!(report.entries, EVENTS);
    for note in &before {
        let size = Checkpoint::open(note, &verifier).unwrap().size;
        assert!(
            report.checkpoints.contains(&size),
            "checkpoint {size} re-verified"
        );
    }
    assert!(
        at_kill < EVENTS as i64,
        "killed mid-backlog ({at_kill} of {EVENTS})"
    );
    let _ = std::fs::remove_file(key);
    env.cleanup().await;
}
