//! What a DBA with superuser rights could do to the tables, and what the verifier says.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use redress_compliance_audit::{
    NoteVerifier,
    merkle::Hash,
    note::Checkpoint,
    verify::{Problem, verify_export},
};
use redress_runtime::testing::TestEnv;
use sqlx::PgPool;
use support::*;

async fn sql(pool: &PgPool, statement: &str) -> Result<u64, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
}

/// Runs `statements` with the append-only triggers disabled, as a superuser could.
async fn bypass(pool: &PgPool, statements: &[&str]) {
    let mut tx = pool.begin().await.unwrap();
    for table in ["log_entries", "tree_nodes"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE {table} DISABLE TRIGGER USER"
        )))
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    for statement in statements {
        sqlx::query(sqlx::AssertSqlSafe(statement.to_string()))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    for table in ["log_entries", "tree_nodes"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE {table} ENABLE TRIGGER USER"
        )))
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn changed_deleted_reordered_rows_and_forks_are_named() {
    let env = TestEnv::new().await;
    let (signer, key) = key_file();
    let audit = start(&env, &key).await;
    let bus = env.bus().await;
    for event in many(12, 100) {
        bus.publish_event(&event).await.unwrap();
    }
    checkpointed(&audit.client, 12).await;
    let pool = env.pool("compliance_audit").await;
    let verifier = NoteVerifier::parse(&signer.verifier().encode()).unwrap();
    let honest = db_export(&pool).await;
    let report = verify_export(&honest, &verifier, &[]).unwrap();
    assert_eq!(report.entries, 12);
    assert_eq!(
        export(&audit.client).await,
        honest,
        "the API exports what the tables hold"
    );

    // The tables refuse changes: the trigger (even a superuser), and the owner's privileges.
    for statement in [
        "UPDATE log_entries SET subject = 'x' WHERE leaf_index = 1",
        "DELETE FROM log_entries WHERE leaf_index = 1",
        "TRUNCATE log_entries",
        "UPDATE tree_nodes SET hash = hash WHERE level = 0",
        "DELETE FROM checkpoints",
    ] {
        let refused = sql(&pool, statement).await.unwrap_err().to_string();
        assert!(refused.contains("append-only"), "{statement}: {refused}");
    }
    let owner_may_update: bool = sqlx::query_scalar(
        "SELECT has_table_privilege(tableowner, format('%I.%I', schemaname, tablename), 'UPDATE')
         FROM pg_tables WHERE tablename = 'log_entries' AND schemaname = current_schema()",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(!owner_may_update, "the service role gave up UPDATE");

    let first_bad = |problem: Problem| match problem {
        Problem::Entry { index, .. } => index,
        other => panic!("expected an entry named, got: {other}"),
    };
    // A row changed.
    bypass(
        &pool,
        &["UPDATE log_entries SET leaf = '\\x0102'::bytea WHERE leaf_index = 5"],
    )
    .await;
    let problem = verify_export(&db_export(&pool).await, &verifier, &[]).unwrap_err();
    assert_eq!(first_bad(problem), 5);
    let original = &honest.entries[5].leaf;
    bypass(
        &pool,
        &[&format!(
            "UPDATE log_entries SET leaf = decode('{original}', 'base64') WHERE leaf_index = 5"
        )],
    )
    .await;
    assert!(verify_export(&db_export(&pool).await, &verifier, &[]).is_ok());

    // A row deleted (the rest keep their indices).
    bypass(&pool, &["DELETE FROM log_entries WHERE leaf_index = 4"]).await;
    let problem = verify_export(&db_export(&pool).await, &verifier, &[]).unwrap_err();
    assert_eq!(first_bad(problem), 4);

    // Rows reordered: indices 2 and 7 swap places, and the deleted row shifted in.
    bypass(
        &pool,
        &[
            "UPDATE log_entries SET leaf_index = 1000000 WHERE leaf_index = 2",
            "UPDATE log_entries SET leaf_index = 2 WHERE leaf_index = 7",
            "UPDATE log_entries SET leaf_index = 7 WHERE leaf_index = 1000000",
        ],
    )
    .await;
    let problem = verify_export(&db_export(&pool).await, &verifier, &[]).unwrap_err();
    assert_eq!(first_bad(problem), 2);

    // A DBA who rewrites the leaf and its recorded hash: the signed root catches it, between
    // two checkpoints.
    let mut rewritten = honest.clone();
    rewritten.entries[9].leaf = "AQI=".into();
    rewritten.entries[9].leaf_hash = None;
    let problem = verify_export(&rewritten, &verifier, &[]).unwrap_err();
    match problem {
        Problem::RootMismatch { size, from } => assert!(from <= 9 && 9 < size, "{from}..{size}"),
        other => panic!("expected a root mismatch, got {other}"),
    }

    // A fork: the key signs another root for a size it signed before.
    let signed = Checkpoint::open(&honest.checkpoints[0], &verifier).unwrap();
    let mut other: Hash = signed.root;
    other[0] ^= 1;
    let forked = signer
        .sign(
            &Checkpoint {
                root: other,
                ..signed.clone()
            }
            .body(),
        )
        .unwrap();
    let problem = verify_export(&honest, &verifier, &[forked]).unwrap_err();
    assert_eq!(problem, Problem::Fork { size: signed.size });

    // A checkpoint by another key is refused, not ignored.
    let (stranger, stranger_key) = key_file();
    let foreign = stranger.sign(&signed.body()).unwrap();
    let mut smuggled = honest.clone();
    smuggled.checkpoints.push(foreign);
    assert!(matches!(
        verify_export(&smuggled, &verifier, &[]),
        Err(Problem::Checkpoint { .. })
    ));

    audit.stop().await;
    let _ = std::fs::remove_file(key);
    let _ = std::fs::remove_file(stranger_key);
    env.cleanup().await;
}
