//! Each rule over a small history: once where it must fire, once where it must not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use redress_proto::{
    common::v1::Actor,
    events::v1::{
        CaseAssigned, CaseClockPaused, CaseClosed, CaseConflictDeclared, CaseCreated, CaseDecided,
        CaseExtended, CaseHeader, CaseReviewRequested, CaseSatisfactionRecorded, CaseWithdrawn,
        ComplaintReceived, ComplaintSummary, ContactRead, DecisionOutcome, Event, NoticeHeader,
        NoticeKind, NotificationSent, Remedy, event::Payload,
    },
};
use redress_runtime::event::timestamp;

use super::{Facts, Outcome, evaluate};
use crate::rules::Rules;

const SETTLE: Duration = Duration::from_secs(300);
const CASE: &str = "case-1";
const COMPLAINT: &str = "complaint-1";

fn t(day: i64, hour: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap()
        + chrono::Duration::days(day)
        + chrono::Duration::hours(hour)
}

fn ev(n: u32, at: DateTime<Utc>, payload: Payload) -> Event {
    Event {
        id: format!("event-{n}"),
        occurred_at: Some(timestamp(at)),
        source: "case-coordination".into(),
        aggregate_id: CASE.into(),
        aggregate_version: u64::from(n),
        actor: None,
        payload: Some(payload),
    }
}

fn h(department: &str, handler: &str) -> Option<CaseHeader> {
    Some(CaseHeader {
        case_id: CASE.into(),
        complaint_id: COMPLAINT.into(),
        department: department.into(),
        handler: handler.into(),
        ..Default::default()
    })
}

fn received(at: DateTime<Utc>) -> Event {
    let mut e = ev(
        0,
        at,
        Payload::ComplaintReceived(ComplaintReceived {
            complaint: Some(ComplaintSummary {
                complaint_id: COMPLAINT.into(),
                ..Default::default()
            }),
        }),
    );
    e.aggregate_id = COMPLAINT.into();
    e.source = "intake".into();
    e
}

fn created(n: u32, at: DateTime<Utc>, due: DateTime<Utc>) -> Event {
    ev(
        n,
        at,
        Payload::CaseCreated(CaseCreated {
            header: h("triage", ""),
            decision_due: Some(timestamp(due)),
            ..Default::default()
        }),
    )
}

fn decided(n: u32, at: DateTime<Utc>, review: bool) -> Event {
    ev(
        n,
        at,
        Payload::CaseDecided(CaseDecided {
            header: h("cards", "h1"),
            outcome: DecisionOutcome::Upheld.into(),
            remedy: Some(Remedy {
                action: "refund the duplicate deduction".into(),
                ..Default::default()
            }),
            explanation: "verified the duplicate deduction against the ledger".into(),
            review,
            ..Default::default()
        }),
    )
}

fn sent(n: u32, kind: NoticeKind, sent_at: DateTime<Utc>, due_by: Option<DateTime<Utc>>) -> Event {
    let mut e = ev(
        n,
        sent_at,
        Payload::NotificationSent(NotificationSent {
            header: Some(NoticeHeader {
                delivery_id: format!("delivery-{n}"),
                case_id: CASE.into(),
                complaint_id: COMPLAINT.into(),
                kind: kind.into(),
                due_by: due_by.map(timestamp),
                ..Default::default()
            }),
            sent_at: Some(timestamp(sent_at)),
            ..Default::default()
        }),
    );
    e.source = "notification".into();
    e
}

fn extended(
    n: u32,
    at: DateTime<Utc>,
    tier: u32,
    approver: Option<&str>,
    due: DateTime<Utc>,
) -> Event {
    ev(
        n,
        at,
        Payload::CaseExtended(CaseExtended {
            header: h("cards", "h1"),
            tier,
            approved_by: approver.map(|role| Actor {
                subject: "boss".into(),
                role: role.into(),
                department: String::new(),
            }),
            decision_due: Some(timestamp(due)),
            consumer_notice_required: true,
            ..Default::default()
        }),
    )
}

fn assigned(n: u32, at: DateTime<Utc>, from: &str, to: &str, handler: &str) -> Event {
    ev(
        n,
        at,
        Payload::CaseAssigned(CaseAssigned {
            header: h(to, handler),
            from_department: from.into(),
            rule: "r1".into(),
            ..Default::default()
        }),
    )
}

fn read(n: u32, at: DateTime<Utc>, role: &str, purpose: &str) -> Event {
    let mut e = ev(
        n,
        at,
        Payload::ContactRead(ContactRead {
            complaint_id: COMPLAINT.into(),
            reader: Some(Actor {
                subject: role.into(),
                role: role.into(),
                department: String::new(),
            }),
            purpose: purpose.into(),
        }),
    );
    e.aggregate_id = COMPLAINT.into();
    e.source = "intake".into();
    e
}

fn judge(events: Vec<Event>, now: DateTime<Utc>) -> Outcome {
    let rules = Rules::shipped().unwrap();
    evaluate(&rules, &Facts { events }, now, SETTLE)
}

/// The rules that fired.
fn fired(events: Vec<Event>, now: DateTime<Utc>) -> Vec<&'static str> {
    let mut rules: Vec<&str> = judge(events, now).findings.iter().map(|f| f.rule).collect();
    rules.sort_unstable();
    rules
}

/// A clean history: received, created, assigned, decided and told in time, followed up,
/// closed; a notice sent in time; the contact read by notification with a purpose.
fn clean() -> Vec<Event> {
    vec![
        received(t(0, 0)),
        created(1, t(0, 1), t(15, 0)),
        assigned(2, t(0, 2), "triage", "cards", "h1"),
        read(3, t(10, 0), "service:notification", "decision notice"),
        decided(4, t(10, 0), false),
        sent(5, NoticeKind::Decision, t(10, 1), Some(t(15, 0))),
        ev(
            6,
            t(12, 0),
            Payload::CaseSatisfactionRecorded(CaseSatisfactionRecorded {
                header: h("cards", "h1"),
                ..Default::default()
            }),
        ),
        ev(
            7,
            t(12, 1),
            Payload::CaseClosed(CaseClosed {
                header: h("cards", "h1"),
                note: String::new(),
            }),
        ),
    ]
}

#[test]
fn a_clean_history_breaks_no_rule() {
    assert_eq!(fired(clean(), t(90, 0)), Vec::<&str>::new());
}

#[test]
fn decision_late_fires_on_a_late_decision_and_on_none_by_the_deadline() {
    let mut late = clean();
    late[4] = decided(4, t(16, 0), false);
    late[5] = sent(5, NoticeKind::Decision, t(16, 1), Some(t(15, 0)));
    let rules = fired(late, t(90, 0));
    assert!(rules.contains(&"decision_late"), "{rules:?}");

    let undecided = vec![received(t(0, 0)), created(1, t(0, 1), t(15, 0))];
    assert_eq!(fired(undecided.clone(), t(15, 1)), ["decision_late"]);
}

#[test]
fn decision_late_waits_for_the_deadline_a_stopped_clock_and_a_withdrawal() {
    let undecided = vec![received(t(0, 0)), created(1, t(0, 1), t(15, 0))];
    let before = judge(undecided.clone(), t(14, 0));
    assert!(before.findings.is_empty(), "{before:?}");
    let settled = t(15, 0) + chrono::Duration::from_std(SETTLE).unwrap();
    assert_eq!(before.wake, [settled], "woken when the absence is settled");
    // Within the settle period after the deadline: not yet.
    assert!(fired(undecided.clone(), t(15, 0) + chrono::Duration::seconds(60)).is_empty());

    let mut paused = undecided.clone();
    paused.push(ev(
        2,
        t(5, 0),
        Payload::CaseClockPaused(CaseClockPaused {
            header: h("cards", "h1"),
            stops_clock: true,
            ..Default::default()
        }),
    ));
    assert!(fired(paused, t(20, 0)).is_empty());

    let mut withdrawn = undecided;
    withdrawn.push(ev(
        2,
        t(5, 0),
        Payload::CaseWithdrawn(CaseWithdrawn {
            header: h("cards", "h1"),
            reason: "resolved with the consumer".into(),
        }),
    ));
    assert!(fired(withdrawn, t(20, 0)).is_empty());
}

#[test]
fn decision_not_told_fires_without_a_decision_notice_by_the_deadline() {
    let mut untold = clean();
    untold.remove(5);
    assert_eq!(fired(untold.clone(), t(16, 0)), ["decision_not_told"]);
    // Told after the deadline is not told in time.
    untold.push(sent(9, NoticeKind::Decision, t(15, 2), None));
    assert_eq!(fired(untold, t(16, 0)), ["decision_not_told"]);
    // A notice of another kind does not count; before the deadline nothing is judged.
    let mut other = clean();
    other[5] = sent(5, NoticeKind::Receipt, t(10, 1), None);
    assert!(fired(other, t(14, 0)).is_empty());
}

#[test]
fn extension_unapproved_fires_for_a_second_tier_without_an_allowed_approver() {
    let mut history = clean();
    history.insert(4, extended(8, t(9, 0), 2, Some("handler"), t(60, 0)));
    history.push(sent(9, NoticeKind::Extended, t(9, 1), None));
    assert_eq!(fired(history.clone(), t(90, 0)), ["extension_unapproved"]);
    history[4] = extended(8, t(9, 0), 2, None, t(60, 0));
    assert_eq!(fired(history.clone(), t(90, 0)), ["extension_unapproved"]);

    history[4] = extended(8, t(9, 0), 2, Some("senior_management"), t(60, 0));
    assert!(fired(history.clone(), t(90, 0)).is_empty());
    history[4] = extended(8, t(9, 0), 1, None, t(30, 0));
    assert!(
        fired(history, t(90, 0)).is_empty(),
        "tier 1 needs no approval"
    );
}

#[test]
fn extension_not_told_fires_without_an_extension_notice_by_the_new_deadline() {
    let mut history = clean();
    history.insert(4, extended(8, t(9, 0), 1, None, t(30, 0)));
    assert_eq!(fired(history.clone(), t(31, 0)), ["extension_not_told"]);
    assert!(
        fired(history.clone(), t(20, 0)).is_empty(),
        "not before the deadline"
    );
    history.push(sent(9, NoticeKind::Extended, t(9, 1), None));
    assert!(fired(history, t(31, 0)).is_empty());
}

#[test]
fn notice_late_fires_on_a_late_send_and_on_no_send_by_the_period() {
    let mut history = clean();
    history.push(sent(9, NoticeKind::Receipt, t(2, 0), Some(t(1, 0))));
    assert_eq!(fired(history, t(90, 0)), ["notice_late"]);
    // A failed attempt with a period and no send at all.
    let mut failed = clean();
    let mut e = sent(9, NoticeKind::Receipt, t(0, 2), Some(t(1, 0)));
    if let Some(Payload::NotificationSent(s)) = e.payload.take() {
        e.payload = Some(Payload::NotificationFailed(
            redress_proto::events::v1::NotificationFailed {
                header: s.header,
                reason: "smtp 550".into(),
                ..Default::default()
            },
        ));
    }
    failed.push(e);
    assert_eq!(fired(failed.clone(), t(2, 0)), ["notice_late"]);
    assert!(
        fired(failed, t(0, 3)).is_empty(),
        "not before its period ends"
    );
    // The clean history's decision notice went out within its period.
}

#[test]
fn conflicted_handler_fires_when_the_declared_handler_acts_afterwards() {
    let mut history = clean();
    let declared = ev(
        8,
        t(1, 0),
        Payload::CaseConflictDeclared(CaseConflictDeclared {
            header: h("cards", "h1"),
            conflicted_handler: "h1".into(),
            reason: "related to the consumer".into(),
        }),
    );
    history.insert(3, declared.clone());
    // h1 then decides.
    assert!(fired(history, t(90, 0)).contains(&"conflicted_handler"));

    let mut reassigned = clean();
    reassigned.insert(3, declared);
    reassigned.insert(4, assigned(9, t(1, 1), "cards", "cards", "h2"));
    reassigned[6] = {
        let mut d = decided(4, t(10, 0), false);
        if let Some(Payload::CaseDecided(p)) = d.payload.as_mut() {
            p.header = h("cards", "h2");
        }
        d
    };
    assert!(fired(reassigned, t(90, 0)).is_empty());
}

#[test]
fn review_late_fires_when_the_review_is_decided_after_its_due_date() {
    let request = ev(
        8,
        t(20, 0),
        Payload::CaseReviewRequested(CaseReviewRequested {
            header: h("cards", "h1"),
            reason: "disagree".into(),
            review_due: Some(timestamp(t(50, 0))),
        }),
    );
    let mut late = clean();
    late.push(request.clone());
    late.push(decided(9, t(51, 0), true));
    assert_eq!(fired(late, t(90, 0)), ["review_late"]);
    let mut none = clean();
    none.push(request.clone());
    assert_eq!(fired(none.clone(), t(51, 0)), ["review_late"]);
    assert!(fired(none, t(40, 0)).is_empty());
    let mut on_time = clean();
    on_time.push(request);
    on_time.push(decided(9, t(45, 0), true));
    assert!(fired(on_time, t(90, 0)).is_empty());
}

#[test]
fn passed_around_fires_above_the_allowed_transfers() {
    let mut history = clean();
    history.insert(3, assigned(20, t(0, 3), "cards", "loans", "h1"));
    history.insert(4, assigned(21, t(0, 4), "loans", "payments", "h1"));
    assert!(
        fired(history.clone(), t(90, 0)).is_empty(),
        "two re-routings are allowed"
    );
    history.insert(5, assigned(22, t(0, 5), "payments", "cards", "h1"));
    assert_eq!(fired(history, t(90, 0)), ["passed_around"]);
}

#[test]
fn unowned_while_routed_fires_on_a_routing_to_no_department() {
    let mut history = clean();
    history.insert(3, assigned(20, t(0, 3), "cards", "", ""));
    assert_eq!(fired(history, t(90, 0)), ["unowned_while_routed"]);
}

#[test]
fn contact_reads_fire_without_purpose_outside_the_roles_and_with_no_open_case() {
    let mut history = clean();
    history.push(read(20, t(11, 0), "service:notification", "  "));
    assert_eq!(fired(history, t(90, 0)), ["contact_read_without_purpose"]);

    let mut history = clean();
    history.push(read(20, t(11, 0), "analyst", "curiosity"));
    assert_eq!(fired(history, t(90, 0)), ["contact_read_by_role"]);

    // After the case was closed; and of a complaint never registered.
    let mut history = clean();
    history.push(read(20, t(40, 0), "service:notification", "survey"));
    assert_eq!(
        fired(history.clone(), t(90, 0)),
        ["contact_read_without_case"]
    );
    assert!(
        fired(history, t(40, 0)).is_empty(),
        "not before the settle period"
    );
    let alone = vec![read(20, t(1, 0), "service:notification", "receipt notice")];
    assert_eq!(fired(alone, t(2, 0)), ["contact_read_without_case"]);
    // The receipt notice: registered, no case yet.
    let receipt = vec![
        received(t(0, 0)),
        read(20, t(0, 1), "service:notification", "receipt"),
    ];
    assert!(fired(receipt, t(2, 0)).is_empty());
}

#[test]
fn decision_incomplete_fires_without_explanation_or_an_upheld_remedy() {
    let mut history = clean();
    if let Some(Payload::CaseDecided(d)) = history[4].payload.as_mut() {
        d.explanation = " ".into();
    }
    assert_eq!(fired(history, t(90, 0)), ["decision_incomplete"]);
    let mut history = clean();
    if let Some(Payload::CaseDecided(d)) = history[4].payload.as_mut() {
        d.remedy = None;
    }
    assert_eq!(fired(history, t(90, 0)), ["decision_incomplete"]);
    let mut not_upheld = clean();
    if let Some(Payload::CaseDecided(d)) = not_upheld[4].payload.as_mut() {
        d.remedy = None;
        d.outcome = DecisionOutcome::NotUpheld.into();
    }
    assert!(
        fired(not_upheld, t(90, 0)).is_empty(),
        "no remedy needed when not upheld"
    );
}

#[test]
fn closed_without_follow_up_fires_when_no_satisfaction_was_recorded() {
    let mut history = clean();
    history.remove(6);
    assert_eq!(fired(history, t(90, 0)), ["closed_without_follow_up"]);
}

#[test]
fn register_entry_missing_fires_for_a_case_whose_complaint_was_never_received() {
    let mut history = clean();
    history.remove(0);
    // (the read then has no registered complaint either, but its case is open)
    assert_eq!(fired(history.clone(), t(90, 0)), ["register_entry_missing"]);
    assert!(
        !fired(history, t(0, 1) + chrono::Duration::seconds(10))
            .contains(&"register_entry_missing"),
        "not within the settle period"
    );
}

#[test]
fn every_finding_names_its_case_complaint_and_evidence() {
    let mut history = clean();
    history.remove(6);
    let outcome = judge(history, t(90, 0));
    let finding = &outcome.findings[0];
    assert_eq!(
        (finding.case_id.as_str(), finding.complaint_id.as_str()),
        (CASE, COMPLAINT)
    );
    assert_eq!(finding.evidence, ["event-7"]);
}
