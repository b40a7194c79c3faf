//! The case lifecycle over real NATS, Postgres and gRPC: opening and routing, every
//! transition allowed and refused, optimistic concurrency, input requests, extensions,
//! decisions, reviews, satisfaction, duplicates and merges, withdrawals, 回避.

mod support;

use std::collections::HashSet;

use chrono::{Duration, Utc};
use redress_proto::{
    cases::v1::*,
    common::v1::{Channel, Money, Severity},
    events::v1::{
        CaseState, ClockPauseReason, DecisionOutcome, EscalationTarget, Remedy, Satisfaction,
        event::Payload,
    },
};
use redress_runtime::{
    event::timestamp,
    testing::{TestEnv, eventually},
};
use support::*;
use tonic::Code;

fn decision(case: &Case) -> RecordDecisionRequest {
    RecordDecisionRequest {
        case_id: case.id.clone(),
        expected_version: case.version,
        outcome: DecisionOutcome::PartlyUpheld as i32,
        remedy: Some(Remedy {
            amount: Some(Money {
                currency_code: "CNY".into(),
                units: 120,
                nanos: 0,
            }),
            action: "refund the undisclosed service fee".into(),
        }),
        explanation: "The fee was not disclosed before signing; it is refunded.".into(),
        root_cause_tags: vec!["fee-disclosure".into()],
    }
}

#[tokio::test]
async fn a_classified_complaint_opens_one_case_routed_to_its_department() {
    let env = TestEnv::new().await;
    let cases = Cases::start(&env).await;
    let classifier = Classifier::new(&env).await;
    let client = cases.client().await;

    let complaint = Complaint::lending();
    classifier.classified(&complaint).await;
    // The same complaint classified again (a second event id): still one case.
    classifier.classified(&complaint).await;
    let case = client.case_of(&complaint.id).await;
    assert_eq!(case.state, CaseState::Assigned as i32);
    assert_eq!(case.department, "lending");
    assert_eq!(case.queue, "standard");
    assert_eq!(case.routing_rule, "lending");
    assert_eq!(case.first_receiver, "channel:web");
    // Least-loaded of the roster's lending handlers (all idle: the first by id).
    assert_eq!(case.handler, "h-lending-1");
    let second = Complaint::lending();
    classifier.classified(&second).await;
    let second = client.case_of(&second.id).await;
    assert_eq!(second.handler, "h-lending-2", "the less loaded handler");

    let events = eventually(
        "created and assigned on lending's subjects",
        WAIT,
        || async {
            let events = case_events(&classifier.bus).await;
            (types_of(&events, &case.id) == ["case_created", "case_assigned"]).then_some(events)
        },
    )
    .await;
    let subjects: Vec<&str> = events
        .iter()
        .filter(|(_, e)| e.aggregate_id == case.id)
        .map(|(s, _)| s.as_str())
        .collect();
    assert_eq!(
        subjects,
        [
            "redress.case.v1.lending.created",
            "redress.case.v1.lending.assigned"
        ]
    );
    let versions: Vec<u64> = events
        .iter()
        .filter(|(_, e)| e.aggregate_id == case.id)
        .map(|(_, e)| e.aggregate_version)
        .collect();
    assert_eq!(versions, [1, 2]);
    let cases_for_complaint: HashSet<_> = client
        .list(SPECIALIST, ListCasesRequest::default())
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|c| complaint_of(c).complaint_id == complaint.id)
        .map(|c| c.id)
        .collect();
    assert_eq!(cases_for_complaint.len(), 1);
    // The creation event carries the regime's deadline.
    let created = events.iter().find_map(|(_, e)| match &e.payload {
        Some(Payload::CaseCreated(c)) if e.aggregate_id == case.id => Some(c.clone()),
        _ => None,
    });
    assert!(created.is_some_and(|c| c.decision_due.is_some() && c.regime == "cn-nfra"));
    cases.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn routing_rules_senior_partner_and_triage() {
    let env = TestEnv::new().await;
    let cases = Cases::start(&env).await;
    let classifier = Classifier::new(&env).await;
    let client = cases.client().await;

    let mut critical = Complaint::lending();
    critical.severity = Severity::Critical;
    let mut referred = Complaint::lending();
    referred.channel = Channel::RegulatorReferral;
    referred.regulator_ref = "NFRA-2026-0042";
    let mut fraud = Complaint::lending();
    fraud.cause = "C09";
    let mut partner = Complaint::lending();
    partner.category = "B08";
    partner.product = "账户安全险";
    let mut unsure = Complaint::lending();
    unsure.needs_review = true;
    for c in [&critical, &referred, &fraud, &partner, &unsure] {
        classifier.classified(c).await;
    }
    let critical = client.case_of(&critical.id).await;
    assert_eq!(
        (critical.department.as_str(), critical.queue.as_str()),
        ("lending", "senior")
    );
    assert_eq!(
        critical.handler, "h-lending-senior",
        "only senior handlers work the senior queue"
    );
    let referred = client.case_of(&referred.id).await;
    assert_eq!(referred.queue, "senior");
    assert!(referred.tags.contains(&"senior".to_owned()));
    let fraud = client.case_of(&fraud.id).await;
    assert_eq!(
        (fraud.department.as_str(), fraud.routing_rule.as_str()),
        ("risk-control", "funds-safety")
    );
    let partner = client.case_of(&partner.id).await;
    assert_eq!(partner.department, "partner-insurer-a");
    assert_eq!(partner.partner, "partner-insurer-a");
    assert!(partner.tags.contains(&"partner_evaluation".to_owned()));
    assert_eq!(
        partner.handler, "",
        "no partner handlers: left in the partner's queue"
    );
    // Unsure classification: the triage desk keeps it (首问负责制) until a specialist routes it.
    let held = client.case_of(&unsure.id).await;
    assert_eq!(
        (held.state, held.department.as_str()),
        (CaseState::Registered as i32, "triage")
    );
    let routed = ok(client
        .inner
        .clone()
        .assign(req(
            SPECIALIST,
            AssignRequest {
                case_id: held.id.clone(),
                expected_version: held.version,
                department: "payments".into(),
                reason: "specialist confirmed it is a payment issue".into(),
                ..Default::default()
            },
        ))
        .await);
    assert_eq!(
        (routed.department.as_str(), routed.handler.as_str()),
        ("payments", "h-payments-1")
    );
    // Reassignment keeps the history; a handler cannot pass it to another department.
    let lending_handler = handler("h-payments-1", "payments");
    let status = refused(
        client
            .inner
            .clone()
            .assign(req(
                lending_handler,
                AssignRequest {
                    case_id: routed.id.clone(),
                    expected_version: routed.version,
                    department: "lending".into(),
                    ..Default::default()
                },
            ))
            .await,
    );
    assert_eq!(status.code(), Code::PermissionDenied);
    let moved = ok(client
        .inner
        .clone()
        .assign(req(
            SPECIALIST,
            AssignRequest {
                case_id: routed.id.clone(),
                expected_version: routed.version,
                department: "lending".into(),
                handler: "h-lending-2".into(),
                reason: "wrong department".into(),
            },
        ))
        .await);
    let history: Vec<(&str, &str)> = moved
        .assignments
        .iter()
        .map(|a| (a.department.as_str(), a.handler.as_str()))
        .collect();
    assert_eq!(
        history,
        [("payments", "h-payments-1"), ("lending", "h-lending-2")]
    );
    let events = eventually("the reassignment on lending's subject", WAIT, || async {
        let events = case_events(&classifier.bus).await;
        events
            .iter()
            .any(|(s, e)| s == "redress.case.v1.lending.assigned" && e.aggregate_id == moved.id)
            .then_some(events)
    })
    .await;
    assert!(
        events
            .iter()
            .any(|(s, e)| s == "redress.case.v1.triage.created" && e.aggregate_id == held.id)
    );
    cases.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_case_is_worked_decided_followed_up_reviewed_and_closed() {
    let env = TestEnv::new().await;
    let cases = Cases::start(&env).await;
    let classifier = Classifier::new(&env).await;
    let client = cases.client().await;
    let mut c = client.inner.clone();
    let me = handler("h-lending-1", "lending");
    let complaint = Complaint::lending();
    classifier.classified(&complaint).await;
    let case = client.case_of(&complaint.id).await;

    // Deciding before work starts is refused, naming the state.
    let status = refused(c.record_decision(req(me, decision(&case))).await);
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("state assigned"),
        "{}",
        status.message()
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
    assert_eq!(case.state, CaseState::InProgress as i32);

    // Ask risk-control; the decision is blocked until it answers.
    let case = ok(c
        .request_input(req(
            me,
            RequestInputRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                to_department: "risk-control".into(),
                question: "Was the fee deduction flagged by risk rules?".into(),
                due_at: Some(timestamp(Utc::now() + Duration::days(3))),
            },
        ))
        .await);
    assert_eq!(case.state, CaseState::AwaitingInput as i32);
    let request_id = case.input_requests[0].id.clone();
    let status = refused(c.record_decision(req(me, decision(&case))).await);
    assert!(
        status.message().contains("awaiting_input"),
        "{}",
        status.message()
    );
    // The asked department sees the case and answers; the requester's own department cannot.
    let risk = handler("h-risk-1", "risk-control");
    assert!(client.get(risk, &case.id).await.is_ok());
    let status = refused(
        c.answer_input(req(
            me,
            AnswerInputRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                request_id: request_id.clone(),
                answer: "self-answer".into(),
                r#override: false,
            },
        ))
        .await,
    );
    assert_eq!(status.code(), Code::PermissionDenied);
    let case = ok(c
        .answer_input(req(
            risk,
            AnswerInputRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                request_id,
                answer: "No risk flag; the fee was charged by the pricing rule.".into(),
                r#override: false,
            },
        ))
        .await);
    assert_eq!(case.state, CaseState::InProgress as i32);
    assert!(
        client.get(risk, &case.id).await.is_err(),
        "answered: no longer visible to risk-control"
    );

    // First extension with a reason; the second refused without approval, then approved.
    let before = case.deadlines.clone().unwrap_or_default();
    assert_eq!(before.limit_days, 15);
    let case = ok(c
        .extend(req(
            me,
            ExtendRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                reason: "needs the partner's ledger".into(),
            },
        ))
        .await);
    assert_eq!(case.state, CaseState::Extended as i32);
    assert_eq!(case.deadlines.as_ref().map(|d| d.limit_days), Some(30));
    let status = refused(
        c.extend(req(
            me,
            ExtendRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                reason: "still complex".into(),
            },
        ))
        .await,
    );
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("requires approval"),
        "{}",
        status.message()
    );
    let status = refused(
        c.approve_extension(req(
            me,
            ApproveExtensionRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                reason: "x".into(),
            },
        ))
        .await,
    );
    assert_eq!(
        status.code(),
        Code::PermissionDenied,
        "a handler cannot approve"
    );
    let case = ok(c
        .approve_extension(req(
            COMPLIANCE,
            ApproveExtensionRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                reason: "especially complex, approved".into(),
            },
        ))
        .await);
    assert_eq!(
        case.deadlines
            .as_ref()
            .map(|d| (d.limit_days, d.extension_tier)),
        Some((60, 2))
    );
    let status = refused(
        c.approve_extension(req(
            COMPLIANCE,
            ApproveExtensionRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                reason: "a third".into(),
            },
        ))
        .await,
    );
    assert!(status.message().contains("maximum"), "{}", status.message());

    // The decision needs root-cause tags.
    let mut untagged = decision(&case);
    untagged.root_cause_tags.clear();
    let status = refused(c.record_decision(req(me, untagged)).await);
    assert_eq!(status.code(), Code::InvalidArgument);
    let case = ok(c.record_decision(req(me, decision(&case))).await);
    assert_eq!(case.state, CaseState::Decided as i32);
    let provisional = case
        .deadlines
        .as_ref()
        .and_then(|d| d.review_window_ends)
        .expect("a provisional review window from the decision");

    // Notification tells the consumer (two days later, say): the window runs from then.
    let told = chrono::Utc::now() + chrono::Duration::days(2);
    let sent = redress_runtime::event::new_event(
        "notification",
        uuid::Uuid::now_v7().to_string(),
        2,
        redress_runtime::event::service_actor("notification"),
        redress_proto::events::v1::NotificationSent {
            header: Some(redress_proto::events::v1::NoticeHeader {
                case_id: case.id.clone(),
                kind: redress_proto::events::v1::NoticeKind::Decision as i32,
                ..Default::default()
            }),
            sent_at: Some(redress_runtime::event::timestamp(told)),
            ..Default::default()
        },
    );
    env.bus().await.publish_event(&sent).await.unwrap();
    let case = eventually("the review window runs from the notice", WAIT, || {
        let client = client.clone();
        let id = case.id.clone();
        async move {
            let case = client.get(me, &id).await.ok()?;
            let ends = case.deadlines.as_ref()?.review_window_ends?;
            (ends.seconds > provisional.seconds).then_some(case)
        }
    })
    .await;
    let explanation = &case.deadlines.as_ref().unwrap().explanation;
    assert!(
        explanation
            .iter()
            .any(|e| e.contains("consumer told of the decision")),
        "{explanation:?}"
    );

    // Close needs the follow-up first.
    let status = refused(
        c.close(req(
            me,
            CloseRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                note: String::new(),
            },
        ))
        .await,
    );
    assert!(
        status.message().contains("RecordSatisfaction"),
        "{}",
        status.message()
    );
    let case = ok(c
        .record_satisfaction(req(
            me,
            RecordSatisfactionRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                satisfaction: Satisfaction::Dissatisfied as i32,
                comment: "wants the full amount".into(),
            },
        ))
        .await);
    let case = ok(c
        .close(req(
            me,
            CloseRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                note: "done".into(),
            },
        ))
        .await);
    assert_eq!(case.state, CaseState::Closed as i32);

    // A review within the window reopens it under review with its own deadline.
    let case = ok(c
        .request_review(req(
            SPECIALIST,
            RequestReviewRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                reason: "written request for 核查".into(),
            },
        ))
        .await);
    assert_eq!(case.state, CaseState::UnderReview as i32);
    assert!(
        case.deadlines
            .as_ref()
            .is_some_and(|d| d.review_due.is_some())
    );
    let case = ok(c.record_decision(req(me, decision(&case))).await);
    assert_eq!(case.state, CaseState::Decided as i32);
    let status = refused(
        c.request_review(req(
            SPECIALIST,
            RequestReviewRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                reason: "again".into(),
            },
        ))
        .await,
    );
    assert_eq!(status.code(), Code::FailedPrecondition);
    let case = ok(c
        .record_satisfaction(req(
            me,
            RecordSatisfactionRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                satisfaction: Satisfaction::NoAnswer as i32,
                comment: String::new(),
            },
        ))
        .await);
    let case = ok(c
        .close(req(
            me,
            CloseRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                note: String::new(),
            },
        ))
        .await);

    // The timeline is every event, with versions 1..n; the bus carries the same events.
    let full = match client.get(SPECIALIST, &case.id).await {
        Ok(c) => c,
        Err(s) => panic!("{s}"),
    };
    let versions: Vec<u64> = full.timeline.iter().map(|e| e.aggregate_version).collect();
    assert_eq!(versions, (1..=case.version).collect::<Vec<_>>());
    let expected = [
        "case_created",
        "case_assigned",
        "case_work_started",
        "case_input_requested",
        "case_input_answered",
        "case_extended",
        "case_extended",
        "case_decided",
        "case_satisfaction_recorded",
        "case_closed",
        "case_reopened",
        "case_review_requested",
        "case_decided",
        "case_satisfaction_recorded",
        "case_closed",
    ];
    let timeline: Vec<&str> = full.timeline.iter().map(event_type).collect();
    assert_eq!(timeline, expected);
    let events = eventually("every event on the bus", WAIT, || async {
        let events = case_events(&classifier.bus).await;
        (types_of(&events, &case.id).len() == expected.len()).then_some(events)
    })
    .await;
    let input = events
        .iter()
        .find(|(_, e)| matches!(e.payload, Some(Payload::CaseInputRequested(_))));
    assert_eq!(
        input.map(|(s, _)| s.as_str()),
        Some("redress.case.v1.risk-control.input_requested")
    );
    let extended: Vec<_> = events
        .iter()
        .filter_map(|(_, e)| match &e.payload {
            Some(Payload::CaseExtended(x)) => {
                Some((x.clone(), e.actor.clone().unwrap_or_default()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(extended.len(), 2);
    assert!(extended[0].0.consumer_notice_required && !extended[0].0.decision_due_date.is_empty());
    assert_eq!(
        extended[0].1.subject, "h-lending-1",
        "every call records the actor"
    );
    assert_eq!(
        extended[1].0.approved_by.as_ref().map(|a| a.role.as_str()),
        Some("compliance")
    );
    cases.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn stale_versions_wrong_departments_conflicts_and_bad_input_are_refused() {
    let env = TestEnv::new().await;
    let cases = Cases::start(&env).await;
    let classifier = Classifier::new(&env).await;
    let client = cases.client().await;
    let mut c = client.inner.clone();
    let complaint = Complaint::lending();
    classifier.classified(&complaint).await;
    let case = client.case_of(&complaint.id).await;
    let me = handler("h-lending-1", "lending");

    let note = |v: u64| AddNoteRequest {
        case_id: case.id.clone(),
        expected_version: v,
        text: "called the consumer".into(),
    };
    let noted = ok(c.add_note(req(me, note(case.version))).await);
    assert_eq!(noted.version, case.version + 1);
    let status = refused(c.add_note(req(me, note(case.version))).await);
    assert_eq!(status.code(), Code::Aborted, "{}", status.message());
    assert_eq!(
        refused(c.add_note(req(me, note(0))).await).code(),
        Code::InvalidArgument
    );

    // Another department's handler sees nothing and changes nothing.
    let stranger = handler("h-payments-1", "payments");
    assert_eq!(code(client.get(stranger, &case.id).await), Code::NotFound);
    assert_eq!(
        refused(c.add_note(req(stranger, note(noted.version))).await).code(),
        Code::NotFound
    );
    let listed = client
        .list(stranger, ListCasesRequest::default())
        .await
        .unwrap_or_default();
    assert!(listed.iter().all(|c| c.department == "payments"));
    assert_eq!(
        client
            .list(
                stranger,
                ListCasesRequest {
                    department: "lending".into(),
                    ..Default::default()
                }
            )
            .await
            .err()
            .map(|s| s.code()),
        Some(Code::PermissionDenied)
    );
    // An analyst may read but not work.
    let analyst = As("a-1", &["analyst"], None);
    assert!(client.get(analyst, &case.id).await.is_ok());
    assert_eq!(
        refused(c.add_note(req(analyst, note(noted.version))).await).code(),
        Code::PermissionDenied
    );
    // Garbage ids and missing fields name the field.
    let status = refused(
        c.add_note(req(
            me,
            AddNoteRequest {
                case_id: "nope".into(),
                expected_version: 1,
                text: "x".into(),
            },
        ))
        .await,
    );
    assert!(status.code() == Code::InvalidArgument && status.message().contains("caseId"));
    let status = refused(
        c.add_note(req(
            me,
            AddNoteRequest {
                case_id: case.id.clone(),
                expected_version: noted.version,
                text: " ".into(),
            },
        ))
        .await,
    );
    assert!(status.message().contains("text"));

    // 回避: the assigned handler declares an interest and gives the case up; they cannot get it back.
    let case = ok(c
        .declare_conflict(req(
            me,
            DeclareConflictRequest {
                case_id: case.id.clone(),
                expected_version: noted.version,
                handler: String::new(),
                reason: "the consumer is my relative".into(),
            },
        ))
        .await);
    assert_eq!(case.handler, "h-lending-2");
    assert_eq!(case.conflicts.len(), 1);
    let status = refused(
        c.assign(req(
            SPECIALIST,
            AssignRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                department: "lending".into(),
                handler: "h-lending-1".into(),
                reason: String::new(),
            },
        ))
        .await,
    );
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("回避"), "{}", status.message());
    // A specialist records a conflict found for the new handler too: the case goes on.
    let case = ok(c
        .declare_conflict(req(
            SPECIALIST,
            DeclareConflictRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                handler: "h-lending-2".into(),
                reason: "found: handler's account is the counterparty".into(),
            },
        ))
        .await);
    assert_eq!(case.handler, "h-lending-senior");

    // Wrong transitions name the current state.
    for status in [
        refused(
            c.close(req(
                SPECIALIST,
                CloseRequest {
                    case_id: case.id.clone(),
                    expected_version: case.version,
                    note: String::new(),
                },
            ))
            .await,
        ),
        refused(
            c.answer_input(req(
                SPECIALIST,
                AnswerInputRequest {
                    case_id: case.id.clone(),
                    expected_version: case.version,
                    request_id: uuid::Uuid::now_v7().to_string(),
                    answer: "x".into(),
                    r#override: false,
                },
            ))
            .await,
        ),
        refused(
            c.record_satisfaction(req(
                SPECIALIST,
                RecordSatisfactionRequest {
                    case_id: case.id.clone(),
                    expected_version: case.version,
                    satisfaction: Satisfaction::Satisfied as i32,
                    comment: String::new(),
                },
            ))
            .await,
        ),
        refused(
            c.request_review(req(
                SPECIALIST,
                RequestReviewRequest {
                    case_id: case.id.clone(),
                    expected_version: case.version,
                    reason: "x".into(),
                },
            ))
            .await,
        ),
        refused(
            c.extend(req(
                SPECIALIST,
                ExtendRequest {
                    case_id: case.id.clone(),
                    expected_version: case.version,
                    reason: "x".into(),
                },
            ))
            .await,
        ),
    ] {
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert!(
            status.message().contains("state assigned"),
            "{}",
            status.message()
        );
    }
    cases.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn duplicates_link_merges_close_into_the_survivor_withdrawals_end_at_once() {
    let env = TestEnv::new().await;
    let cases = Cases::start(&env).await;
    let classifier = Classifier::new(&env).await;
    let client = cases.client().await;
    let mut c = client.inner.clone();

    let first = Complaint::lending();
    let repeat = Complaint::lending();
    // Intake suspects the duplicate before either is classified.
    classifier.duplicate(&repeat.id, &first.id).await;
    classifier.classified(&first).await;
    classifier.classified(&repeat).await;
    let survivor = client.case_of(&first.id).await;
    let dup = eventually("the duplicate link", WAIT, || async {
        let case = client.case_of(&repeat.id).await;
        (case.suspected_duplicates == [survivor.id.clone()]).then_some(case)
    })
    .await;
    // Only a specialist merges.
    let status = refused(
        c.merge(req(
            handler("h-lending-1", "lending"),
            MergeRequest {
                case_id: dup.id.clone(),
                expected_version: dup.version,
                survivor_case_id: survivor.id.clone(),
                reason: String::new(),
            },
        ))
        .await,
    );
    assert_eq!(status.code(), Code::PermissionDenied);
    let merged = ok(c
        .merge(req(
            SPECIALIST,
            MergeRequest {
                case_id: dup.id.clone(),
                expected_version: dup.version,
                survivor_case_id: survivor.id.clone(),
                reason: "same matter (Art. 18)".into(),
            },
        ))
        .await);
    assert_eq!(merged.state, CaseState::Merged as i32);
    assert_eq!(merged.merged_into, survivor.id);
    let status = refused(
        c.start_work(req(
            SPECIALIST,
            StartWorkRequest {
                case_id: merged.id.clone(),
                expected_version: merged.version,
            },
        ))
        .await,
    );
    assert!(status.message().contains("state merged"));
    let status = refused(
        c.merge(req(
            SPECIALIST,
            MergeRequest {
                case_id: survivor.id.clone(),
                expected_version: survivor.version,
                survivor_case_id: merged.id.clone(),
                reason: String::new(),
            },
        ))
        .await,
    );
    assert_eq!(
        status.code(),
        Code::FailedPrecondition,
        "not into a merged case"
    );

    // Withdrawal by the complaint event ends the case at once…
    classifier.withdrawn(&first.id).await;
    let withdrawn = eventually("the withdrawal", WAIT, || async {
        let case = client.get(SPECIALIST, &survivor.id).await.ok()?;
        (case.state == CaseState::Withdrawn as i32).then_some(case)
    })
    .await;
    let status = refused(
        c.escalate(req(
            SPECIALIST,
            EscalateRequest {
                case_id: withdrawn.id.clone(),
                expected_version: withdrawn.version,
                target: EscalationTarget::Regulator as i32,
                external_reference: "x".into(),
                note: String::new(),
            },
        ))
        .await,
    );
    assert!(status.message().contains("state withdrawn"));
    // …even when it arrives before the classification…
    let early = Complaint::lending();
    classifier.withdrawn(&early.id).await;
    let pool = pool(&env).await;
    eventually("the early withdrawal recorded", WAIT, || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM early_withdrawals")
            .fetch_one(&pool)
            .await
            .ok()?;
        (n == 1).then_some(())
    })
    .await;
    classifier.classified(&early).await;
    let early_case = eventually("the early-withdrawn case", WAIT, || async {
        let case = client.case_of(&early.id).await;
        (case.state == CaseState::Withdrawn as i32).then_some(case)
    })
    .await;
    assert!(
        early_case
            .deadlines
            .is_some_and(|d| d.decision_due.is_some())
    );
    // …and through the API; escalation is a recorded state with its reference.
    let third = Complaint::lending();
    classifier.classified(&third).await;
    let third = client.case_of(&third.id).await;
    let third = ok(c
        .start_work(req(
            SPECIALIST,
            StartWorkRequest {
                case_id: third.id.clone(),
                expected_version: third.version,
            },
        ))
        .await);
    let escalated = ok(c
        .escalate(req(
            SPECIALIST,
            EscalateRequest {
                case_id: third.id.clone(),
                expected_version: third.version,
                target: EscalationTarget::Mediation as i32,
                external_reference: "调解中心-2026-17".into(),
                note: "consumer chose mediation".into(),
            },
        ))
        .await);
    assert_eq!(escalated.state, CaseState::Escalated as i32);
    assert_eq!(
        escalated
            .escalation
            .as_ref()
            .map(|e| e.external_reference.as_str()),
        Some("调解中心-2026-17")
    );
    assert!(
        escalated.deadlines.as_ref().is_some_and(|d| d.paused),
        "mediation stops the clock (Art. 23)"
    );
    let done = ok(c
        .withdraw(req(
            SPECIALIST,
            WithdrawRequest {
                case_id: escalated.id.clone(),
                expected_version: escalated.version,
                reason: "settled in mediation".into(),
            },
        ))
        .await);
    assert_eq!(done.state, CaseState::Withdrawn as i32);
    let _ = ClockPauseReason::ExternalAppraisal;
    cases.stop().await;
    env.cleanup().await;
}
