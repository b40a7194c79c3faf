//! 回访: the satisfaction follow-up after a decision, end to end.
//!
//! ```text
//! decided ─▶ survey (delivery) + surveys row (token) + job survey-follow-up "reminder:<case>"
//!   reminder job: answered → done; survey sent ≥ REDRESS_NOTIFY_SURVEY_REMINDER ago → one
//!                 reminder (delivery, once by its dedupe key) + job "no-answer:<case>"
//!   no-answer job: answered → done; reminder sent ≥ REDRESS_NOTIFY_SURVEY_NO_ANSWER ago →
//!                 answer `no_answer`
//! answer (RPC, or no answer) ─▶ survey_answers (one row per case) + job satisfaction
//!   "<case>#<revision>": GetCase, RecordSatisfaction as service:notification; retried with
//!   backoff for as long as case-coordination cannot be reached
//! ```
//!
//! Every step is due work (`runtime::jobs`) committed with the change that makes it due, so a
//! crash or case-coordination being down delays the follow-up but never loses it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use redress_proto::events::v1::{CaseState, NoticeKind, Satisfaction};
use redress_runtime::jobs::{self, Job, JobError, JobHandler, NewJob, Outcome};
use sqlx::{PgConnection, Row};

use crate::{
    Shared,
    cases::CasesError,
    notices::kind_token,
    store::{self, Pending, Trigger},
};

/// The queue of the reminder and the no-answer steps.
pub const FOLLOW_UP: &str = "survey-follow-up";
/// The queue that passes an answer to the case.
pub const TO_CASE: &str = "satisfaction";

/// Who records a no answer.
const SELF: &str = "service:notification";
/// The comment a no answer carries for a consumer who opted out of surveys, so whoever reads
/// the case sees why nobody asked.
pub const OPTED_OUT: &str = "opted out of surveys";

/// How an answer may come (the request's `channel`); `none` is the service's own no answer.
pub const CHANNELS: &[&str] = &[
    "sms", "email", "web", "app", "wechat", "hotline", "letter", "walk_in",
];

pub fn token(s: Satisfaction) -> &'static str {
    match s {
        Satisfaction::Satisfied => "satisfied",
        Satisfaction::Neutral => "neutral",
        Satisfaction::Dissatisfied => "dissatisfied",
        Satisfaction::NoAnswer => "no_answer",
        Satisfaction::Unspecified => "",
    }
}

pub fn from_token(token: &str) -> Satisfaction {
    match token {
        "satisfied" => Satisfaction::Satisfied,
        "neutral" => Satisfaction::Neutral,
        "dissatisfied" => Satisfaction::Dissatisfied,
        "no_answer" => Satisfaction::NoAnswer,
        _ => Satisfaction::Unspecified,
    }
}

/// A case's answer as stored.
#[derive(Debug, Clone)]
pub struct Answer {
    pub case_id: String,
    pub complaint_id: String,
    pub satisfaction: Satisfaction,
    pub comment: String,
    pub channel: String,
    pub recorded_by: String,
    pub answered_at: DateTime<Utc>,
    pub revision: i32,
    pub case_state: String,
    pub case_attempts: i32,
    pub case_detail: String,
}

/// An answer to record.
pub struct NewAnswer<'a> {
    pub case_id: &'a str,
    pub complaint_id: &'a str,
    pub satisfaction: Satisfaction,
    pub comment: &'a str,
    pub channel: &'a str,
    pub recorded_by: &'a str,
}

/// What recording an answer came to.
#[derive(Debug)]
pub enum Recorded {
    /// Stored (first, or replacing a no answer) and scheduled for the case.
    New(Answer),
    /// The same answer was stored before: nothing changed.
    Duplicate(Answer),
    /// A different answer stands: nothing changed.
    Conflict(Answer),
}

/// The case's survey, opened with its survey delivery: its token (the same one again when
/// the decision is seen twice).
pub async fn open_survey(
    conn: &mut PgConnection,
    case_id: &str,
    complaint_id: &str,
) -> Result<String, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO surveys (case_id, complaint_id) VALUES ($1, $2)
         ON CONFLICT (case_id) DO UPDATE SET case_id = EXCLUDED.case_id RETURNING token",
    )
    .bind(case_id)
    .bind(complaint_id)
    .fetch_one(conn)
    .await
}

/// The case's survey: (complaint id, token).
pub async fn survey(
    conn: &mut PgConnection,
    case_id: &str,
) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as("SELECT complaint_id, token FROM surveys WHERE case_id = $1")
        .bind(case_id)
        .fetch_optional(conn)
        .await
}

/// Schedules the reminder step (in the transaction that records the survey).
pub async fn schedule_reminder(
    conn: &mut PgConnection,
    case_id: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    jobs::schedule(
        conn,
        &[NewJob::new(FOLLOW_UP, format!("reminder:{case_id}"), at).group(case_id)],
    )
    .await
}

fn answer_of(r: &sqlx::postgres::PgRow) -> Answer {
    Answer {
        case_id: r.get(0),
        complaint_id: r.get(1),
        satisfaction: from_token(r.get::<&str, _>(2)),
        comment: r.get(3),
        channel: r.get(4),
        recorded_by: r.get(5),
        answered_at: r.get(6),
        revision: r.get(7),
        case_state: r.get(8),
        case_attempts: r.get(9),
        case_detail: r.get(10),
    }
}

/// The case's answer; `lock` holds its row to the end of the transaction.
pub async fn load(
    conn: &mut PgConnection,
    case_id: &str,
    lock: bool,
) -> Result<Option<Answer>, sqlx::Error> {
    // Two whole statements: sqlx takes only static SQL.
    let query = if lock {
        sqlx::query(
            "SELECT case_id, complaint_id, satisfaction, comment, channel, recorded_by,
                    answered_at, revision, case_state, case_attempts, case_detail
             FROM survey_answers WHERE case_id = $1 FOR UPDATE",
        )
    } else {
        sqlx::query(
            "SELECT case_id, complaint_id, satisfaction, comment, channel, recorded_by,
                    answered_at, revision, case_state, case_attempts, case_detail
             FROM survey_answers WHERE case_id = $1",
        )
    };
    let row = query.bind(case_id).fetch_optional(conn).await?;
    Ok(row.as_ref().map(answer_of))
}

/// Whether the case has an answer (a no answer included): nothing more is asked then.
pub async fn answered(conn: &mut PgConnection, case_id: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM survey_answers WHERE case_id = $1)")
        .bind(case_id)
        .fetch_one(conn)
        .await
}

/// Records an answer once per case, in the caller's transaction, and schedules passing it to
/// the case. The same answer again is a duplicate; a consumer's answer replaces a no answer
/// (they answered late); anything else leaves the first answer standing.
pub async fn record(conn: &mut PgConnection, a: &NewAnswer<'_>) -> Result<Recorded, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO survey_answers (case_id, complaint_id, satisfaction, comment, channel, recorded_by)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (case_id) DO NOTHING",
    )
    .bind(a.case_id)
    .bind(a.complaint_id)
    .bind(token(a.satisfaction))
    .bind(a.comment)
    .bind(a.channel)
    .bind(a.recorded_by)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !inserted {
        let existing = load(conn, a.case_id, true)
            .await?
            .ok_or(sqlx::Error::RowNotFound)?;
        if existing.satisfaction == a.satisfaction {
            return Ok(Recorded::Duplicate(existing));
        }
        if existing.satisfaction != Satisfaction::NoAnswer
            || a.satisfaction == Satisfaction::NoAnswer
        {
            return Ok(Recorded::Conflict(existing));
        }
        sqlx::query(
            "UPDATE survey_answers SET satisfaction = $2, comment = $3, channel = $4,
               recorded_by = $5, answered_at = clock_timestamp(), revision = revision + 1,
               case_state = 'pending', case_attempts = 0, case_detail = '', case_version = NULL,
               case_recorded_at = NULL
             WHERE case_id = $1",
        )
        .bind(a.case_id)
        .bind(token(a.satisfaction))
        .bind(a.comment)
        .bind(a.channel)
        .bind(a.recorded_by)
        .execute(&mut *conn)
        .await?;
    }
    let answer = load(conn, a.case_id, false)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    jobs::schedule(
        conn,
        &[NewJob::new(
            TO_CASE,
            format!("{}#{}", answer.case_id, answer.revision),
            Utc::now(),
        )
        .group(answer.case_id.clone())],
    )
    .await?;
    Ok(Recorded::New(answer))
}

/// Why a survey or reminder due now must not go: the consumer opted out (surveys only, never
/// a legal notice) or already answered.
pub async fn suppression(
    conn: &mut PgConnection,
    delivery: &Pending,
) -> Result<Option<&'static str>, sqlx::Error> {
    if !matches!(
        delivery.kind,
        NoticeKind::SatisfactionSurvey | NoticeKind::SatisfactionReminder
    ) {
        return Ok(None);
    }
    if !delivery.legal && store::survey_opt_out(conn, &delivery.complaint_id).await? {
        return Ok(Some("the consumer opted out of surveys"));
    }
    if !delivery.case_id.is_empty() && answered(conn, &delivery.case_id).await? {
        return Ok(Some("the consumer already answered the survey"));
    }
    Ok(None)
}

/// The survey or reminder delivery of a case, as the follow-up needs it.
struct Sent {
    complaint_id: String,
    department: String,
    facts: serde_json::Value,
    state: String,
    sent_at: Option<DateTime<Utc>>,
}

async fn delivery(
    conn: &mut PgConnection,
    dedupe_key: &str,
    kind: NoticeKind,
) -> Result<Option<Sent>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT complaint_id, department, facts, state, sent_at FROM deliveries
         WHERE dedupe_key = $1 AND kind = $2",
    )
    .bind(dedupe_key)
    .bind(kind_token(kind))
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| Sent {
        complaint_id: r.get(0),
        department: r.get(1),
        facts: r.get(2),
        state: r.get(3),
        sent_at: r.get(4),
    }))
}

/// The reminder and no-answer steps (queue `survey-follow-up`).
pub struct FollowUp {
    pub shared: Arc<Shared>,
}

impl FollowUp {
    async fn no_answer(
        &self,
        conn: &mut PgConnection,
        case_id: &str,
        complaint_id: &str,
    ) -> Result<(), sqlx::Error> {
        let comment = if store::survey_opt_out(conn, complaint_id).await? {
            OPTED_OUT
        } else {
            ""
        };
        let answer = NewAnswer {
            case_id,
            complaint_id,
            satisfaction: Satisfaction::NoAnswer,
            comment,
            channel: "none",
            recorded_by: SELF,
        };
        // A consumer's answer that came meanwhile stands (Conflict): nothing to do.
        record(conn, &answer).await?;
        Ok(())
    }

    async fn reminder_step(
        &self,
        conn: &mut PgConnection,
        case_id: &str,
    ) -> Result<Outcome, JobError> {
        let settings = &self.shared.settings;
        let now = Utc::now();
        let Some(survey) = delivery(
            conn,
            &format!("survey:{case_id}"),
            NoticeKind::SatisfactionSurvey,
        )
        .await?
        else {
            return Ok(Outcome::Done);
        };
        match survey.state.as_str() {
            // Not sent yet (its delay, quiet hours, the rate limit, retries): look again later.
            "pending" => Ok(Outcome::Later(now + settings.survey_reminder)),
            "sent" | "delivered" => {
                let due = survey.sent_at.unwrap_or(now) + settings.survey_reminder;
                if now < due {
                    return Ok(Outcome::Later(due));
                }
                let reminder = Trigger {
                    // Once per case, whatever runs this step again.
                    dedupe_key: format!("reminder:{case_id}"),
                    kind: NoticeKind::SatisfactionReminder,
                    case_id: case_id.to_owned(),
                    complaint_id: survey.complaint_id.clone(),
                    department: survey.department.clone(),
                    at: now,
                    send_at: now,
                    // The same reply code and token as the survey's.
                    facts: survey.facts.clone(),
                };
                store::record(conn, &self.shared.notices, reminder).await?;
                jobs::schedule(
                    conn,
                    &[NewJob::new(
                        FOLLOW_UP,
                        format!("no-answer:{case_id}"),
                        now + settings.survey_no_answer,
                    )
                    .group(case_id)],
                )
                .await?;
                Ok(Outcome::Done)
            }
            // Opted out: nobody is asked, and the case still needs its follow-up to close —
            // recorded as not answered when the reminder would have gone.
            "suppressed" => {
                if store::survey_opt_out(conn, &survey.complaint_id).await? {
                    self.no_answer(conn, case_id, &survey.complaint_id).await?;
                }
                Ok(Outcome::Done)
            }
            // Failed or in doubt: the delivery is a specialist's task already; they follow up
            // by another way and record what the consumer says.
            _ => Ok(Outcome::Done),
        }
    }

    async fn no_answer_step(
        &self,
        conn: &mut PgConnection,
        case_id: &str,
    ) -> Result<Outcome, JobError> {
        let now = Utc::now();
        let Some((complaint_id, _)) = survey(conn, case_id).await? else {
            return Ok(Outcome::Done);
        };
        let reminder = delivery(
            conn,
            &format!("reminder:{case_id}"),
            NoticeKind::SatisfactionReminder,
        )
        .await?;
        let after = self.shared.settings.survey_no_answer;
        match reminder.as_ref().map(|r| (r.state.as_str(), r.sent_at)) {
            Some(("pending", _)) => return Ok(Outcome::Later(now + after)),
            Some(("sent" | "delivered", sent_at)) => {
                let due = sent_at.unwrap_or(now) + after;
                if now < due {
                    return Ok(Outcome::Later(due));
                }
            }
            // No reminder in the regime, or it was suppressed, failed or in doubt: the period
            // since it was due has run.
            _ => {}
        }
        self.no_answer(conn, case_id, &complaint_id).await?;
        Ok(Outcome::Done)
    }
}

impl JobHandler for FollowUp {
    async fn run(&self, conn: &mut PgConnection, job: &Job) -> Result<Outcome, JobError> {
        let Some((step, case_id)) = job.key.split_once(':') else {
            return Err(JobError::Permanent(format!("bad key `{}`", job.key)));
        };
        if answered(conn, case_id).await? {
            return Ok(Outcome::Done);
        }
        match step {
            "reminder" => self.reminder_step(conn, case_id).await,
            "no-answer" => self.no_answer_step(conn, case_id).await,
            _ => Err(JobError::Permanent(format!("bad key `{}`", job.key))),
        }
    }
}

/// Passing an answer to the case (queue `satisfaction`).
pub struct ToCase {
    pub shared: Arc<Shared>,
}

/// What passing an answer came to.
enum Passed {
    Recorded(u64),
    Skipped(String),
    Refused(String),
    Later(String),
}

impl ToCase {
    async fn pass(&self, answer: &Answer) -> Passed {
        let cases = &self.shared.cases;
        let case = match cases.get(&answer.case_id).await {
            Ok(case) => case,
            Err(e @ (CasesError::Unavailable(_) | CasesError::Stale(_))) => {
                return Passed::Later(e.to_string());
            }
            Err(e @ CasesError::Refused(_)) => return Passed::Refused(e.to_string()),
        };
        let current =
            Satisfaction::try_from(case.satisfaction).unwrap_or(Satisfaction::Unspecified);
        // Already there: a repeat, or a crash after the call and before our commit.
        if current == answer.satisfaction {
            return Passed::Recorded(case.version);
        }
        if answer.satisfaction == Satisfaction::NoAnswer && current != Satisfaction::Unspecified {
            return Passed::Skipped(format!(
                "the case already has the answer `{}`; no answer never replaces one",
                token(current)
            ));
        }
        if case.state != CaseState::Decided as i32 {
            let state = CaseState::try_from(case.state)
                .map(|s| s.as_str_name())
                .unwrap_or("unknown");
            return Passed::Refused(format!(
                "the case is {state}: satisfaction is recorded on a decided case only"
            ));
        }
        match cases
            .record_satisfaction(
                &answer.case_id,
                case.version,
                answer.satisfaction,
                &answer.comment,
            )
            .await
        {
            Ok(case) => Passed::Recorded(case.version),
            Err(e @ (CasesError::Unavailable(_) | CasesError::Stale(_))) => {
                Passed::Later(e.to_string())
            }
            Err(e @ CasesError::Refused(_)) => Passed::Refused(e.to_string()),
        }
    }
}

impl JobHandler for ToCase {
    async fn run(&self, conn: &mut PgConnection, job: &Job) -> Result<Outcome, JobError> {
        let Some((case_id, revision)) = job.key.rsplit_once('#') else {
            return Err(JobError::Permanent(format!("bad key `{}`", job.key)));
        };
        let revision: i32 = revision
            .parse()
            .map_err(|_| JobError::Permanent(format!("bad key `{}`", job.key)))?;
        let Some(answer) = load(conn, case_id, true).await? else {
            return Ok(Outcome::Done);
        };
        // Replaced since (a late answer after a no answer): the newer revision has its own job.
        if answer.revision != revision || answer.case_state != "pending" {
            return Ok(Outcome::Done);
        }
        let (state, detail, version) = match self.pass(&answer).await {
            Passed::Recorded(version) => ("recorded", String::new(), Some(version)),
            Passed::Skipped(detail) => ("skipped", detail, None),
            Passed::Refused(detail) => {
                tracing::warn!(case_id, %detail, "the case did not take the survey answer");
                ("refused", detail, None)
            }
            Passed::Later(detail) => {
                // Never given up: case-coordination coming back is only a matter of time, and
                // the answer must reach the case. Later runs are not counted as the queue's
                // attempts, so the backoff counts them here.
                let attempts: i32 = sqlx::query_scalar(
                    "UPDATE survey_answers SET case_attempts = case_attempts + 1, case_detail = $2
                     WHERE case_id = $1 RETURNING case_attempts",
                )
                .bind(case_id)
                .bind(&detail)
                .fetch_one(&mut *conn)
                .await?;
                let delay = self
                    .shared
                    .settings
                    .cases_retry
                    .delay(u32::try_from(attempts).unwrap_or(1), job.id);
                let delay = chrono::Duration::from_std(delay)
                    .unwrap_or_else(|_| chrono::Duration::hours(1));
                tracing::info!(case_id, attempts, %detail, "case-coordination not reached; trying again");
                return Ok(Outcome::Later(Utc::now() + delay));
            }
        };
        sqlx::query(
            "UPDATE survey_answers SET case_state = $2, case_detail = $3, case_version = $4,
               case_attempts = case_attempts + 1,
               case_recorded_at = CASE WHEN $2 = 'recorded' THEN now() END
             WHERE case_id = $1",
        )
        .bind(case_id)
        .bind(state)
        .bind(detail)
        .bind(version.and_then(|v| i64::try_from(v).ok()))
        .execute(conn)
        .await?;
        Ok(Outcome::Done)
    }

    /// Only our own database failing every retry ends here (case-coordination being away is
    /// `Later`, never a failure): the answer says so instead of staying `pending` for ever.
    async fn failed(
        &self,
        conn: &mut PgConnection,
        job: &Job,
        reason: &str,
    ) -> Result<(), sqlx::Error> {
        let Some((case_id, revision)) = job.key.rsplit_once('#') else {
            return Ok(());
        };
        let revision: i32 = revision.parse().unwrap_or(0);
        sqlx::query(
            "UPDATE survey_answers SET case_state = 'refused', case_detail = $3
             WHERE case_id = $1 AND revision = $2 AND case_state = 'pending'",
        )
        .bind(case_id)
        .bind(revision)
        .bind(format!("not passed to the case: {reason}"))
        .execute(conn)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_is_stored_under_a_token_that_reads_back() {
        for s in [
            Satisfaction::Satisfied,
            Satisfaction::Neutral,
            Satisfaction::Dissatisfied,
            Satisfaction::NoAnswer,
        ] {
            assert_eq!(from_token(token(s)), s);
        }
        assert_eq!(from_token("very happy"), Satisfaction::Unspecified);
        assert!(!CHANNELS.contains(&"none"), "`none` is the service's own");
    }
}
