//! The complaint and case events that make notices due: each becomes a `Trigger` recorded
//! in the consumer's transaction (once per event id by the inbox, once per dedupe key by the
//! table's unique key).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use redress_proto::events::v1::{
    CaseAssigned, CaseClockPaused, CaseClockResumed, CaseCreated, CaseDecided, CaseExtended,
    CaseHeader, CaseWithdrawn, ClockPauseReason, ComplaintWithdrawn, DecisionOutcome, NoticeKind,
};
use redress_runtime::{EventHandler, HandleError, Incoming, event::from_timestamp};
use serde_json::json;
use sqlx::PgConnection;

use crate::{
    Shared, satisfaction,
    store::{self, Trigger},
};

#[derive(Clone)]
pub struct Events {
    pub shared: Arc<Shared>,
}

impl Events {
    fn date(&self, at: Option<DateTime<Utc>>) -> String {
        at.map(|t| {
            t.with_timezone(&self.shared.settings.time_zone)
                .format("%Y-%m-%d")
                .to_string()
        })
        .unwrap_or_default()
    }

    fn trigger<E>(
        &self,
        event: &Incoming<E>,
        header: &CaseHeader,
        kind: NoticeKind,
        dedupe_key: String,
        facts: serde_json::Value,
    ) -> Trigger {
        let at = event.occurred_at.unwrap_or_else(Utc::now);
        Trigger {
            dedupe_key,
            kind,
            case_id: header.case_id.clone(),
            complaint_id: header.complaint_id.clone(),
            department: header.department.clone(),
            at,
            send_at: Utc::now(),
            facts,
        }
    }

    async fn record(&self, conn: &mut PgConnection, trigger: Trigger) -> Result<(), HandleError> {
        store::record(conn, &self.shared.notices, trigger).await?;
        Ok(())
    }
}

fn header(header: Option<&CaseHeader>) -> Result<&CaseHeader, HandleError> {
    header
        .filter(|h| !h.case_id.is_empty() && !h.complaint_id.is_empty())
        .ok_or_else(|| HandleError::Permanent("the event has no case header".into()))
}

impl EventHandler<CaseCreated> for Events {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        event: Incoming<CaseCreated>,
    ) -> Result<(), HandleError> {
        let p = &event.payload;
        let h = header(p.header.as_ref())?;
        let due = p.decision_due.as_ref().and_then(from_timestamp);
        let regime = if p.regime.is_empty() {
            self.shared.notices.default_regime.as_str()
        } else {
            p.regime.as_str()
        };
        store::upsert_case(
            conn,
            &h.case_id,
            &h.complaint_id,
            &h.reference,
            regime,
            &h.department,
            due,
        )
        .await?;
        let received = p
            .complaint
            .as_ref()
            .and_then(|c| c.received_at.as_ref())
            .and_then(from_timestamp)
            .or(event.occurred_at);
        let facts = json!({
            "reference": h.reference,
            "received_date": self.date(received),
            "decision_due_date": self.date(due),
        });
        let trigger = self.trigger(
            &event,
            h,
            NoticeKind::Receipt,
            format!("receipt:{}", h.case_id),
            facts,
        );
        self.record(conn, trigger).await
    }
}

impl EventHandler<CaseAssigned> for Events {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        event: Incoming<CaseAssigned>,
    ) -> Result<(), HandleError> {
        let h = header(event.payload.header.as_ref())?;
        // The consumer hears of the first assignment only, not of every reassignment.
        let key = format!("assigned:{}", h.case_id);
        let trigger = self.trigger(&event, h, NoticeKind::Assigned, key, json!({}));
        self.record(conn, trigger).await
    }
}

impl EventHandler<CaseExtended> for Events {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        event: Incoming<CaseExtended>,
    ) -> Result<(), HandleError> {
        let p = &event.payload;
        let h = header(p.header.as_ref())?;
        let new_due = p.decision_due.as_ref().and_then(from_timestamp);
        let facts = json!({
            "new_due_date": if p.decision_due_date.is_empty() { self.date(new_due) } else { p.decision_due_date.clone() },
            "tier": p.tier,
            "reason": p.reason,
            "article": p.article,
        });
        // Recorded against the deadline being extended: the extension is told within it.
        let trigger = self.trigger(&event, h, NoticeKind::Extended, event.id.clone(), facts);
        self.record(conn, trigger).await?;
        if let Some(due) = new_due {
            store::set_decision_due(conn, &h.case_id, due).await?;
        }
        Ok(())
    }
}

impl EventHandler<CaseClockPaused> for Events {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        event: Incoming<CaseClockPaused>,
    ) -> Result<(), HandleError> {
        let p = &event.payload;
        let h = header(p.header.as_ref())?;
        let reason = ClockPauseReason::try_from(p.reason).unwrap_or(ClockPauseReason::Unspecified);
        let (kind, zh, en) = match reason {
            ClockPauseReason::AwaitingConsumer => (
                NoticeKind::InputRequested,
                "等待您补充材料",
                "information from you",
            ),
            ClockPauseReason::ExternalAppraisal => {
                (NoticeKind::ClockPaused, "外部鉴定", "an external appraisal")
            }
            ClockPauseReason::Mediation => (NoticeKind::ClockPaused, "调解", "mediation"),
            ClockPauseReason::AwaitingThirdParty | ClockPauseReason::Unspecified => {
                (NoticeKind::ClockPaused, "等待第三方", "a third party")
            }
        };
        let facts = json!({"pause_reason_zh": zh, "pause_reason_en": en});
        let trigger = self.trigger(&event, h, kind, event.id.clone(), facts);
        self.record(conn, trigger).await
    }
}

impl EventHandler<CaseClockResumed> for Events {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        event: Incoming<CaseClockResumed>,
    ) -> Result<(), HandleError> {
        let p = &event.payload;
        let h = header(p.header.as_ref())?;
        if let Some(due) = p.decision_due.as_ref().and_then(from_timestamp) {
            store::set_decision_due(conn, &h.case_id, due).await?;
        }
        Ok(())
    }
}

impl EventHandler<CaseDecided> for Events {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        event: Incoming<CaseDecided>,
    ) -> Result<(), HandleError> {
        let p = &event.payload;
        let h = header(p.header.as_ref())?;
        let outcome = DecisionOutcome::try_from(p.outcome).unwrap_or(DecisionOutcome::Unspecified);
        let (zh, en) = match outcome {
            DecisionOutcome::Upheld => ("支持您的诉求", "upheld"),
            DecisionOutcome::PartlyUpheld => ("部分支持您的诉求", "partly upheld"),
            DecisionOutcome::NotUpheld | DecisionOutcome::Unspecified => {
                ("不支持您的诉求", "not upheld")
            }
        };
        let remedy = p.remedy.as_ref().map(remedy_text).unwrap_or_default();
        let facts = json!({
            "outcome_zh": zh,
            "outcome_en": en,
            "remedy": remedy,
            "explanation": p.explanation,
        });
        let kind = if p.review {
            NoticeKind::ReviewOutcome
        } else {
            NoticeKind::Decision
        };
        let trigger = self.trigger(&event, h, kind, event.id.clone(), facts);
        self.record(conn, trigger).await?;
        if !p.review {
            // 回访: the survey follows the decision after a while, once per case; its follow-up
            // (one reminder, then no answer) is due work from the same transaction.
            let token = satisfaction::open_survey(conn, &h.case_id, &h.complaint_id).await?;
            let mut survey = self.trigger(
                &event,
                h,
                NoticeKind::SatisfactionSurvey,
                format!("survey:{}", h.case_id),
                json!({"reply_code": reply_code(&h.case_id), "survey_token": token}),
            );
            survey.send_at = Utc::now() + self.shared.settings.survey_delay;
            survey.at = survey.send_at;
            let first_try = survey.send_at;
            if store::record(conn, &self.shared.notices, survey)
                .await?
                .is_some()
            {
                let reminder = first_try + self.shared.settings.survey_reminder;
                satisfaction::schedule_reminder(conn, &h.case_id, reminder).await?;
            }
        }
        Ok(())
    }
}

impl EventHandler<CaseWithdrawn> for Events {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        event: Incoming<CaseWithdrawn>,
    ) -> Result<(), HandleError> {
        let h = header(event.payload.header.as_ref())?;
        let key = format!("withdrawn:{}", h.complaint_id);
        let trigger = self.trigger(&event, h, NoticeKind::WithdrawalConfirmed, key, json!({}));
        self.record(conn, trigger).await
    }
}

impl EventHandler<ComplaintWithdrawn> for Events {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        event: Incoming<ComplaintWithdrawn>,
    ) -> Result<(), HandleError> {
        let complaint_id = &event.payload.complaint_id;
        if complaint_id.is_empty() {
            return Err(HandleError::Permanent("complaint_id is empty".into()));
        }
        // One confirmation whether the withdrawal arrives from intake, the case, or both.
        let header = CaseHeader {
            complaint_id: complaint_id.clone(),
            ..Default::default()
        };
        let key = format!("withdrawn:{complaint_id}");
        let trigger = self.trigger(
            &event,
            &header,
            NoticeKind::WithdrawalConfirmed,
            key,
            json!({}),
        );
        self.record(conn, trigger).await
    }
}

fn remedy_text(remedy: &redress_proto::events::v1::Remedy) -> String {
    let amount = remedy
        .amount
        .as_ref()
        .filter(|m| m.units != 0 || m.nanos != 0)
        .map(|m| {
            let cents = i64::from(m.nanos / 10_000_000).abs();
            format!("{} {}.{cents:02}", m.currency_code, m.units)
        });
    match amount {
        Some(amount) if remedy.action.is_empty() => amount,
        Some(amount) => format!("{} {amount}", remedy.action),
        None => remedy.action.clone(),
    }
}

/// The four-digit code a consumer replies to the survey SMS with: derived from the case id so
/// a resend carries the same one.
pub fn reply_code(case_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(case_id.as_bytes());
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 9000 + 1000;
    n.to_string()
}
