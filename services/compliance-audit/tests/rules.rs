//! The compliance rules over real NATS, Postgres and gRPC: violations raised as events are
//! logged and by the timer, once each; the worklist (list, acknowledge, resolve) with each
//! action logged with its actor; the volume rule; reconciliation of the streams with the log;
//! the monthly inspection sample drawn again by a third party from an export.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use chrono::Utc;
use prost::Message as _;
use redress_compliance_audit::{
    inspection::{self, Inspection},
    rules::{Rules, SHIPPED},
    violations::Judge,
};
use redress_proto::{
    audit::v1::{
        AcknowledgeViolationRequest, DrawInspectionSampleRequest, ListViolationsRequest,
        ReconcileRequest, RecordInspectionRequest, ResolveViolationRequest, Violation,
        audit_service_client::AuditServiceClient,
    },
    common::v1::{Actor, Severity},
    events::v1::{
        CaseClosed, CaseCreated, CaseDecided, CaseExtended, CaseHeader, ChecklistScore,
        ContactRead, DecisionOutcome, Event, NoticeHeader, NoticeKind, NotificationSent, Remedy,
        event::Payload,
    },
};
use redress_runtime::{
    NewEvent,
    event::{new_event, service_actor, timestamp},
    testing::{TestEnv, authed, eventually},
};
use sqlx::PgPool;
use support::*;
use tonic::{Code, transport::Channel};

fn as_compliance<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    compliance(request.metadata_mut());
    request
}

fn header(case: &str, complaint: &str, department: &str) -> Option<CaseHeader> {
    Some(CaseHeader {
        case_id: case.to_owned(),
        complaint_id: complaint.to_owned(),
        department: department.into(),
        handler: "h1".into(),
        severity: Severity::High.into(),
        ..Default::default()
    })
}

fn case_event(case: &str, version: u64, payload: impl redress_proto::EventPayload) -> NewEvent {
    new_event(
        "case-coordination",
        case.to_owned(),
        version,
        service_actor("case-coordination"),
        payload,
    )
}

async fn list(
    client: &AuditServiceClient<Channel>,
    request: ListViolationsRequest,
) -> Vec<Violation> {
    client
        .clone()
        .list_violations(as_compliance(request))
        .await
        .unwrap()
        .into_inner()
        .violations
}

fn rules_of(violations: &[Violation]) -> Vec<String> {
    let mut rules: Vec<String> = violations
        .iter()
        .map(|v| v.detected.clone().unwrap_or_default().rule)
        .collect();
    rules.sort();
    rules
}

/// The logged events (decoded) on subjects starting with `prefix`.
async fn logged_on(pool: &PgPool, prefix: &str) -> Vec<Event> {
    let leaves: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT leaf FROM log_entries WHERE starts_with(subject, $1) ORDER BY leaf_index",
    )
    .bind(prefix)
    .fetch_all(pool)
    .await
    .unwrap();
    leaves
        .iter()
        .map(|l| Event::decode(l.as_slice()).unwrap())
        .collect()
}

async fn count(pool: &PgPool, sql: &str, bind: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(bind)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn violations_are_raised_once_logged_and_worked_through_the_worklist() {
    let env = TestEnv::new().await;
    let (_, key) = key_file();
    let audit = start_with(&env, &key, |_| {}).await;
    let bus = env.bus().await;
    let pool = env.pool("compliance_audit").await;
    let (late, late_complaint) = (id(1), id(2));
    let (fine, fine_complaint) = (id(3), id(4));
    // Due in two seconds: only the timer can find the decision missing.
    let due = timestamp(Utc::now() + chrono::Duration::seconds(2));

    let late_created = case_event(
        &late,
        1,
        CaseCreated {
            header: header(&late, &late_complaint, "triage"),
            decision_due: Some(due),
            ..Default::default()
        },
    );
    let unapproved = case_event(
        &late,
        2,
        CaseExtended {
            header: header(&late, &late_complaint, "cards"),
            tier: 2,
            approved_by: Some(Actor {
                subject: "h1".into(),
                role: "handler".into(),
                department: "cards".into(),
            }),
            decision_due: Some(due),
            ..Default::default()
        },
    );
    let fine_events = [
        received(&fine_complaint),
        case_event(
            &fine,
            1,
            CaseCreated {
                header: header(&fine, &fine_complaint, "triage"),
                decision_due: Some(due),
                ..Default::default()
            },
        ),
        case_event(
            &fine,
            2,
            CaseDecided {
                header: header(&fine, &fine_complaint, "cards"),
                outcome: DecisionOutcome::Upheld.into(),
                remedy: Some(Remedy {
                    action: "refund the duplicate deduction".into(),
                    ..Default::default()
                }),
                explanation: "the ledger shows the card was debited twice".into(),
                ..Default::default()
            },
        ),
        new_event(
            "notification",
            id(5),
            1,
            service_actor("notification"),
            NotificationSent {
                header: Some(NoticeHeader {
                    delivery_id: id(5),
                    case_id: fine.clone(),
                    complaint_id: fine_complaint.clone(),
                    kind: NoticeKind::Decision.into(),
                    due_by: Some(due),
                    ..Default::default()
                }),
                sent_at: Some(timestamp(Utc::now())),
                ..Default::default()
            },
        ),
        new_event(
            "intake",
            fine_complaint.clone(),
            2,
            service_actor("intake"),
            ContactRead {
                complaint_id: fine_complaint.clone(),
                reader: Some(service_actor("notification")),
                purpose: "decision notice".into(),
            },
        ),
    ];
    for event in [received(&late_complaint), late_created.clone(), unapproved]
        .iter()
        .chain(&fine_events)
    {
        bus.publish_event(event).await.unwrap();
    }

    // At once: the unapproved extension. By the timer, after the deadline: the decision.
    let open = eventually(
        "both violations of the late case",
        Duration::from_secs(60),
        || {
            let client = audit.client.clone();
            async move {
                let open = list(
                    &client,
                    ListViolationsRequest {
                        state: "open".into(),
                        ..Default::default()
                    },
                )
                .await;
                (rules_of(&open) == ["decision_late", "extension_unapproved"]).then_some(open)
            }
        },
    )
    .await;
    for violation in &open {
        let detected = violation.detected.clone().unwrap();
        assert_eq!(
            (detected.case_id.as_str(), detected.complaint_id.as_str()),
            (late.as_str(), late_complaint.as_str())
        );
        assert!(detected.article.contains("第十八条"), "{detected:?}");
        assert_eq!(detected.severity(), Severity::High);
    }
    // Judged again (the same event republished under a new id): raised once all the same.
    let mut again = late_created.clone().into_event();
    again.id = id(6);
    let mut message = redress_runtime::OutboxMessage::event(&late_created);
    message.id = uuid::Uuid::parse_str(&id(6)).unwrap();
    message.payload = again.encode_to_vec();
    bus.publish(redress_runtime::bus::Outgoing::from(message))
        .await
        .unwrap();
    eventually(
        "the fine case and the republished event logged",
        Duration::from_secs(30),
        || {
            let pool = pool.clone();
            let fine_complaint = fine_complaint.clone();
            async move {
                let fine = count(
                    &pool,
                    "SELECT count(*) FROM log_entries WHERE complaint_id = $1",
                    &fine_complaint,
                )
                .await;
                let again = count(
                    &pool,
                    "SELECT count(*) FROM log_entries WHERE entry_key = $1",
                    &id(6),
                )
                .await;
                (fine == 5 && again == 1).then_some(())
            }
        },
    )
    .await;
    let raised = count(
        &pool,
        "SELECT count(*) FROM violations WHERE case_id = $1",
        &late,
    )
    .await;
    assert_eq!(raised, 2, "each finding once");
    let fine_raised = count(
        &pool,
        "SELECT count(*) FROM violations WHERE complaint_id = $1",
        &fine_complaint,
    )
    .await;
    assert_eq!(
        fine_raised, 0,
        "a case decided in full and told in time breaks no rule"
    );
    // The violations are events on the bus, and so in the log.
    let detected = eventually(
        "the violation events logged",
        Duration::from_secs(30),
        || {
            let pool = pool.clone();
            async move {
                let events = logged_on(&pool, "redress.audit.v1.violation.").await;
                (events.len() == 2).then_some(events)
            }
        },
    )
    .await;
    assert!(
        detected
            .iter()
            .all(|e| matches!(e.payload, Some(Payload::ViolationDetected(_))))
    );

    worklist_actions(&audit.client, &pool, &open).await;
    audit.stop().await;
    env.cleanup().await;
}

/// Acknowledge and resolve, who may, bad input, and each action in the log with its actor.
async fn worklist_actions(client: &AuditServiceClient<Channel>, pool: &PgPool, open: &[Violation]) {
    let mut client = client.clone();
    let target = open[0].detected.clone().unwrap().violation_id;
    let denied = client
        .acknowledge_violation(authed(
            AcknowledgeViolationRequest {
                violation_id: target.clone(),
                note: String::new(),
            },
            &["handler"],
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let bad = client
        .acknowledge_violation(as_compliance(AcknowledgeViolationRequest {
            violation_id: "nine".into(),
            note: String::new(),
        }))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("violation_id"), "{}", bad.message());

    let acknowledged = client
        .acknowledge_violation(as_compliance(AcknowledgeViolationRequest {
            violation_id: target.clone(),
            note: "asking the department".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            acknowledged.state.as_str(),
            acknowledged.acknowledged_by.as_str()
        ),
        ("acknowledged", "auditor")
    );
    let no_reason = client
        .resolve_violation(as_compliance(ResolveViolationRequest {
            violation_id: target.clone(),
            reason: "  ".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(no_reason.code(), Code::InvalidArgument);
    assert!(
        no_reason.message().contains("reason"),
        "{}",
        no_reason.message()
    );
    let reason = "decided on day 17; the department's queue was re-staffed";
    let resolved = client
        .resolve_violation(as_compliance(ResolveViolationRequest {
            violation_id: target.clone(),
            reason: reason.into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (resolved.state.as_str(), resolved.resolution.as_str()),
        ("resolved", reason)
    );
    let twice = client
        .resolve_violation(as_compliance(ResolveViolationRequest {
            violation_id: target.clone(),
            reason: reason.into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition);
    let still_open = list(
        &client,
        ListViolationsRequest {
            state: "open".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(still_open.len(), 1);
    let bad_state = client
        .list_violations(as_compliance(ListViolationsRequest {
            state: "closed".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert!(
        bad_state.message().contains("state"),
        "{}",
        bad_state.message()
    );

    let actions = eventually(
        "both worklist actions logged",
        Duration::from_secs(30),
        || {
            let pool = pool.clone();
            async move {
                let events = logged_on(&pool, "redress.audit.v1.worklist.").await;
                (events.len() == 2).then_some(events)
            }
        },
    )
    .await;
    for event in &actions {
        let actor = event.actor.clone().unwrap_or_default();
        assert_eq!(
            (actor.subject.as_str(), actor.role.as_str()),
            ("auditor", "compliance")
        );
        assert_eq!(event.aggregate_id, target);
    }
    assert!(
        matches!(&actions[1].payload, Some(Payload::ViolationResolved(r)) if r.reason == reason)
    );
}

fn read_by(complaint: &str, reader: Actor) -> Event {
    new_event(
        "intake",
        complaint.to_owned(),
        2,
        service_actor("intake"),
        ContactRead {
            complaint_id: complaint.to_owned(),
            reader: Some(reader),
            purpose: "decision notice".into(),
        },
    )
    .into_event()
}

#[tokio::test]
async fn contact_read_volume_fires_above_the_policy_and_not_at_it() {
    let env = TestEnv::new().await;
    let (_, key) = key_file();
    let audit = start(&env, &key).await; // its schema, migrated
    let pool = env.pool("compliance_audit").await;
    let rules =
        Rules::parse(&SHIPPED.replace("max_reads_per_day = 500", "max_reads_per_day = 2")).unwrap();
    let judge = Judge {
        rules,
        settle: Duration::from_secs(1),
    };
    let notification = service_actor("notification");
    let specialist = Actor {
        subject: "s-7".into(),
        role: "specialist".into(),
        department: String::new(),
    };
    let mut conn = pool.acquire().await.unwrap();
    let mut raised = Vec::new();
    for (n, reader) in [
        &notification,
        &specialist,
        &notification,
        &specialist,
        &notification,
    ]
    .into_iter()
    .enumerate()
    {
        raised.push(
            judge
                .logged(&mut conn, &read_by(&id(100 + n as u64), reader.clone()))
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        raised,
        [0, 0, 0, 0, 1],
        "the third read by one reader in a day, not the second"
    );
    let subjects: Vec<String> =
        sqlx::query_scalar("SELECT subject FROM violations WHERE rule = 'contact_read_volume'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        subjects,
        [format!("service:notification:{}", Utc::now().date_naive())]
    );
    // A fourth read the same day is the same finding.
    assert_eq!(
        judge
            .logged(&mut conn, &read_by(&id(110), notification.clone()))
            .await
            .unwrap(),
        0
    );
    drop(conn);
    audit.stop().await;
    env.cleanup().await;
}

/// Runs `statements` with the log's append-only triggers disabled, as a superuser could.
async fn bypass(pool: &PgPool, statements: &[&str]) {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("ALTER TABLE log_entries DISABLE TRIGGER USER")
        .execute(&mut *tx)
        .await
        .unwrap();
    for statement in statements {
        sqlx::query(sqlx::AssertSqlSafe(statement.to_string()))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    sqlx::query("ALTER TABLE log_entries ENABLE TRIGGER USER")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn reconciliation_reports_a_lost_entry_and_an_unexplained_one() {
    let env = TestEnv::new().await;
    let (_, key) = key_file();
    let audit = start(&env, &key).await;
    let bus = env.bus().await;
    let pool = env.pool("compliance_audit").await;
    let events = many(3, 200);
    for event in &events {
        bus.publish_event(event).await.unwrap();
    }
    let mut client = audit.client.clone();
    // Once the log's consumer has acknowledged all three, the two agree.
    let clean = eventually(
        "the streams and the log agree",
        Duration::from_secs(30),
        || {
            let mut client = client.clone();
            async move {
                let reply = client
                    .reconcile(as_compliance(ReconcileRequest {}))
                    .await
                    .ok()?
                    .into_inner();
                let complaints = reply
                    .report
                    .clone()?
                    .streams
                    .into_iter()
                    .find(|s| s.stream == "COMPLAINT_EVENTS")?;
                (reply.consistent && complaints.messages == 3).then_some(complaints)
            }
        },
    )
    .await;
    assert!(clean.missing_sequences.is_empty() && clean.unexplained_entries.is_empty());

    // A DBA removes the second event's entry, and adds one that no stream message is.
    let second = events[1].id.clone();
    bypass(
        &pool,
        &[&format!(
            "DELETE FROM log_entries WHERE entry_key = '{second}'"
        )],
    )
    .await;
    let sequence: i64 = 2;
    let forged = redress_compliance_audit::store::NewEntry {
        entry_key: "forged-entry".into(),
        stream: "COMPLAINT_EVENTS".into(),
        subject: "redress.complaint.v1.received".into(),
        stream_sequence: sequence,
        event_type: "complaint_received".into(),
        case_id: None,
        complaint_id: None,
        leaf: b"not an event the bus carried".to_vec(),
    };
    let mut tx = pool.begin().await.unwrap();
    redress_compliance_audit::store::append(&mut tx, &[forged])
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let reply = client
        .reconcile(as_compliance(ReconcileRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(!reply.consistent);
    let complaints = reply
        .report
        .unwrap()
        .streams
        .into_iter()
        .find(|s| s.stream == "COMPLAINT_EVENTS")
        .unwrap();
    assert_eq!(
        complaints.missing_sequences,
        [2],
        "the message whose entry was removed"
    );
    assert_eq!(complaints.unexplained_entries, ["forged-entry"]);
    // Gaps are violations, not silence.
    let gaps = list(
        &client,
        ListViolationsRequest {
            rule: "log_gap".into(),
            ..Default::default()
        },
    )
    .await;
    let mut details: Vec<String> = gaps
        .iter()
        .map(|v| v.detected.clone().unwrap().detail)
        .collect();
    details.sort();
    assert_eq!(details.len(), 2, "{details:?}");
    assert!(
        details[0].contains("COMPLAINT_EVENTS message 2"),
        "{details:?}"
    );
    assert!(details[1].contains("forged-entry"), "{details:?}");
    let denied = client
        .reconcile(authed(ReconcileRequest {}, &["analyst"]))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    audit.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn the_inspection_sample_is_stratified_reproducible_and_scored_into_the_log() {
    let env = TestEnv::new().await;
    let (signer, key) = key_file();
    let audit = start_with(&env, &key, |a| {
        a.rules = false;
        a.reviewers = vec!["auditor".into(), "auditor-2".into()];
    })
    .await;
    let bus = env.bus().await;
    let pool = env.pool("compliance_audit").await;
    // Five cards cases (one stratum) and one loans case, all closed.
    let mut published = 0;
    for n in 0..6u64 {
        let (case, complaint) = (id(300 + n), id(400 + n));
        let department = if n == 5 { "loans" } else { "cards" };
        let created = case_event(
            &case,
            1,
            CaseCreated {
                header: header(&case, &complaint, "triage"),
                category_code: "B01".into(),
                ..Default::default()
            },
        );
        let closed = case_event(
            &case,
            2,
            CaseClosed {
                header: header(&case, &complaint, department),
                note: String::new(),
            },
        );
        bus.publish_event(&created).await.unwrap();
        bus.publish_event(&closed).await.unwrap();
        published += 2;
    }
    let size = checkpointed(&audit.client, published).await;
    let month = Utc::now().format("%Y-%m").to_string();
    let inspection = Inspection::shipped().unwrap();
    // Drawn as if the month had ended (the API refuses a month still running).
    let far = Utc::now() + chrono::Duration::days(40);
    let reviewers = ["auditor".to_owned(), "auditor-2".to_owned()];
    let sample = inspection::sample(&pool, &inspection, &reviewers, &month, far)
        .await
        .unwrap();
    assert_eq!(sample.population, 6);
    assert_eq!(sample.checkpoint_size, size);
    let departments: Vec<&str> = sample.cases.iter().map(|c| c.department.as_str()).collect();
    assert_eq!(
        departments,
        ["cards", "cards", "loans"],
        "two per stratum at most"
    );

    // Anyone: from the export alone, the signed root gives the seed and the same sample.
    let export = export(&audit.client).await;
    let note = export
        .checkpoints
        .iter()
        .find(|n| n.lines().nth(1) == Some(&size.to_string()))
        .unwrap();
    let verifier =
        redress_compliance_audit::NoteVerifier::parse(&signer.verifier().encode()).unwrap();
    let checkpoint = redress_compliance_audit::note::Checkpoint::open(note, &verifier).unwrap();
    let events: Vec<Event> = export.entries[..size as usize]
        .iter()
        .filter_map(|e| {
            use base64::Engine as _;
            let leaf = base64::engine::general_purpose::STANDARD
                .decode(&e.leaf)
                .ok()?;
            Event::decode(leaf.as_slice()).ok()
        })
        .collect();
    let (start, end) = inspection::bounds(&month).unwrap();
    let seed = inspection::seed(&month, &checkpoint.root);
    assert_eq!(seed.to_vec(), sample.seed);
    let again = inspection::draw(
        &seed,
        inspection.per_stratum(),
        inspection::candidates(&events, start, end),
        &reviewers,
    );
    assert_eq!(again, sample.cases);

    // Over gRPC: the drawn sample is returned as it was; a running month cannot be drawn.
    let mut client = audit.client.clone();
    let served = client
        .draw_inspection_sample(as_compliance(DrawInspectionSampleRequest {
            month: month.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .sample
        .unwrap();
    assert_eq!(served, sample);
    let next = (Utc::now() + chrono::Duration::days(32))
        .format("%Y-%m")
        .to_string();
    let early = client
        .draw_inspection_sample(as_compliance(DrawInspectionSampleRequest { month: next }))
        .await
        .unwrap_err();
    assert_eq!(early.code(), Code::FailedPrecondition);

    // Scoring: the assigned reviewer, every item within its maximum.
    let mine = sample
        .cases
        .iter()
        .find(|c| c.reviewer == "auditor")
        .unwrap();
    let scores = |first: u32| -> Vec<ChecklistScore> {
        inspection
            .items
            .iter()
            .enumerate()
            .map(|(i, item)| ChecklistScore {
                item: item.id.clone(),
                score: if i == 0 { first } else { item.max },
                note: String::new(),
            })
            .collect()
    };
    let too_high = client
        .record_inspection(as_compliance(RecordInspectionRequest {
            month: month.clone(),
            case_id: mine.case_id.clone(),
            scores: scores(9),
            findings: String::new(),
        }))
        .await
        .unwrap_err();
    assert!(
        too_high.message().contains("scores[0].score"),
        "{}",
        too_high.message()
    );
    let other = sample
        .cases
        .iter()
        .find(|c| c.reviewer == "auditor-2")
        .unwrap();
    let not_mine = client
        .record_inspection(as_compliance(RecordInspectionRequest {
            month: month.clone(),
            case_id: other.case_id.clone(),
            scores: scores(1),
            findings: String::new(),
        }))
        .await
        .unwrap_err();
    assert_eq!(not_mine.code(), Code::PermissionDenied);
    let scored = client
        .record_inspection(as_compliance(RecordInspectionRequest {
            month: month.clone(),
            case_id: mine.case_id.clone(),
            scores: scores(1),
            findings: "the decision notice omits the review right".into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .scored
        .unwrap();
    let maximum: u32 = inspection.items.iter().map(|i| i.max).sum();
    assert_eq!((scored.total, scored.maximum), (maximum - 1, maximum));
    let logged = eventually(
        "the sample and the score logged",
        Duration::from_secs(30),
        || {
            let pool = pool.clone();
            async move {
                let events = logged_on(&pool, "redress.audit.v1.inspection.").await;
                (events.len() == 2).then_some(events)
            }
        },
    )
    .await;
    assert!(matches!(&logged[0].payload, Some(Payload::InspectionSampled(s)) if *s == sample));
    assert!(matches!(&logged[1].payload, Some(Payload::InspectionScored(s)) if *s == scored));
    assert_eq!(
        logged[1].actor.clone().unwrap_or_default().subject,
        "auditor"
    );
    audit.stop().await;
    env.cleanup().await;
}
