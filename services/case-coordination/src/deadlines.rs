//! Deadlines: derived with `redress-regime` from the case's clock-relevant history (stored as
//! `case_events.clock`), never stored as facts; and the timers that follow from them.

use chrono::{DateTime, Utc};
use redress_proto::{cases::v1 as api, events::v1::ClockPauseReason};
use redress_regime::{
    Approver, Calendar, CaseClock, CaseStatus, ClockEvent, ClockEventKind, Deadlines, PauseReason,
    Regime, Role,
};
use redress_runtime::event::timestamp;
use serde::{Deserialize, Serialize};

/// A clock-relevant fact as stored beside the event that records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Clock {
    Extended {
        tier: u8,
        #[serde(default)]
        approver_role: Option<String>,
        #[serde(default)]
        approver_id: Option<String>,
    },
    Paused {
        reason: String,
    },
    Resumed,
    NewFacts,
    Decided,
    /// The consumer was told (notification's `sent` for the decision): the review window
    /// (Art. 20 cn-nfra) runs from it rather than, provisionally, from the decision.
    ConsumerNotified,
    ReviewRequested,
    ReviewDecided,
    Withdrawn,
    Reopened,
}

impl Clock {
    fn kind(&self) -> Option<ClockEventKind> {
        Some(match self {
            Clock::Extended {
                tier,
                approver_role,
                approver_id,
            } => ClockEventKind::Extended {
                tier: *tier,
                approved_by: match (
                    approver_role.as_deref().and_then(approver_role_of),
                    approver_id,
                ) {
                    (Some(role), Some(id)) => Some(Approver {
                        role,
                        id: id.clone(),
                    }),
                    _ => None,
                },
            },
            Clock::Paused { reason } => ClockEventKind::Paused {
                reason: pause_reason_of(reason)?,
            },
            Clock::Resumed => ClockEventKind::Resumed,
            Clock::NewFacts => ClockEventKind::NewFacts,
            Clock::Decided => ClockEventKind::Decided,
            Clock::ConsumerNotified => ClockEventKind::ConsumerNotified,
            Clock::ReviewRequested => ClockEventKind::ReviewRequested,
            Clock::ReviewDecided => ClockEventKind::ReviewDecided,
            Clock::Withdrawn => ClockEventKind::Withdrawn,
            Clock::Reopened => ClockEventKind::Reopened,
        })
    }
}

/// The regime role a token role approves extensions as. `compliance` and `senior_management`
/// are the platform's roles for 上级机构 / 总行、总公司高级管理人员 (regime README, reading 5).
pub fn approver_role_of(role: &str) -> Option<Role> {
    match role {
        "compliance" => Some(Role::Compliance),
        "senior_management" => Some(Role::SeniorManagement),
        "superior_institution" => Some(Role::SuperiorInstitution),
        _ => None,
    }
}

fn pause_reason_of(text: &str) -> Option<PauseReason> {
    [
        PauseReason::ExternalAppraisal,
        PauseReason::Mediation,
        PauseReason::AwaitingConsumer,
        PauseReason::AwaitingThirdParty,
    ]
    .into_iter()
    .find(|r| r.as_str() == text)
}

/// The regime's pause reason for the API's.
pub fn pause_reason(reason: ClockPauseReason) -> Option<PauseReason> {
    match reason {
        ClockPauseReason::ExternalAppraisal => Some(PauseReason::ExternalAppraisal),
        ClockPauseReason::Mediation => Some(PauseReason::Mediation),
        ClockPauseReason::AwaitingConsumer => Some(PauseReason::AwaitingConsumer),
        ClockPauseReason::AwaitingThirdParty => Some(PauseReason::AwaitingThirdParty),
        ClockPauseReason::Unspecified => None,
    }
}

/// The configured regime and its calendar.
#[derive(Debug, Clone)]
pub struct Clocks {
    pub regime: Regime,
    pub calendar: Calendar,
}

impl Clocks {
    pub fn new(regime: &str) -> Result<Self, redress_regime::LoadError> {
        let regime = Regime::by_name(regime)?;
        let calendar = regime.default_calendar()?;
        Ok(Self { regime, calendar })
    }

    /// Derives the deadlines from the receipt and the stored history (oldest first).
    pub fn derive(
        &self,
        received_at: DateTime<Utc>,
        history: &[(DateTime<Utc>, Clock)],
    ) -> Result<Deadlines, redress_regime::ClockError> {
        let clock = CaseClock::new(&self.regime, &self.calendar)?;
        let events: Vec<ClockEvent> = history
            .iter()
            .filter_map(|(at, c)| c.kind().map(|kind| ClockEvent::new(*at, kind)))
            .collect();
        clock.derive(received_at, &events)
    }
}

/// One timer that follows from the deadlines.
#[derive(Debug, Clone, PartialEq)]
pub struct Timer {
    /// warning or breach
    pub kind: &'static str,
    /// decision or review
    pub deadline: &'static str,
    pub fraction: f64,
    pub due_at: DateTime<Utc>,
    pub fire_at: DateTime<Utc>,
}

/// The warnings and the breach of the running deadline (none when no deadline is running).
pub fn timers(d: &Deadlines) -> Vec<Timer> {
    let (deadline, due) = match d.status {
        CaseStatus::Open => ("decision", d.decision_due),
        CaseStatus::InReview { .. } => ("review", d.review_due),
        _ => return Vec::new(),
    };
    let Some(due) = due else { return Vec::new() };
    let mut out: Vec<Timer> = d
        .warnings_at
        .iter()
        .map(|w| Timer {
            kind: "warning",
            deadline,
            fraction: w.fraction,
            due_at: due.ends_at,
            fire_at: w.at,
        })
        .collect();
    out.push(Timer {
        kind: "breach",
        deadline,
        fraction: 1.0,
        due_at: due.ends_at,
        fire_at: due.ends_at,
    });
    out
}

/// The API's view of the deadlines.
pub fn to_api(d: &Deadlines) -> api::Deadlines {
    api::Deadlines {
        regime: d.regime.clone(),
        decision_due: d.decision_due.map(|due| timestamp(due.ends_at)),
        decision_due_date: d
            .decision_due
            .map(|due| due.date.to_string())
            .unwrap_or_default(),
        limit_days: d.limit.days,
        extension_tier: u32::from(d.limit.tier),
        article: d.limit.article.clone(),
        paused: matches!(d.status, CaseStatus::Paused { .. }),
        paused_days: d.paused_days,
        review_window_ends: d.review_window_ends.map(|due| timestamp(due.ends_at)),
        review_due: d.review_due.map(|due| timestamp(due.ends_at)),
        warnings_at: d.warnings_at.iter().map(|w| timestamp(w.at)).collect(),
        calendar_missing: d.flags.calendar_missing,
        explanation: d.explanation.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn stored_history_round_trips_and_drives_the_clock() {
        let clocks = match Clocks::new("cn-nfra") {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let received = Utc.with_ymd_and_hms(2025, 9, 20, 2, 0, 0).single();
        let Some(received) = received else {
            panic!("date")
        };
        let history = vec![(
            received + chrono::Duration::days(2),
            Clock::Extended {
                tier: 1,
                approver_role: None,
                approver_id: None,
            },
        )];
        let json = serde_json::to_value(&history[0].1).unwrap_or_default();
        assert_eq!(json["kind"], "extended");
        let d = clocks.derive(received, &history);
        assert_eq!(d.as_ref().map(|d| d.limit.days).ok(), Some(30));
        let t = d.map(|d| timers(&d)).unwrap_or_default();
        assert_eq!(t.iter().filter(|t| t.kind == "breach").count(), 1);
        assert!(t.iter().filter(|t| t.kind == "warning").count() >= 2);
    }
}
