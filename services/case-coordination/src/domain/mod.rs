//! The case's life as an explicit state machine.
//!
//! ```text
//! action            from                                               to
//! (opened)          —                                                  registered | assigned
//! Assign            registered assigned in_progress extended           assigned
//! StartWork         assigned                                           in_progress
//! RequestInput      in_progress extended awaiting_input                awaiting_input
//! AnswerInput       awaiting_input                                     in_progress | extended (last answer)
//! Extend/Approve    in_progress extended awaiting_input                extended (awaiting_input stays)
//! Pause/Resume/New  assigned in_progress extended awaiting_input       unchanged
//! RecordDecision    in_progress extended under_review escalated        decided (blocked by open input)
//! RequestReview     decided closed                                     under_review (closed: reopened)
//! RecordSatisfaction decided                                           decided
//! Escalate          assigned in_progress extended awaiting_input decided under_review  escalated
//! Merge             registered assigned in_progress awaiting_input extended            merged
//! Withdraw          every state but closed withdrawn merged            withdrawn
//! Close             decided escalated (satisfaction recorded)          closed
//! AddNote           every state                                        unchanged
//! DeclareConflict   every state but closed withdrawn merged            unchanged
//! ```

pub mod rules;

use chrono::{DateTime, Utc};
use redress_proto::{
    cases::v1 as api,
    common::v1::Severity,
    events::v1::{CaseHeader, CaseState, event::Payload},
};
use uuid::Uuid;

use crate::deadlines::Clock;

/// A case as loaded: the columns the service queries on, and the rest.
#[derive(Debug, Clone)]
pub struct CaseRecord {
    pub id: Uuid,
    pub complaint_id: Uuid,
    pub version: u64,
    pub state: State,
    pub department: String,
    pub handler: Option<String>,
    pub severity: Severity,
    pub received_at: DateTime<Utc>,
    pub breached_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Everything else, as the API's `Case` without derived parts.
    pub snapshot: api::Case,
}

impl CaseRecord {
    /// What every event of the case says about it.
    pub fn header(&self) -> CaseHeader {
        let complaint = self.snapshot.complaint.as_ref();
        CaseHeader {
            case_id: self.id.to_string(),
            complaint_id: self.complaint_id.to_string(),
            reference: complaint.map(|c| c.reference.clone()).unwrap_or_default(),
            department: self.department.clone(),
            handler: self.handler.clone().unwrap_or_default(),
            state: self.state.to_proto() as i32,
            severity: self.severity as i32,
            consumer_ref: complaint
                .map(|c| c.consumer_ref.clone())
                .unwrap_or_default(),
        }
    }

    pub fn reference(&self) -> &str {
        self.snapshot
            .complaint
            .as_ref()
            .map(|c| c.reference.as_str())
            .unwrap_or_default()
    }
}

/// One change to a case: the event it publishes and what it means for the deadline clock.
#[derive(Debug, Clone)]
pub struct Change {
    pub payload: Payload,
    /// What it means for the deadline clock, if anything.
    pub clock: Option<Clock>,
}

impl Change {
    pub fn new(payload: impl redress_proto::EventPayload) -> Self {
        Self {
            payload: payload.into_payload(),
            clock: None,
        }
    }

    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The event's short name in the case's timeline (`created`, `assigned`, …).
    pub fn name(&self) -> &'static str {
        let kind = self.payload.event_type();
        kind.strip_prefix("case_").unwrap_or(kind)
    }
}

/// A case's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Registered,
    Assigned,
    InProgress,
    AwaitingInput,
    Extended,
    Decided,
    UnderReview,
    Escalated,
    Closed,
    Withdrawn,
    Merged,
}

impl State {
    pub const ALL: [State; 11] = [
        State::Registered,
        State::Assigned,
        State::InProgress,
        State::AwaitingInput,
        State::Extended,
        State::Decided,
        State::UnderReview,
        State::Escalated,
        State::Closed,
        State::Withdrawn,
        State::Merged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Registered => "registered",
            State::Assigned => "assigned",
            State::InProgress => "in_progress",
            State::AwaitingInput => "awaiting_input",
            State::Extended => "extended",
            State::Decided => "decided",
            State::UnderReview => "under_review",
            State::Escalated => "escalated",
            State::Closed => "closed",
            State::Withdrawn => "withdrawn",
            State::Merged => "merged",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn to_proto(self) -> CaseState {
        match self {
            State::Registered => CaseState::Registered,
            State::Assigned => CaseState::Assigned,
            State::InProgress => CaseState::InProgress,
            State::AwaitingInput => CaseState::AwaitingInput,
            State::Extended => CaseState::Extended,
            State::Decided => CaseState::Decided,
            State::UnderReview => CaseState::UnderReview,
            State::Escalated => CaseState::Escalated,
            State::Closed => CaseState::Closed,
            State::Withdrawn => CaseState::Withdrawn,
            State::Merged => CaseState::Merged,
        }
    }

    pub fn from_proto(state: CaseState) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.to_proto() == state)
    }

    /// Nothing more happens to the case (but notes).
    pub fn is_terminal(self) -> bool {
        matches!(self, State::Closed | State::Withdrawn | State::Merged)
    }

    /// Counts towards a handler's load.
    pub fn is_open(self) -> bool {
        !self.is_terminal() && self != State::Decided
    }
}

/// What someone (or an event) asks of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Assign,
    StartWork,
    AddNote,
    RequestInput,
    AnswerInput,
    Extend,
    PauseClock,
    ResumeClock,
    RecordNewFacts,
    RecordDecision,
    RequestReview,
    RecordSatisfaction,
    Escalate,
    Merge,
    Withdraw,
    Close,
    DeclareConflict,
    Reclassify,
}

use State::*;

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Assign => "assign",
            Action::StartWork => "start work on",
            Action::AddNote => "add a note to",
            Action::RequestInput => "request input for",
            Action::AnswerInput => "answer input on",
            Action::Extend => "extend",
            Action::PauseClock => "pause the clock of",
            Action::ResumeClock => "resume the clock of",
            Action::RecordNewFacts => "record new facts on",
            Action::RecordDecision => "record a decision on",
            Action::RequestReview => "request a review of",
            Action::RecordSatisfaction => "record satisfaction on",
            Action::Escalate => "escalate",
            Action::Merge => "merge",
            Action::Withdraw => "withdraw",
            Action::Close => "close",
            Action::DeclareConflict => "declare a conflict on",
            Action::Reclassify => "reclassify",
        }
    }

    /// The states the action is allowed from (the table in the module doc).
    pub fn from_states(self) -> &'static [State] {
        match self {
            Action::Assign => &[Registered, Assigned, InProgress, Extended],
            Action::StartWork => &[Assigned],
            Action::AddNote => &State::ALL,
            Action::RequestInput => &[InProgress, Extended, AwaitingInput],
            Action::AnswerInput => &[AwaitingInput],
            Action::Extend => &[InProgress, Extended, AwaitingInput],
            Action::PauseClock | Action::ResumeClock | Action::RecordNewFacts => {
                &[Assigned, InProgress, Extended, AwaitingInput]
            }
            Action::RecordDecision => &[InProgress, Extended, UnderReview, Escalated],
            Action::RequestReview => &[Decided, Closed],
            Action::RecordSatisfaction => &[Decided],
            Action::Escalate => &[
                Assigned,
                InProgress,
                Extended,
                AwaitingInput,
                Decided,
                UnderReview,
            ],
            Action::Merge => &[Registered, Assigned, InProgress, AwaitingInput, Extended],
            Action::Withdraw | Action::DeclareConflict | Action::Reclassify => &[
                Registered,
                Assigned,
                InProgress,
                AwaitingInput,
                Extended,
                Decided,
                UnderReview,
                Escalated,
            ],
            Action::Close => &[Decided, Escalated],
        }
    }

    /// Ok when allowed from `state`; otherwise the refusal, naming the current state.
    pub fn check(self, state: State) -> Result<(), CaseError> {
        if self.from_states().contains(&state) {
            Ok(())
        } else {
            Err(CaseError::WrongState {
                action: self.name(),
                state: state.as_str(),
                allowed: self
                    .from_states()
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
    }
}

/// Why a change to a case was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("no case `{0}`")]
    NotFound(String),
    #[error("cannot {action} a case in state {state} (allowed from: {allowed})")]
    WrongState {
        action: &'static str,
        state: &'static str,
        allowed: String,
    },
    #[error(
        "the case is at version {current}, not {expected}: it changed since you read it; read it again"
    )]
    StaleVersion { expected: u64, current: u64 },
    /// A request field is wrong (INVALID_ARGUMENT naming it).
    #[error("{0}")]
    Invalid(redress_proto::Violations),
    /// A rule of the domain refuses it (open input requests, an extension limit, 回避 …).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored case is corrupt: {0}")]
    Corrupt(String),
}

impl CaseError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        CaseError::Invalid(redress_proto::Violations::one(
            field,
            redress_proto::vocab::code::INVALID_FORMAT,
            message,
        ))
    }
}

impl From<redress_proto::events::v1::FieldViolation> for CaseError {
    fn from(v: redress_proto::events::v1::FieldViolation) -> Self {
        CaseError::Invalid(v.into())
    }
}

impl From<redress_proto::Violations> for CaseError {
    fn from(v: redress_proto::Violations) -> Self {
        CaseError::Invalid(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_refusals_name_the_state() {
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
            assert_eq!(State::from_proto(s.to_proto()), Some(s));
        }
        let refused = Action::RecordDecision.check(State::AwaitingInput);
        let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("state awaiting_input"), "{message}");
        assert!(Action::StartWork.check(State::Assigned).is_ok());
        for terminal in [State::Closed, State::Withdrawn, State::Merged] {
            assert!(Action::Withdraw.check(terminal).is_err());
            assert!(Action::AddNote.check(terminal).is_ok());
        }
    }
}
