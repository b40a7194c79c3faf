//! The rules as functions of a complaint's logged events and the time: pure, so each can be
//! shown firing and not firing without a clock or a database.
//!
//! A rule that fires on something *present* (an extension without approval) fires as soon as
//! the event is logged. A rule that fires on something *absent* by a time (no decision by the
//! deadline) is judged only once `settle` has passed after that time, so an event still on its
//! way from another stream is not mistaken for a missing one; until then it asks to be woken
//! ([`Outcome::wake`]) and is judged again. Events are placed in time by their own
//! `occurred_at` (a notice by its `sent_at`), never by when the log received them.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use redress_proto::events::v1::{CaseHeader, DecisionOutcome, Event, NoticeKind, event::Payload};
use redress_runtime::event::from_timestamp;

use super::Rules;

/// A complaint's logged events (its own, its cases', its notices', reads of its contact
/// details), in log order.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub events: Vec<Event>,
}

/// One breach of one rule. `subject` names what it is about within the rule (a case, a
/// notice, an event), so the same finding is raised once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: &'static str,
    pub subject: String,
    pub case_id: String,
    pub complaint_id: String,
    pub detail: String,
    pub evidence: Vec<String>,
    pub due_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub findings: Vec<Finding>,
    /// When to judge again (an absence not yet settled).
    pub wake: Vec<DateTime<Utc>>,
}

/// Judging at `now`, with `settle` for events still on their way.
struct Judge<'a> {
    rules: &'a Rules,
    now: DateTime<Utc>,
    settle: chrono::Duration,
    out: Outcome,
}

impl Judge<'_> {
    /// Whether an absence by `due` is settled; if not, asks to be woken when it is.
    fn settled(&mut self, due: DateTime<Utc>) -> bool {
        let at = due + self.settle;
        if at <= self.now {
            return true;
        }
        self.out.wake.push(at);
        false
    }

    fn raise(&mut self, rule: &'static str, subject: String, about: &About, detail: String) {
        self.raise_due(rule, subject, about, detail, None);
    }

    fn raise_due(
        &mut self,
        rule: &'static str,
        subject: String,
        about: &About,
        detail: String,
        due_at: Option<DateTime<Utc>>,
    ) {
        self.out.findings.push(Finding {
            rule,
            subject,
            case_id: about.case_id.clone(),
            complaint_id: about.complaint_id.clone(),
            detail,
            evidence: about.evidence.clone(),
            due_at,
        });
    }
}

/// What a finding is about and the events it rests on.
struct About {
    case_id: String,
    complaint_id: String,
    evidence: Vec<String>,
}

impl About {
    fn of(header: &CaseHeader, evidence: &[&Event]) -> Self {
        Self {
            case_id: header.case_id.clone(),
            complaint_id: header.complaint_id.clone(),
            evidence: evidence.iter().map(|e| e.id.clone()).collect(),
        }
    }
}

/// Every rule over one complaint's events.
pub fn evaluate(rules: &Rules, facts: &Facts, now: DateTime<Utc>, settle: Duration) -> Outcome {
    let mut judge = Judge {
        rules,
        now,
        settle: chrono::Duration::from_std(settle).unwrap_or(chrono::Duration::MAX),
        out: Outcome::default(),
    };
    let mut events: Vec<&Event> = facts.events.iter().collect();
    events.sort_by_key(|e| (at(e), e.aggregate_version));
    for case in cases(&events).values() {
        case_rules(&mut judge, case, &events);
    }
    notices(&mut judge, &events);
    contact_reads(&mut judge, &events);
    judge.out
}

/// When an event happened (the epoch if it does not say: it then never looks late).
pub fn at(event: &Event) -> DateTime<Utc> {
    event
        .occurred_at
        .as_ref()
        .and_then(from_timestamp)
        .unwrap_or_default()
}

/// The case header of a case event.
fn header(event: &Event) -> Option<&CaseHeader> {
    use Payload as P;
    match event.payload.as_ref()? {
        P::CaseCreated(p) => p.header.as_ref(),
        P::CaseAssigned(p) => p.header.as_ref(),
        P::CaseWorkStarted(p) => p.header.as_ref(),
        P::CaseInputRequested(p) => p.header.as_ref(),
        P::CaseInputAnswered(p) => p.header.as_ref(),
        P::CaseExtended(p) => p.header.as_ref(),
        P::CaseDeadlineWarning(p) => p.header.as_ref(),
        P::CaseDeadlineBreached(p) => p.header.as_ref(),
        P::CaseDecided(p) => p.header.as_ref(),
        P::CaseReviewRequested(p) => p.header.as_ref(),
        P::CaseEscalated(p) => p.header.as_ref(),
        P::CaseSatisfactionRecorded(p) => p.header.as_ref(),
        P::CaseClosed(p) => p.header.as_ref(),
        P::CaseReopened(p) => p.header.as_ref(),
        P::CaseNoteAdded(p) => p.header.as_ref(),
        P::CaseMerged(p) => p.header.as_ref(),
        P::CaseWithdrawn(p) => p.header.as_ref(),
        P::CaseClockPaused(p) => p.header.as_ref(),
        P::CaseClockResumed(p) => p.header.as_ref(),
        P::CaseNewFacts(p) => p.header.as_ref(),
        P::CaseConflictDeclared(p) => p.header.as_ref(),
        P::CaseReclassified(p) => p.header.as_ref(),
        _ => None,
    }
}

/// Case events by case id, in time order.
fn cases<'a>(events: &[&'a Event]) -> BTreeMap<String, Vec<&'a Event>> {
    let mut by_case: BTreeMap<String, Vec<&Event>> = BTreeMap::new();
    for event in events {
        if let Some(h) = header(event).filter(|h| !h.case_id.is_empty()) {
            by_case.entry(h.case_id.clone()).or_default().push(event);
        }
    }
    by_case
}

fn case_rules(judge: &mut Judge, case: &[&Event], all: &[&Event]) {
    let Some(first) = case.first().and_then(|e| header(e)) else {
        return;
    };
    let last = case.last().and_then(|e| header(e)).unwrap_or(first);
    decision(judge, case, last, all);
    extensions(judge, case, last, all);
    conflicts(judge, case, last);
    reviews(judge, case, last);
    routing(judge, case, last);
    decision_content(judge, case);
    follow_up(judge, case);
    register(judge, case, last, all);
}

/// The first event matching `pick`, with what it carries.
fn first_of<'a, T>(
    events: &[&'a Event],
    pick: impl Fn(&'a Payload) -> Option<T>,
) -> Option<(&'a Event, T)> {
    events
        .iter()
        .find_map(|e| e.payload.as_ref().and_then(&pick).map(|t| (*e, t)))
}

/// Whether the procedure ended without a decision (withdrawn, merged) by `time`.
fn ended_before(case: &[&Event], time: DateTime<Utc>) -> bool {
    case.iter().any(|e| {
        matches!(
            e.payload,
            Some(Payload::CaseWithdrawn(_) | Payload::CaseMerged(_))
        ) && at(e) <= time
    })
}

/// The decision deadline in force at `time`: the last one the case's events set by then, and
/// whether the clock was stopped (paused for a reason that stops it) at that time.
fn decision_due(case: &[&Event], time: DateTime<Utc>) -> (Option<DateTime<Utc>>, bool) {
    let (mut due, mut paused) = (None, false);
    for event in case.iter().filter(|e| at(e) <= time) {
        let set = match event.payload.as_ref() {
            Some(Payload::CaseCreated(p)) => p.decision_due.as_ref(),
            Some(Payload::CaseExtended(p)) => p.decision_due.as_ref(),
            Some(Payload::CaseClockResumed(p)) => {
                paused = false;
                p.decision_due.as_ref()
            }
            Some(Payload::CaseNewFacts(p)) => p.decision_due.as_ref(),
            Some(Payload::CaseClockPaused(p)) => {
                paused |= p.stops_clock;
                None
            }
            _ => None,
        };
        if let Some(set) = set.and_then(from_timestamp) {
            due = Some(set);
        }
    }
    (due, paused)
}

fn is_first_decision(p: &Payload) -> Option<()> {
    matches!(p, Payload::CaseDecided(d) if !d.review).then_some(())
}

/// A notice of `kind` about the case sent in `[from, by]`.
fn told<'a>(
    all: &[&'a Event],
    case_id: &str,
    kind: NoticeKind,
    from: DateTime<Utc>,
    by: DateTime<Utc>,
) -> Option<&'a Event> {
    all.iter().copied().find(|e| match e.payload.as_ref() {
        Some(Payload::NotificationSent(s)) => {
            let sent = s.sent_at.as_ref().and_then(from_timestamp).unwrap_or(at(e));
            s.header
                .as_ref()
                .is_some_and(|h| h.case_id == case_id && h.kind() == kind)
                && sent >= from
                && sent <= by
        }
        _ => false,
    })
}

/// decision_late and decision_not_told (Art. 18).
fn decision(judge: &mut Judge, case: &[&Event], header: &CaseHeader, all: &[&Event]) {
    let decided = first_of(case, is_first_decision);
    let time = decided.map_or(DateTime::<Utc>::MAX_UTC, |(e, ())| at(e));
    let (Some(due), paused) = decision_due(case, time) else {
        return;
    };
    match decided {
        Some((event, ())) if at(event) > due => judge.raise_due(
            "decision_late",
            header.case_id.clone(),
            &About::of(header, &[event]),
            format!("decided at {} after the deadline {due}", at(event)),
            Some(due),
        ),
        Some((event, ())) => {
            if told(all, &header.case_id, NoticeKind::Decision, at(event), due).is_none()
                && judge.settled(due)
            {
                judge.raise_due(
                    "decision_not_told",
                    header.case_id.clone(),
                    &About::of(header, &[event]),
                    format!(
                        "decided at {} but no decision notice was sent by {due}",
                        at(event)
                    ),
                    Some(due),
                );
            }
        }
        None if paused || ended_before(case, due) => {}
        None => {
            if judge.settled(due) {
                judge.raise_due(
                    "decision_late",
                    header.case_id.clone(),
                    &About::of(header, &case[..1]),
                    format!("no decision by the deadline {due}"),
                    Some(due),
                );
            }
        }
    }
}

/// extension_unapproved and extension_not_told (Art. 18).
fn extensions(judge: &mut Judge, case: &[&Event], header: &CaseHeader, all: &[&Event]) {
    for event in case {
        let Some(Payload::CaseExtended(ext)) = event.payload.as_ref() else {
            continue;
        };
        let rules = judge.rules;
        let approved = ext
            .approved_by
            .as_ref()
            .is_some_and(|a| rules.approver_roles.contains(&a.role));
        if ext.tier >= rules.approval_from_tier && !approved {
            let by = ext
                .approved_by
                .as_ref()
                .map_or("nobody", |a| a.role.as_str());
            judge.raise(
                "extension_unapproved",
                event.id.clone(),
                &About::of(header, &[event]),
                format!("extension tier {} approved by {by}", ext.tier),
            );
        }
        let Some(due) = ext.decision_due.as_ref().and_then(from_timestamp) else {
            continue;
        };
        if ext.consumer_notice_required
            && told(all, &header.case_id, NoticeKind::Extended, at(event), due).is_none()
            && judge.settled(due)
        {
            judge.raise_due(
                "extension_not_told",
                event.id.clone(),
                &About::of(header, &[event]),
                format!(
                    "extension tier {} not told to the consumer by {due}",
                    ext.tier
                ),
                Some(due),
            );
        }
    }
}

/// conflicted_handler (Art. 17 回避): the declared handler assigned, working or deciding after
/// the declaration.
fn conflicts(judge: &mut Judge, case: &[&Event], header: &CaseHeader) {
    for (i, event) in case.iter().enumerate() {
        let Some(Payload::CaseConflictDeclared(c)) = event.payload.as_ref() else {
            continue;
        };
        if c.conflicted_handler.is_empty() {
            continue;
        }
        let acted = case[i + 1..].iter().find(|later| {
            matches!(
                later.payload,
                Some(
                    Payload::CaseAssigned(_)
                        | Payload::CaseWorkStarted(_)
                        | Payload::CaseDecided(_)
                )
            ) && header_of(later).is_some_and(|h| h.handler == c.conflicted_handler)
        });
        if let Some(later) = acted {
            judge.raise(
                "conflicted_handler",
                format!("{}:{}", header.case_id, c.conflicted_handler),
                &About::of(header, &[event, later]),
                format!(
                    "handler {} acted on the case ({}) after declaring a conflict",
                    c.conflicted_handler,
                    later.payload.as_ref().map_or("", |p| p.event_type())
                ),
            );
        }
    }
}

fn header_of<'a>(event: &&'a Event) -> Option<&'a CaseHeader> {
    header(event)
}

/// review_late (Art. 20): each review request decided by its review_due.
fn reviews(judge: &mut Judge, case: &[&Event], header: &CaseHeader) {
    for (i, event) in case.iter().enumerate() {
        let Some(Payload::CaseReviewRequested(r)) = event.payload.as_ref() else {
            continue;
        };
        let Some(due) = r.review_due.as_ref().and_then(from_timestamp) else {
            continue;
        };
        let decided = first_of(&case[i + 1..], |p| {
            matches!(p, Payload::CaseDecided(d) if d.review).then_some(())
        });
        let late = match decided {
            Some((d, ())) => {
                (at(d) > due).then(|| format!("review decided at {} after {due}", at(d)))
            }
            None if ended_before(case, due) => None,
            None => judge
                .settled(due)
                .then(|| format!("review not decided by {due}")),
        };
        if let Some(detail) = late {
            judge.raise_due(
                "review_late",
                event.id.clone(),
                &About::of(header, &[event]),
                detail,
                Some(due),
            );
        }
    }
}

/// passed_around and unowned_while_routed (首问负责制).
fn routing(judge: &mut Judge, case: &[&Event], header: &CaseHeader) {
    let mut transfers = Vec::new();
    for event in case {
        let Some(Payload::CaseAssigned(a)) = event.payload.as_ref() else {
            continue;
        };
        let to = a.header.as_ref().map_or("", |h| h.department.as_str());
        if to.is_empty() {
            judge.raise(
                "unowned_while_routed",
                event.id.clone(),
                &About::of(header, &[event]),
                format!("routed by rule `{}` to no department", a.rule),
            );
        }
        if !a.from_department.is_empty() && a.from_department != "triage" && a.from_department != to
        {
            transfers.push(*event);
        }
    }
    if transfers.len() > judge.rules.max_transfers as usize {
        judge.raise(
            "passed_around",
            header.case_id.clone(),
            &About::of(header, &transfers),
            format!(
                "re-routed between departments {} times (at most {})",
                transfers.len(),
                judge.rules.max_transfers
            ),
        );
    }
}

/// decision_incomplete (Art. 19): what was verified and why (the explanation), and for an
/// upheld complaint the remedy.
fn decision_content(judge: &mut Judge, case: &[&Event]) {
    for event in case {
        let Some(Payload::CaseDecided(d)) = event.payload.as_ref() else {
            continue;
        };
        let upheld = matches!(
            d.outcome(),
            DecisionOutcome::Upheld | DecisionOutcome::PartlyUpheld
        );
        let mut lacking = Vec::new();
        if d.outcome() == DecisionOutcome::Unspecified {
            lacking.push("an outcome");
        }
        if d.explanation.trim().is_empty() {
            lacking.push("an explanation (what was verified, the basis)");
        }
        if upheld && d.remedy.as_ref().is_none_or(|r| r.action.trim().is_empty()) {
            lacking.push("the remedy of an upheld complaint");
        }
        if !lacking.is_empty() {
            let header = d.header.clone().unwrap_or_default();
            judge.raise(
                "decision_incomplete",
                event.id.clone(),
                &About::of(&header, &[event]),
                format!("the decision lacks {}", lacking.join(", ")),
            );
        }
    }
}

/// closed_without_follow_up (internal policy): a decided case closed with no satisfaction
/// recorded after its decision.
fn follow_up(judge: &mut Judge, case: &[&Event]) {
    let mut decided = false;
    let mut followed = false;
    for event in case {
        match event.payload.as_ref() {
            Some(Payload::CaseDecided(_)) => (decided, followed) = (true, false),
            Some(Payload::CaseSatisfactionRecorded(_)) => followed = true,
            Some(Payload::CaseClosed(c)) if decided && !followed => {
                let header = c.header.clone().unwrap_or_default();
                judge.raise(
                    "closed_without_follow_up",
                    event.id.clone(),
                    &About::of(&header, &[event]),
                    "closed after its decision with no satisfaction follow-up recorded".into(),
                );
            }
            _ => {}
        }
    }
}

/// register_entry_missing (Art. 28): the case's complaint has a `complaint_received` entry.
fn register(judge: &mut Judge, case: &[&Event], header: &CaseHeader, all: &[&Event]) {
    let Some((created, ())) =
        first_of(case, |p| matches!(p, Payload::CaseCreated(_)).then_some(()))
    else {
        return;
    };
    let registered = all.iter().any(|e| {
        matches!(&e.payload, Some(Payload::ComplaintReceived(r))
            if r.complaint.as_ref().is_some_and(|c| c.complaint_id == header.complaint_id)
               || e.aggregate_id == header.complaint_id)
    });
    if !registered && judge.settled(at(created)) {
        judge.raise(
            "register_entry_missing",
            header.case_id.clone(),
            &About::of(header, &[created]),
            format!(
                "complaint {} has no complaint_received in the log",
                header.complaint_id
            ),
        );
    }
}

/// notice_late (Art. 21): every notice with a period has a `sent` by it.
fn notices(judge: &mut Judge, events: &[&Event]) {
    let mut by_delivery: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for event in events {
        let header = match event.payload.as_ref() {
            Some(Payload::NotificationSent(p)) => p.header.as_ref(),
            Some(Payload::NotificationDelivered(p)) => p.header.as_ref(),
            Some(Payload::NotificationFailed(p)) => p.header.as_ref(),
            _ => None,
        };
        if let Some(h) = header.filter(|h| !h.delivery_id.is_empty()) {
            by_delivery.entry(&h.delivery_id).or_default().push(event);
        }
    }
    for (delivery, notice) in by_delivery {
        let Some(h) = notice.iter().find_map(|e| notice_header(e)) else {
            continue;
        };
        let Some(due) = h.due_by.as_ref().and_then(from_timestamp) else {
            continue;
        };
        let sent: Vec<DateTime<Utc>> = notice
            .iter()
            .filter_map(|e| match e.payload.as_ref() {
                Some(Payload::NotificationSent(s)) => {
                    Some(s.sent_at.as_ref().and_then(from_timestamp).unwrap_or(at(e)))
                }
                _ => None,
            })
            .collect();
        let late = match sent.iter().min() {
            Some(first) if *first <= due => None,
            Some(first) => Some(format!("sent at {first}, after its period ended {due}")),
            None => judge.settled(due).then(|| format!("not sent by {due}")),
        };
        if let Some(detail) = late {
            let about = About {
                case_id: h.case_id.clone(),
                complaint_id: h.complaint_id.clone(),
                evidence: notice.iter().map(|e| e.id.clone()).collect(),
            };
            let kind = h
                .kind()
                .as_str_name()
                .trim_start_matches("NOTICE_KIND_")
                .to_lowercase();
            judge.raise_due(
                "notice_late",
                delivery.to_owned(),
                &about,
                format!("{kind} notice {detail}"),
                Some(due),
            );
        }
    }
}

fn notice_header(event: &Event) -> Option<&redress_proto::events::v1::NoticeHeader> {
    match event.payload.as_ref()? {
        Payload::NotificationSent(p) => p.header.as_ref(),
        Payload::NotificationDelivered(p) => p.header.as_ref(),
        Payload::NotificationFailed(p) => p.header.as_ref(),
        _ => None,
    }
}

/// contact_read_without_purpose, contact_read_by_role, contact_read_without_case.
fn contact_reads(judge: &mut Judge, events: &[&Event]) {
    for event in events {
        let Some(Payload::ContactRead(read)) = event.payload.as_ref() else {
            continue;
        };
        let about = About {
            case_id: String::new(),
            complaint_id: read.complaint_id.clone(),
            evidence: vec![event.id.clone()],
        };
        let role = read.reader.as_ref().map_or("", |r| r.role.as_str());
        let who = read.reader.as_ref().map_or("", |r| r.subject.as_str());
        if read.purpose.trim().is_empty() {
            judge.raise(
                "contact_read_without_purpose",
                event.id.clone(),
                &about,
                format!("{who} ({role}) read contact details without a purpose"),
            );
        }
        if !judge.rules.reader_roles.iter().any(|r| r == role) {
            judge.raise(
                "contact_read_by_role",
                event.id.clone(),
                &about,
                format!("{who} read contact details in role `{role}`, which policy does not allow"),
            );
        }
        let read_at = at(event);
        if !linked(events, &read.complaint_id, read_at) && judge.settled(read_at) {
            judge.raise(
                "contact_read_without_case",
                event.id.clone(),
                &about,
                format!("{who} ({role}) read contact details with no open case of the complaint"),
            );
        }
    }
}

/// Whether a read at `time` is linked to an open matter of the complaint: the complaint
/// registered and no case opened yet (the receipt notice), or a case created (or reopened) by
/// then and not closed or merged before it. A withdrawn case stays linked: the withdrawal
/// confirmation is read for it.
fn linked(events: &[&Event], complaint_id: &str, time: DateTime<Utc>) -> bool {
    let mut registered = false;
    let mut open: BTreeMap<&str, bool> = BTreeMap::new();
    for event in events.iter().filter(|e| at(e) <= time) {
        if let Some(Payload::ComplaintReceived(_)) = event.payload
            && event.aggregate_id == complaint_id
        {
            registered = true;
        }
        let Some(h) = header(event).filter(|h| h.complaint_id == complaint_id) else {
            continue;
        };
        match event.payload.as_ref() {
            Some(Payload::CaseCreated(_) | Payload::CaseReopened(_)) => {
                open.insert(&h.case_id, true);
            }
            Some(Payload::CaseClosed(_) | Payload::CaseMerged(_)) => {
                open.insert(&h.case_id, false);
            }
            _ => {}
        }
    }
    (registered && open.is_empty()) || open.values().any(|o| *o)
}

#[cfg(test)]
#[path = "evaluate_tests.rs"]
mod tests;
