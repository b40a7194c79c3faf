//! Deadlines at the service level: a case's due date comes from `redress-regime` (the
//! table-driven calendar arithmetic lives there), is derived again whenever the history
//! changes, and the warning and breach timers follow it.

mod support;

use chrono::{TimeZone, Utc};
use redress_proto::{
    cases::v1::*,
    events::v1::{ClockPauseReason, event::Payload},
};
use redress_regime::{CaseClock, Regime};
use redress_runtime::testing::{TestEnv, eventually};
use support::*;

fn regime_due(received: chrono::DateTime<Utc>) -> String {
    let regime = Regime::by_name("cn-nfra").ok();
    let calendar = regime.as_ref().and_then(|r| r.default_calendar().ok());
    let (Some(regime), Some(calendar)) = (regime, calendar) else {
        panic!("regime data")
    };
    let clock = CaseClock::new(&regime, &calendar).ok();
    clock
        .and_then(|c| c.derive(received, &[]).ok())
        .and_then(|d| d.decision_due)
        .map(|d| d.date.to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn due_dates_come_from_the_regime_across_golden_week_and_spring_festival() {
    let env = TestEnv::new().await;
    let cases = Cases::start(&env).await;
    let classifier = Classifier::new(&env).await;
    let client = cases.client().await;

    // (received, last day): day 15 inside a holiday moves to the day after it (Civil Code
    // Art. 203; 国办发明电〔2024〕12号: 国庆 10/1–8 2025; 国办发明电〔2025〕7号: 春节 2/15–23 2026).
    let table = [
        (Utc.with_ymd_and_hms(2025, 9, 20, 2, 0, 0), "2025-10-09"),
        (Utc.with_ymd_and_hms(2026, 2, 1, 2, 0, 0), "2026-02-24"),
        // 23:59 Beijing on 2025-09-19 counts from the 19th: day 15 is 10-04, in the holiday too.
        (Utc.with_ymd_and_hms(2025, 9, 19, 15, 59, 0), "2025-10-09"),
    ];
    let mut ids = Vec::new();
    for (received, _) in &table {
        let Some(received) = received.single() else {
            panic!("date")
        };
        let mut complaint = Complaint::lending();
        complaint.received_at = received;
        classifier.classified(&complaint).await;
        ids.push((complaint.id.clone(), received));
    }
    for ((complaint_id, received), (_, expected)) in ids.iter().zip(table) {
        let case = client.case_of(complaint_id).await;
        let deadlines = case.deadlines.clone().unwrap_or_default();
        assert_eq!(deadlines.decision_due_date, expected, "received {received}");
        assert_eq!(deadlines.decision_due_date, regime_due(*received));
        assert_eq!(deadlines.regime, "cn-nfra");
        assert!(!deadlines.calendar_missing);
        assert!(deadlines.explanation.iter().any(|l| l.contains("第十八条")));
    }
    // Long past: both warnings and the breach fire, once each, and the case is breached.
    let case = client.case_of(&ids[0].0).await;
    let events = eventually("warnings and breach", WAIT, || async {
        let events = case_events(&classifier.bus).await;
        let types = types_of(&events, &case.id);
        (types
            .iter()
            .filter(|t| t.starts_with("case_deadline"))
            .count()
            == 3)
            .then_some(events)
    })
    .await;
    let fractions: Vec<f64> = events
        .iter()
        .filter_map(|(_, e)| match &e.payload {
            Some(Payload::CaseDeadlineWarning(w)) if e.aggregate_id == case.id => Some(w.fraction),
            _ => None,
        })
        .collect();
    assert_eq!(fractions, [0.5, 0.8], "the regime's warning fractions");
    let breached = eventually("listed as breached", WAIT, || async {
        let list = client
            .list(
                SPECIALIST,
                ListCasesRequest {
                    breached: true,
                    ..Default::default()
                },
            )
            .await
            .ok()?;
        (list.len() == 3).then_some(list)
    })
    .await;
    assert!(breached.iter().all(|c| c.breached_at.is_some()));
    let due_before = client
        .list(
            SPECIALIST,
            ListCasesRequest {
                due_before: Some(redress_runtime::event::timestamp(Utc::now())),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_default();
    assert_eq!(due_before.len(), 3);
    cases.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn pauses_new_facts_and_extensions_recompute_the_deadline_and_its_timers() {
    let env = TestEnv::new().await;
    let cases = Cases::start(&env).await;
    let classifier = Classifier::new(&env).await;
    let client = cases.client().await;
    let mut c = client.inner.clone();
    let pool = pool(&env).await;
    let me = handler("h-lending-1", "lending");
    let complaint = Complaint::lending();
    classifier.classified(&complaint).await;
    let case = client.case_of(&complaint.id).await;
    let breach_due = |case_id: String| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, chrono::DateTime<Utc>>(
                "SELECT due_at FROM timers WHERE case_id = $1::uuid AND kind = 'breach' AND fired_at IS NULL",
            )
            .bind(case_id)
            .fetch_all(&pool)
            .await
            .unwrap_or_default()
        }
    };
    let due = |case: &Case| {
        case.deadlines
            .as_ref()
            .and_then(|d| d.decision_due)
            .and_then(|t| redress_runtime::event::from_timestamp(&t))
    };
    assert_eq!(
        breach_due(case.id.clone()).await,
        due(&case).into_iter().collect::<Vec<_>>()
    );

    let case = ok(c
        .start_work(req(
            me,
            StartWorkRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
            },
        ))
        .await);
    let case = ok(c
        .pause_clock(req(
            me,
            PauseClockRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                reason: ClockPauseReason::ExternalAppraisal as i32,
                note: "sent to the appraiser".into(),
            },
        ))
        .await);
    assert!(
        case.deadlines
            .as_ref()
            .is_some_and(|d| d.paused && d.decision_due.is_none())
    );
    assert!(
        breach_due(case.id.clone()).await.is_empty(),
        "no timers while the clock is stopped"
    );
    let status = refused(
        c.pause_clock(req(
            me,
            PauseClockRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                reason: ClockPauseReason::ExternalAppraisal as i32,
                note: String::new(),
            },
        ))
        .await,
    );
    assert!(status.message().contains("already paused"));
    let case = ok(c
        .resume_clock(req(
            me,
            ResumeClockRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
            },
        ))
        .await);
    assert_eq!(
        breach_due(case.id.clone()).await,
        due(&case).into_iter().collect::<Vec<_>>()
    );

    let before = due(&case);
    let case = ok(c
        .extend(req(
            me,
            ExtendRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                reason: "complex".into(),
            },
        ))
        .await);
    let after = due(&case);
    assert!(after > before, "{after:?} > {before:?}");
    assert_eq!(
        breach_due(case.id.clone()).await,
        after.into_iter().collect::<Vec<_>>(),
        "the breach timer moved"
    );
    // New facts restart the period with the base limit.
    let case = ok(c
        .record_new_facts(req(
            me,
            RecordNewFactsRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                summary: "consumer sent a second statement".into(),
            },
        ))
        .await);
    assert_eq!(
        case.deadlines
            .as_ref()
            .map(|d| (d.limit_days, d.extension_tier)),
        Some((15, 0))
    );
    assert_eq!(
        breach_due(case.id.clone()).await,
        due(&case).into_iter().collect::<Vec<_>>()
    );
    // Decided: no running deadline, no timers.
    let case = ok(c
        .record_decision(req(
            me,
            RecordDecisionRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                outcome: redress_proto::events::v1::DecisionOutcome::NotUpheld as i32,
                remedy: None,
                explanation: "The fee was disclosed in clause 7.".into(),
                root_cause_tags: vec!["disclosure-ux".into()],
            },
        ))
        .await);
    assert!(breach_due(case.id.clone()).await.is_empty());
    cases.stop().await;
    env.cleanup().await;
}
