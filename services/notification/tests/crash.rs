//! SIGKILL in the middle of a burst of 2,000 notices to a real SMTP server: afterwards every
//! notice is sent exactly once, or listed in doubt (sent at most once) — none lost, none sent
//! twice outside the in-doubt report.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{collections::HashMap, process::Stdio, time::Duration};

use redress_runtime::testing::{TestEnv, eventually};
use support::*;

const NOTICES: i64 = 2_000;
const WORKERS: usize = 4;

fn start(
    env: &TestEnv,
    intake: &Intake,
    smtp: &Smtp,
    key: &std::path::Path,
) -> tokio::process::Child {
    env.command(env!("CARGO_BIN_EXE_redress-notification"))
        .env("REDRESS_INTAKE_URL", intake.url())
        .env("REDRESS_SERVICE_KEY", key)
        .env(
            "REDRESS_SMTP_URL",
            format!("smtp://127.0.0.1:{}?tls=none", smtp.port),
        )
        .env("REDRESS_NOTIFY_WORKERS", WORKERS.to_string())
        .env("REDRESS_NOTIFY_POLL", "100ms")
        .env("REDRESS_NOTIFY_RATE_PER_HOUR", "1000000")
        .env("REDRESS_LOG_FORMAT", "pretty")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the service binary starts")
}

/// Message-IDs (the delivery ids) of the mails in the Maildir, with how often each came.
fn received(smtp: &Smtp) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for entry in std::fs::read_dir(smtp.maildir.join("new"))
        .into_iter()
        .flatten()
    {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let id = text
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID: <"))
            .and_then(|l| l.split('@').next())
            .expect("every mail has our Message-ID")
            .to_owned();
        *seen.entry(id).or_insert(0) += 1;
    }
    seen
}

#[tokio::test]
async fn sigkill_during_a_burst_loses_nothing_and_repeats_nothing() {
    let env = TestEnv::new().await;
    let smtp = Smtp::start(None).await;
    let intake = Intake::start(&env).await;
    let (complaint, reference) = intake.complaint("burst@example.com", "zh-CN").await;
    let key = service_key();
    let mut first = start(&env, &intake, &smtp, &key);
    let db = env.pool("notification").await;
    eventually("the service migrated its schema", WAIT, || async {
        sqlx::query("SELECT 1 FROM deliveries LIMIT 1")
            .fetch_optional(&db)
            .await
            .ok()
    })
    .await;

    // The burst, made due at once (generated in SQL: what is under test is the sending).
    let mut tx = db.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO deliveries (id, dedupe_key, kind, case_id, complaint_id, regime, legal, article, facts)
         SELECT gen_random_uuid(), 'burst:' || n, 'receipt', 'case-' || n, $1, 'cn-nfra', true, 'test',
                jsonb_build_object('reference', $2::text, 'received_date', '2026-12-03',
                                   'decision_due_date', '2026-12-18')
         FROM generate_series(1, $3) AS n",
    )
    .bind(&complaint)
    .bind(&reference)
    .bind(NOTICES)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO jobs (queue, key, grp, due_at) SELECT 'deliver', id::text, case_id, now() FROM deliveries",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();

    eventually("a good part of the burst sent", WAIT, || async {
        (smtp.count() >= 200).then_some(())
    })
    .await;
    first.start_kill().unwrap(); // SIGKILL
    let _ = first.wait().await;
    let at_kill = smtp.count();

    let mut second = start(&env, &intake, &smtp, &key);
    let states: HashMap<String, String> =
        eventually("every notice settled", Duration::from_secs(120), || async {
            let pending: i64 =
                sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE state = 'pending'")
                    .fetch_one(&db)
                    .await
                    .ok()?;
            if pending > 0 {
                return None;
            }
            let rows: Vec<(uuid::Uuid, String)> =
                sqlx::query_as("SELECT id, state FROM deliveries")
                    .fetch_all(&db)
                    .await
                    .ok()?;
            Some(
                rows.into_iter()
                    .map(|(id, s)| (id.to_string(), s))
                    .collect(),
            )
        })
        .await;
    second.start_kill().unwrap();
    let _ = second.wait().await;

    let mails = received(&smtp);
    let in_doubt: Vec<&String> = states
        .iter()
        .filter(|(_, s)| *s == "in_doubt")
        .map(|(id, _)| id)
        .collect();
    assert!(
        at_kill < NOTICES as usize,
        "the kill came mid-burst ({at_kill} sent)"
    );
    assert!(
        in_doubt.len() <= WORKERS,
        "at most one send in flight per worker: {in_doubt:?}"
    );
    for (id, state) in &states {
        let copies = mails.get(id).copied().unwrap_or(0);
        match state.as_str() {
            "sent" => assert_eq!(copies, 1, "{id} sent exactly once"),
            "in_doubt" => assert!(copies <= 1, "{id} in doubt, never repeated"),
            other => panic!("{id} ended {other}"),
        }
    }
    assert!(
        mails.keys().all(|id| states.contains_key(id)),
        "no mail we did not record"
    );
    let tasks: i64 = sqlx::query_scalar("SELECT count(*) FROM specialist_tasks WHERE in_doubt")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(
        tasks as usize,
        in_doubt.len(),
        "each delivery in doubt is a specialist's task"
    );

    intake.stop().await;
    env.cleanup().await;
}
