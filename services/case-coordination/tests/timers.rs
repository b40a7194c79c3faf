//! Deadline timers fire exactly once: with two replicas on one database and namespace, and
//! across a SIGKILL of the service process.

mod support;

use std::{collections::HashSet, process::Stdio};

use chrono::{Duration, Utc};
use redress_proto::events::v1::event::Payload;
use redress_runtime::testing::{TestEnv, eventually};
use support::*;
use tokio::process::Child;

/// (case, kind, fraction) of every deadline event on the bus.
async fn deadline_events(classifier: &Classifier) -> Vec<(String, &'static str, u64)> {
    case_events(&classifier.bus)
        .await
        .into_iter()
        .filter_map(|(_, e)| match e.payload {
            Some(Payload::CaseDeadlineWarning(w)) => {
                Some((e.aggregate_id, "warning", (w.fraction * 100.0) as u64))
            }
            Some(Payload::CaseDeadlineBreached(_)) => Some((e.aggregate_id, "breach", 100)),
            _ => None,
        })
        .collect()
}

fn overdue(n: usize) -> Vec<Complaint> {
    (0..n)
        .map(|_| {
            let mut c = Complaint::lending();
            c.received_at = Utc::now() - Duration::days(40);
            c
        })
        .collect()
}

async fn assert_each_fired_once(env: &TestEnv, classifier: &Classifier, cases: usize) {
    let pool = pool(env).await;
    eventually("every timer fired and published", WAIT, || async {
        let unfired: i64 = sqlx::query_scalar("SELECT count(*) FROM timers WHERE fired_at IS NULL")
            .fetch_one(&pool)
            .await
            .ok()?;
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&pool)
                .await
                .ok()?;
        let events = deadline_events(classifier).await;
        (unfired == 0 && pending == 0 && events.len() >= cases * 3).then_some(())
    })
    .await;
    let events = deadline_events(classifier).await;
    let distinct: HashSet<_> = events.iter().cloned().collect();
    assert_eq!(
        events.len(),
        cases * 3,
        "two warnings and one breach per case, no more"
    );
    assert_eq!(distinct.len(), events.len(), "none twice");
    let fired: i64 = sqlx::query_scalar("SELECT count(*) FROM timers WHERE fired_at IS NOT NULL")
        .fetch_one(&pool)
        .await
        .unwrap_or(-1);
    assert_eq!(fired, (cases * 3) as i64);
}

#[tokio::test]
async fn two_replicas_fire_each_timer_once() {
    let env = TestEnv::new().await;
    let one = Cases::start(&env).await;
    let two = Cases::start(&env).await;
    let classifier = Classifier::new(&env).await;
    const N: usize = 60;
    for complaint in overdue(N) {
        classifier.classified(&complaint).await;
    }
    assert_each_fired_once(&env, &classifier, N).await;
    let created = case_events(&classifier.bus)
        .await
        .iter()
        .filter(|(s, _)| s.ends_with(".created"))
        .count();
    assert_eq!(created, N, "one case per complaint across replicas");
    one.stop().await;
    two.stop().await;
    env.cleanup().await;
}

fn start(env: &TestEnv) -> Child {
    let child = env
        .command(env!("CARGO_BIN_EXE_redress-case-coordination"))
        .env("REDRESS_CASES_TIMER_POLL", "100ms")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    match child {
        Ok(c) => c,
        Err(e) => panic!("cannot start redress-case-coordination: {e}"),
    }
}

#[tokio::test]
async fn timers_fire_once_across_a_sigkill() {
    let env = TestEnv::new().await;
    let classifier = Classifier::new(&env).await;
    // Enough timers (three per case) that firing them takes longer than the kill takes to land.
    const N: usize = 600;
    for complaint in overdue(N) {
        classifier.classified(&complaint).await;
    }
    let mut process = start(&env);
    eventually("some timers fired before the kill", WAIT, || async {
        (!deadline_events(&classifier).await.is_empty()).then_some(())
    })
    .await;
    // SIGKILL: no graceful shutdown, no outbox flush.
    process.start_kill().ok();
    process.wait().await.ok();
    let mut process = start(&env);
    assert_each_fired_once(&env, &classifier, N).await;
    process.start_kill().ok();
    process.wait().await.ok();
    env.cleanup().await;
}
