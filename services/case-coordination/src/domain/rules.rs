//! The rules of each change to a case, as functions of the case and the facts read for it:
//! each checks what the regulation and the workflow require, updates the case and returns the
//! changes to commit. No database here — the API reads the facts, calls the rule and commits —
//! so every rule is tested on its own.

use chrono::{DateTime, Utc};
use redress_proto::{
    cases::v1 as api,
    common::v1::Actor,
    events::v1::{
        CaseClockPaused, CaseClockResumed, CaseClosed, CaseConflictDeclared, CaseDecided,
        CaseEscalated, CaseExtended, CaseInputAnswered, CaseInputRequested, CaseMerged,
        CaseNewFacts, CaseNoteAdded, CaseReopened, CaseReviewRequested, CaseSatisfactionRecorded,
        CaseWithdrawn, CaseWorkStarted, ClockPauseReason, DecisionOutcome, EscalationTarget,
        Remedy, Satisfaction,
    },
};
use redress_regime::{Approver, CaseStatus, Deadlines, PauseReason, Track};
use redress_runtime::event::timestamp;
use uuid::Uuid;

use super::{Action, CaseError, CaseRecord, Change, State};
use crate::deadlines::Clock;

/// Takes the case up. A handler takes it from the department queue, or works the case already
/// theirs; `conflicted` says whether that handler has declared an interest (回避).
pub fn start_work(
    case: &mut CaseRecord,
    handler: Option<&str>,
    conflicted: bool,
) -> Result<Change, CaseError> {
    Action::StartWork.check(case.state)?;
    if let Some(me) = handler {
        match &case.handler {
            Some(h) if h != me => {
                return Err(CaseError::Refused(format!(
                    "the case is assigned to {h}; ask for it to be reassigned"
                )));
            }
            Some(_) => {}
            None if conflicted => {
                return Err(CaseError::Refused(format!(
                    "回避: {me} has a conflict of interest on this case"
                )));
            }
            None => case.handler = Some(me.to_owned()),
        }
    }
    case.state = State::InProgress;
    Ok(Change::new(CaseWorkStarted { header: None }))
}

pub fn add_note(case: &CaseRecord, text: String) -> Result<Change, CaseError> {
    Action::AddNote.check(case.state)?;
    Ok(Change::new(CaseNoteAdded { header: None, text }))
}

/// Asks another department; the decision waits until it answers.
pub fn request_input(
    case: &mut CaseRecord,
    id: Uuid,
    to_department: String,
    question: String,
    due_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Change, CaseError> {
    Action::RequestInput.check(case.state)?;
    if to_department == case.department {
        return Err(CaseError::invalid(
            "toDepartment",
            "the case's own department; ask another one",
        ));
    }
    if due_at <= now {
        return Err(CaseError::invalid("dueAt", "must be in the future"));
    }
    case.state = State::AwaitingInput;
    Ok(Change::new(CaseInputRequested {
        header: None,
        request_id: id.to_string(),
        to_department,
        question,
        due_at: Some(timestamp(due_at)),
    }))
}

/// An answer to an input request.
#[derive(Debug, Clone, PartialEq)]
pub struct InputAnswer {
    pub request_id: Uuid,
    /// The department the request went to.
    pub asked: String,
    /// The caller's department when a handler answers.
    pub handler_department: Option<String>,
    pub answer: String,
    /// A specialist released the block without an answer.
    pub overridden: bool,
}

/// Answers (or, a specialist, releases) an input request; `still_open` says whether other
/// requests remain open after this one.
pub fn answer_input(
    case: &mut CaseRecord,
    answer: InputAnswer,
    still_open: bool,
    deadlines: &Deadlines,
) -> Result<Change, CaseError> {
    Action::AnswerInput.check(case.state)?;
    let InputAnswer {
        request_id,
        asked,
        handler_department,
        answer,
        overridden,
    } = answer;
    if handler_department.is_some_and(|d| d != asked) {
        return Err(CaseError::Forbidden(format!(
            "only {asked} answers this request"
        )));
    }
    if !still_open {
        case.state = if deadlines.limit.tier > 0 {
            State::Extended
        } else {
            State::InProgress
        };
    }
    Ok(Change::new(CaseInputAnswered {
        header: None,
        request_id: request_id.to_string(),
        from_department: asked,
        answer,
        overridden,
    }))
}

/// The next extension tier: without approval the tier that needs none, with `approver` the
/// one that needs approval. Never once the deadline has passed (an extension cannot hide a
/// breach), never beyond what the regime allows.
pub fn extend(
    case: &mut CaseRecord,
    deadlines: &Deadlines,
    track: &Track,
    approver: Option<Approver>,
    approved_by: Option<Actor>,
    reason: String,
    now: DateTime<Utc>,
) -> Result<Change, CaseError> {
    Action::Extend.check(case.state)?;
    if deadlines.is_overdue(now) {
        return Err(CaseError::Refused(format!(
            "the deadline passed on {}: an extension cannot hide a breach",
            deadlines
                .decision_due
                .map(|x| x.date.to_string())
                .unwrap_or_default()
        )));
    }
    let ctx = deadlines.extension_context();
    let tier = ctx.current_tier.saturating_add(1);
    track
        .can_extend(ctx, tier, approver.as_ref())
        .map_err(|refused| {
            CaseError::Refused(if approver.is_none() {
                format!("{refused} (ApproveExtension)")
            } else {
                refused.to_string()
            })
        })?;
    let notice = track
        .extensions
        .iter()
        .find(|t| t.tier == tier)
        .is_some_and(|t| t.consumer_notice);
    if case.state != State::AwaitingInput {
        case.state = State::Extended;
    }
    Ok(Change::new(CaseExtended {
        tier: u32::from(tier),
        reason,
        approved_by,
        consumer_notice_required: notice,
        ..Default::default()
    })
    .clock(Clock::Extended {
        tier,
        approver_role: approver.as_ref().map(|a| a.role.as_str().to_owned()),
        approver_id: approver.map(|a| a.id),
    }))
}

/// Stops the clock; `stops` says whether the regime counts the reason (recorded either way).
pub fn pause(
    case: &CaseRecord,
    deadlines: &Deadlines,
    reason: ClockPauseReason,
    regime_reason: PauseReason,
    stops: bool,
    note: String,
) -> Result<Change, CaseError> {
    Action::PauseClock.check(case.state)?;
    if matches!(deadlines.status, CaseStatus::Paused { .. }) {
        return Err(CaseError::Refused("the clock is already paused".into()));
    }
    Ok(Change::new(CaseClockPaused {
        header: None,
        reason: reason as i32,
        note,
        stops_clock: stops,
    })
    .clock(Clock::Paused {
        reason: regime_reason.as_str().to_owned(),
    }))
}

pub fn resume(case: &CaseRecord, deadlines: &Deadlines) -> Result<Change, CaseError> {
    Action::ResumeClock.check(case.state)?;
    if !matches!(deadlines.status, CaseStatus::Paused { .. }) {
        return Err(CaseError::Refused("the clock is not paused".into()));
    }
    Ok(Change::new(CaseClockResumed::default()).clock(Clock::Resumed))
}

/// New facts or reasons: the period restarts with the base limit (Art. 18 ¶3).
pub fn new_facts(case: &mut CaseRecord, summary: String) -> Result<Change, CaseError> {
    Action::RecordNewFacts.check(case.state)?;
    if case.state == State::Extended {
        case.state = State::InProgress;
    }
    Ok(Change::new(CaseNewFacts {
        header: None,
        summary,
        decision_due: None,
    })
    .clock(Clock::NewFacts))
}

/// What a decision says.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub outcome: DecisionOutcome,
    pub remedy: Remedy,
    pub explanation: String,
    pub root_cause_tags: Vec<String>,
}

/// Records the decision (or the review's). Blocked while another department's input is
/// open: `open_inputs` names them.
pub fn decide(
    case: &mut CaseRecord,
    decision: Decision,
    open_inputs: &[String],
    by: Actor,
    now: DateTime<Utc>,
) -> Result<Change, CaseError> {
    Action::RecordDecision.check(case.state)?;
    if !open_inputs.is_empty() {
        return Err(CaseError::Refused(format!(
            "input requested from {} is still open: it must be answered or overridden first",
            open_inputs.join(", ")
        )));
    }
    if decision.root_cause_tags.is_empty() {
        return Err(CaseError::invalid(
            "rootCauseTags",
            "required: every decided case feeds root-cause remediation (溯源整改)",
        ));
    }
    let review = case.state == State::UnderReview;
    case.state = State::Decided;
    case.snapshot.satisfaction = Satisfaction::Unspecified as i32;
    case.snapshot.decision = Some(api::Decision {
        outcome: decision.outcome as i32,
        remedy: Some(decision.remedy.clone()),
        explanation: decision.explanation.clone(),
        root_cause_tags: decision.root_cause_tags.clone(),
        decided_at: Some(timestamp(now)),
        decided_by: Some(by),
    });
    Ok(Change::new(CaseDecided {
        header: None,
        outcome: decision.outcome as i32,
        remedy: Some(decision.remedy),
        explanation: decision.explanation,
        root_cause_tags: decision.root_cause_tags,
        review,
        review_window_ends: None,
    })
    .clock(if review {
        Clock::ReviewDecided
    } else {
        Clock::Decided
    }))
}

/// The consumer asks for a review (核查) of the first decision, within the regime's window;
/// a closed case reopens for it. `article` cites the window's rule in the refusal.
pub fn request_review(
    case: &mut CaseRecord,
    deadlines: &Deadlines,
    reason: String,
    now: DateTime<Utc>,
    article: &str,
) -> Result<Vec<Change>, CaseError> {
    Action::RequestReview.check(case.state)?;
    if !matches!(deadlines.status, CaseStatus::Decided { .. }) {
        return Err(CaseError::Refused(
            "only a first decision can be reviewed (a review was already decided)".into(),
        ));
    }
    match deadlines.review_window_ends {
        Some(window) if now >= window.ends_at => {
            return Err(CaseError::Refused(format!(
                "the review window closed on {} ({article})",
                window.date
            )));
        }
        None => return Err(CaseError::Refused("this regime has no review".into())),
        Some(_) => {}
    }
    let mut changes = Vec::new();
    if case.state == State::Closed {
        changes.push(Change::new(CaseReopened {
            header: None,
            reason: reason.clone(),
        }));
    }
    case.state = State::UnderReview;
    changes.push(
        Change::new(CaseReviewRequested {
            header: None,
            reason,
            review_due: None,
        })
        .clock(Clock::ReviewRequested),
    );
    Ok(changes)
}

/// 回访: what the consumer said when followed up.
pub fn record_satisfaction(
    case: &mut CaseRecord,
    satisfaction: Satisfaction,
    comment: String,
) -> Result<Change, CaseError> {
    Action::RecordSatisfaction.check(case.state)?;
    case.snapshot.satisfaction = satisfaction as i32;
    Ok(Change::new(CaseSatisfactionRecorded {
        header: None,
        satisfaction: satisfaction as i32,
        comment,
    }))
}

/// To mediation or the regulator. Mediation time does not count (cn-nfra Art. 23): the clock
/// stops while the decision is still to be made.
pub fn escalate(
    case: &mut CaseRecord,
    deadlines: &Deadlines,
    target: EscalationTarget,
    external_reference: String,
    note: String,
    now: DateTime<Utc>,
) -> Result<Change, CaseError> {
    Action::Escalate.check(case.state)?;
    let mut change = Change::new(CaseEscalated {
        header: None,
        target: target as i32,
        external_reference: external_reference.clone(),
        note: note.clone(),
    });
    if target == EscalationTarget::Mediation && matches!(deadlines.status, CaseStatus::Open) {
        change = change.clock(Clock::Paused {
            reason: PauseReason::Mediation.as_str().to_owned(),
        });
    }
    case.state = State::Escalated;
    case.snapshot.escalation = Some(api::Escalation {
        target: target as i32,
        external_reference,
        note,
        escalated_at: Some(timestamp(now)),
    });
    Ok(change)
}

/// Closes this case into an open surviving one (a repeated complaint on the same matter).
pub fn merge(
    case: &mut CaseRecord,
    survivor: &CaseRecord,
    reason: String,
) -> Result<Change, CaseError> {
    Action::Merge.check(case.state)?;
    if survivor.id == case.id {
        return Err(CaseError::invalid(
            "survivorCaseId",
            "a case cannot merge into itself",
        ));
    }
    if survivor.state.is_terminal() {
        return Err(CaseError::Refused(format!(
            "the surviving case is {}: merge into an open case",
            survivor.state.as_str()
        )));
    }
    case.state = State::Merged;
    case.snapshot.merged_into = survivor.id.to_string();
    Ok(Change::new(CaseMerged {
        header: None,
        survivor_case_id: survivor.id.to_string(),
        survivor_reference: survivor.reference().to_owned(),
        reason,
    }))
}

/// The consumer withdrew: the procedure ends on receipt (Art. 15).
pub fn withdraw(case: &mut CaseRecord, reason: String) -> Result<Change, CaseError> {
    Action::Withdraw.check(case.state)?;
    case.state = State::Withdrawn;
    Ok(withdrawn(reason))
}

/// The `withdrawn` change, for a case withdrawn as it opens too.
pub fn withdrawn(reason: String) -> Change {
    Change::new(CaseWithdrawn {
        header: None,
        reason,
    })
    .clock(Clock::Withdrawn)
}

/// 回避: a handler declares an interest, or a specialist records one found.
pub fn conflict_declared(conflicted_handler: String, reason: String) -> Change {
    Change::new(CaseConflictDeclared {
        header: None,
        conflicted_handler,
        reason,
    })
}

/// Closes a decided case once its follow-up (回访) is recorded, or an escalated one.
pub fn close(case: &mut CaseRecord, note: String) -> Result<Change, CaseError> {
    Action::Close.check(case.state)?;
    if case.state == State::Decided
        && case.snapshot.satisfaction == Satisfaction::Unspecified as i32
    {
        return Err(CaseError::Refused(
            "record the follow-up (回访) first: RecordSatisfaction, with no_answer if the consumer could not be reached"
                .into(),
        ));
    }
    case.state = State::Closed;
    Ok(Change::new(CaseClosed { header: None, note }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use redress_proto::common::v1::Severity;

    fn case(state: State) -> CaseRecord {
        let now = Utc::now();
        CaseRecord {
            id: Uuid::now_v7(),
            complaint_id: Uuid::now_v7(),
            version: 3,
            state,
            department: "lending".into(),
            handler: None,
            severity: Severity::Medium,
            received_at: now,
            breached_at: None,
            created_at: now,
            updated_at: now,
            snapshot: api::Case::default(),
        }
    }

    #[test]
    fn a_handler_takes_a_queued_case_unless_conflicted() {
        let mut queued = case(State::Assigned);
        assert!(start_work(&mut queued, Some("h1"), false).is_ok());
        assert_eq!(queued.handler.as_deref(), Some("h1"));
        assert_eq!(queued.state, State::InProgress);
        let mut conflicted = case(State::Assigned);
        assert!(matches!(
            start_work(&mut conflicted, Some("h1"), true),
            Err(CaseError::Refused(_))
        ));
        let mut theirs = case(State::Assigned);
        theirs.handler = Some("h2".into());
        assert!(start_work(&mut theirs, Some("h1"), false).is_err());
        assert!(start_work(&mut case(State::Decided), None, false).is_err());
    }

    #[test]
    fn input_goes_to_another_department_in_the_future() {
        let now = Utc::now();
        let later = now + chrono::Duration::days(2);
        let mut c = case(State::InProgress);
        let id = Uuid::now_v7();
        assert!(
            request_input(&mut c.clone(), id, "lending".into(), "q".into(), later, now).is_err()
        );
        assert!(request_input(&mut c.clone(), id, "risk".into(), "q".into(), now, now).is_err());
        let change = request_input(&mut c, id, "risk".into(), "q".into(), later, now);
        assert!(change.is_ok_and(|c| c.name() == "input_requested"));
        assert_eq!(c.state, State::AwaitingInput);
    }

    fn decision(tags: &[&str]) -> Decision {
        Decision {
            outcome: DecisionOutcome::Upheld,
            remedy: Remedy::default(),
            explanation: "refunded".into(),
            root_cause_tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    #[test]
    fn a_decision_waits_for_open_input_and_feeds_root_causes() {
        let now = Utc::now();
        let by = Actor::default();
        let mut c = case(State::InProgress);
        let blocked = decide(
            &mut c,
            decision(&["fees"]),
            &["risk".into()],
            by.clone(),
            now,
        );
        assert!(
            blocked
                .err()
                .is_some_and(|e| e.to_string().contains("risk"))
        );
        assert!(matches!(
            decide(&mut c, decision(&[]), &[], by.clone(), now),
            Err(CaseError::Invalid(_))
        ));
        let decided = decide(&mut c, decision(&["fees"]), &[], by.clone(), now);
        assert!(decided.is_ok_and(|d| matches!(d.clock, Some(Clock::Decided))));
        assert_eq!(c.state, State::Decided);
        let mut review = case(State::UnderReview);
        let decided = decide(&mut review, decision(&["fees"]), &[], by, now);
        assert!(decided.is_ok_and(|d| matches!(d.clock, Some(Clock::ReviewDecided))));
    }

    #[test]
    fn a_decided_case_closes_only_after_its_follow_up() {
        let mut c = case(State::Decided);
        assert!(matches!(
            close(&mut c, String::new()),
            Err(CaseError::Refused(_))
        ));
        assert!(record_satisfaction(&mut c, Satisfaction::NoAnswer, String::new()).is_ok());
        assert!(close(&mut c, String::new()).is_ok());
        assert_eq!(c.state, State::Closed);
        assert!(close(&mut case(State::Escalated), String::new()).is_ok());
    }

    #[test]
    fn merges_go_into_another_open_case() {
        let mut c = case(State::InProgress);
        let same = c.clone();
        assert!(merge(&mut c, &same, String::new()).is_err());
        let closed = case(State::Closed);
        assert!(matches!(
            merge(&mut c, &closed, String::new()),
            Err(CaseError::Refused(_))
        ));
        let open = case(State::Assigned);
        assert!(merge(&mut c, &open, String::new()).is_ok());
        assert_eq!(c.snapshot.merged_into, open.id.to_string());
        assert!(
            withdraw(&mut c, "x".into()).is_err(),
            "a merged case is terminal"
        );
    }
}
