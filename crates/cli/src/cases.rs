//! `redress cases …`: the case-coordination verbs a specialist or handler uses, over gRPC.
//!
//! Every change names the case by id and, optionally, the version last read (`--version`);
//! without it the case is read first and its current version used — a person at a terminal
//! means "the case as it is now". Output is a one-line summary, or the case in proto3 JSON
//! with `--json`.

use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use redress_proto::{
    cases::v1::{self as api, case_service_client::CaseServiceClient},
    common::v1::Money,
    events::v1::{
        CaseState, ClockPauseReason, DecisionOutcome, EscalationTarget, Remedy, Satisfaction,
    },
};
use redress_runtime::{config::parse_duration, event::timestamp};
use tonic::transport::Channel;

use crate::grpc::{Target, failure, print_json};

/// Where case-coordination listens by default (`redress dev`: the third port).
const DEFAULT_ADDR: &str = "http://127.0.0.1:50053";

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// Print the whole case as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(clap::Args)]
struct On {
    /// The case id.
    case: String,
    /// The version you last read (stale: refused); the current one when left out.
    #[arg(long)]
    version: Option<u64>,
}

#[derive(clap::Subcommand)]
enum Verb {
    /// Cases, oldest first (a handler sees only its department's).
    List {
        #[arg(long)]
        department: Option<String>,
        /// registered, assigned, in_progress, awaiting_input, extended, decided, under_review,
        /// escalated, closed, withdrawn, merged.
        #[arg(long, value_parser = state)]
        state: Option<CaseState>,
        /// Only cases whose deadline was breached.
        #[arg(long)]
        breached: bool,
        #[arg(long, default_value_t = 50)]
        page_size: u32,
    },
    /// One case with its deadlines and timeline.
    Get { case: String },
    /// The case of a complaint, by its reference number or id.
    Find {
        complaint: String,
        /// Wait this long for the case to open (it opens once the complaint is classified).
        #[arg(long, value_parser = parse_duration, default_value = "0s")]
        wait: Duration,
        /// Print only the case id.
        #[arg(long)]
        quiet: bool,
    },
    /// Route to a department (specialist) or hand to a colleague (handler).
    Assign {
        #[command(flatten)]
        on: On,
        #[arg(long)]
        department: Option<String>,
        #[arg(long)]
        handler: Option<String>,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Take the case up.
    Start {
        #[command(flatten)]
        on: On,
    },
    Note {
        #[command(flatten)]
        on: On,
        #[arg(long)]
        text: String,
    },
    /// Ask another department; the decision waits for the answer.
    RequestInput {
        #[command(flatten)]
        on: On,
        #[arg(long)]
        to: String,
        #[arg(long)]
        question: String,
        /// When the answer is needed: a duration from now (3d, 12h) or an RFC 3339 time.
        #[arg(long, value_parser = when)]
        due: DateTime<Utc>,
    },
    AnswerInput {
        #[command(flatten)]
        on: On,
        #[arg(long)]
        request: String,
        #[arg(long, default_value = "")]
        answer: String,
        /// Release the block without the department's answer (specialists).
        #[arg(long)]
        r#override: bool,
    },
    /// The next extension tier that needs no approval.
    Extend {
        #[command(flatten)]
        on: On,
        #[arg(long)]
        reason: String,
    },
    /// The next tier that needs approval (compliance, senior management).
    ApproveExtension {
        #[command(flatten)]
        on: On,
        #[arg(long)]
        reason: String,
    },
    /// Stop the clock: external_appraisal, mediation, awaiting_consumer, awaiting_third_party.
    Pause {
        #[command(flatten)]
        on: On,
        #[arg(long, value_parser = pause_reason)]
        reason: ClockPauseReason,
        #[arg(long, default_value = "")]
        note: String,
    },
    Resume {
        #[command(flatten)]
        on: On,
    },
    /// New facts or reasons: the period restarts.
    NewFacts {
        #[command(flatten)]
        on: On,
        #[arg(long)]
        summary: String,
    },
    /// The decision: upheld, partly_upheld or not_upheld.
    Decide {
        #[command(flatten)]
        on: On,
        #[arg(long, value_parser = outcome)]
        outcome: DecisionOutcome,
        #[arg(long)]
        explanation: String,
        /// Root causes it feeds (溯源整改); repeat for several.
        #[arg(long = "root-cause", required = true)]
        root_causes: Vec<String>,
        /// A refund, e.g. 320.50.
        #[arg(long)]
        refund: Option<String>,
        #[arg(long, default_value = "CNY")]
        currency: String,
        /// What is done for the consumer, e.g. "refund the duplicate deduction".
        #[arg(long, default_value = "")]
        action: String,
    },
    /// The consumer asks for a review (核查).
    Review {
        #[command(flatten)]
        on: On,
        #[arg(long)]
        reason: String,
    },
    /// 回访: satisfied, neutral, dissatisfied or no_answer.
    Satisfaction {
        #[command(flatten)]
        on: On,
        #[arg(long, value_parser = satisfaction)]
        answer: Satisfaction,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// To mediation or the regulator.
    Escalate {
        #[command(flatten)]
        on: On,
        #[arg(long, value_parser = target)]
        to: EscalationTarget,
        #[arg(long)]
        reference: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Close this case into a surviving one.
    Merge {
        #[command(flatten)]
        on: On,
        #[arg(long)]
        into: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    Withdraw {
        #[command(flatten)]
        on: On,
        #[arg(long)]
        reason: String,
    },
    Close {
        #[command(flatten)]
        on: On,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// 回避: a handler's interest in the case (yours, or --handler's).
    Conflict {
        #[command(flatten)]
        on: On,
        #[arg(long, default_value = "")]
        handler: String,
        #[arg(long)]
        reason: String,
    },
}

// Long on purpose: one short arm per subcommand, so the whole command table reads in one place.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let channel = args
        .target
        .channel(&crate::grpc::default_addr(
            "REDRESS_CASES_ADDR",
            DEFAULT_ADDR,
        ))
        .await?;
    let mut client = CaseServiceClient::new(channel);
    let t = &args.target;
    let case = match args.verb {
        Verb::List {
            department,
            state,
            breached,
            page_size,
        } => {
            let request = api::ListCasesRequest {
                department: department.unwrap_or_default(),
                state: state.map(|s| s as i32).unwrap_or_default(),
                breached,
                page: Some(redress_proto::common::v1::PageRequest {
                    page_size,
                    page_token: String::new(),
                }),
                ..Default::default()
            };
            let list = client
                .list_cases(t.request(request)?)
                .await
                .map_err(failure)?
                .into_inner();
            if args.json {
                return print_json(&list);
            }
            for case in &list.cases {
                println!("{}", summary(case));
            }
            if !list.next_page_token.is_empty() {
                println!("(more: --page-size to see more)");
            }
            return Ok(());
        }
        Verb::Get { case } => {
            let case = get(&mut client, t, &case).await?;
            return print_json(&case);
        }
        Verb::Find {
            complaint,
            wait,
            quiet,
        } => {
            let case = find(&mut client, t, &complaint, wait).await?;
            if args.json {
                return print_json(&case);
            }
            println!(
                "{}",
                if quiet {
                    case.id.clone()
                } else {
                    summary(&case)
                }
            );
            return Ok(());
        }
        Verb::Assign {
            on,
            department,
            handler,
            reason,
        } => {
            let (case_id, expected_version) = version(&mut client, t, on).await?;
            let request = api::AssignRequest {
                case_id,
                expected_version,
                department: department.unwrap_or_default(),
                handler: handler.unwrap_or_default(),
                reason,
            };
            client.assign(t.request(request)?).await
        }
        Verb::Start { on } => {
            let (case_id, expected_version) = version(&mut client, t, on).await?;
            let request = api::StartWorkRequest {
                case_id,
                expected_version,
            };
            client.start_work(t.request(request)?).await
        }
        Verb::Note { on, text } => {
            let (case_id, expected_version) = version(&mut client, t, on).await?;
            let request = api::AddNoteRequest {
                case_id,
                expected_version,
                text,
            };
            client.add_note(t.request(request)?).await
        }
        Verb::RequestInput {
            on,
            to,
            question,
            due,
        } => {
            let (case_id, expected_version) = version(&mut client, t, on).await?;
            let request = api::RequestInputRequest {
                case_id,
                expected_version,
                to_department: to,
                question,
                due_at: Some(timestamp(due)),
            };
            client.request_input(t.request(request)?).await
        }
        Verb::AnswerInput {
            on,
            request,
            answer,
            r#override,
        } => {
            let (case_id, expected_version) = version(&mut client, t, on).await?;
            let request = api::AnswerInputRequest {
                case_id,
                expected_version,
                request_id: request,
                answer,
                r#override,
            };
            client.answer_input(t.request(request)?).await
        }
        Verb::Extend { on, reason } => {
            let (case_id, expected_version) = version(&mut client, t, on).await?;
            let request = api::ExtendRequest {
                case_id,
                expected_version,
                reason,
            };
            client.extend(t.request(request)?).await
        }
        Verb::ApproveExtension { on, reason } => {
            let (case_id, expected_version) = version(&mut client, t, on).await?;
            let request = api::ApproveExtensionRequest {
                case_id,
                expected_version,
                reason,
            };
            client.approve_extension(t.request(request)?).await
        }
        Verb::Pause { on, reason, note } => {
            let (case_id, expected_version) = version(&mut client, t, on).await?;
            let request = api::PauseClockRequest {
                case_id,
                expected_version,
                reason: reason as i32,
                note,
            };
            client.pause_clock(t.request(request)?).await
        }
        Verb::Resume { on } => {
            let (case_id, expected_version) = version(&mut client, t, on).await?;
            let request = api::ResumeClockRequest {
                case_id,
                expected_version,
            };
            client.resume_clock(t.request(request)?).await
        }
        Verb::NewFacts { on, summary } => {
            let (case_id, expected_version) = version(&mut client, t, on).await?;
            let request = api::RecordNewFactsRequest {
                case_id,
                expected_version,
                summary,
            };
            client.record_new_facts(t.request(request)?).await
        }
        Verb::Decide {
            on,
            outcome,
            explanation,
            root_causes,
            refund,
            currency,
            action,
        } => {
            let amount = refund.map(|r| money(&r, &currency)).transpose()?;
            let (case_id, expected_version) = version(&mut client, t, on).await?;
            let request = api::RecordDecisionRequest {
                case_id,
                expected_version,
                outcome: outcome as i32,
                remedy: Some(Remedy { amount, action }),
                explanation,
                root_cause_tags: root_causes,
            };
            client.record_decision(t.request(request)?).await
        }
        Verb::Review { on, reason } => {
            let (case_id, expected_version) = version(&mut client, t, on).await?;
            let request = api::RequestReviewRequest {
                case_id,
                expected_version,
                reason,
            };
            client.request_review(t.request(request)?).await
        }
        Verb::Satisfaction {
            on,
            answer,
            comment,
        } => {
            let (case_id, expected_version) = version(&mut client, t, on).await?;
            let request = api::RecordSatisfactionRequest {
                case_id,
                expected_version,
                satisfaction: answer as i32,
                comment,
            };
            client.record_satisfaction(t.request(request)?).await
        }
        Verb::Escalate {
            on,
            to,
            reference,
            note,
        } => {
            let (case_id, expected_version) = version(&mut client, t, on).await?;
            let request = api::EscalateRequest {
                case_id,
                expected_version,
                target: to as i32,
                external_reference: reference,
                note,
            };
            client.escalate(t.request(request)?).await
        }
        Verb::Merge { on, into, reason } => {
            let (case_id, expected_version) = version(&mut client, t, on).await?;
            let request = api::MergeRequest {
                case_id,
                expected_version,
                survivor_case_id: into,
                reason,
            };
            client.merge(t.request(request)?).await
        }
        Verb::Withdraw { on, reason } => {
            let (case_id, expected_version) = version(&mut client, t, on).await?;
            let request = api::WithdrawRequest {
                case_id,
                expected_version,
                reason,
            };
            client.withdraw(t.request(request)?).await
        }
        Verb::Close { on, note } => {
            let (case_id, expected_version) = version(&mut client, t, on).await?;
            let request = api::CloseRequest {
                case_id,
                expected_version,
                note,
            };
            client.close(t.request(request)?).await
        }
        Verb::Conflict {
            on,
            handler,
            reason,
        } => {
            let (case_id, expected_version) = version(&mut client, t, on).await?;
            let request = api::DeclareConflictRequest {
                case_id,
                expected_version,
                handler,
                reason,
            };
            client.declare_conflict(t.request(request)?).await
        }
    };
    let case = case.map_err(failure)?.into_inner();
    if args.json {
        print_json(&case)
    } else {
        println!("{}", summary(&case));
        Ok(())
    }
}

async fn get(
    client: &mut CaseServiceClient<Channel>,
    target: &Target,
    case: &str,
) -> anyhow::Result<api::Case> {
    let request = api::GetCaseRequest {
        case_id: case.to_owned(),
    };
    Ok(client
        .get_case(target.request(request)?)
        .await
        .map_err(failure)?
        .into_inner())
}

/// The case of a complaint, polling until `wait` has passed.
async fn find(
    client: &mut CaseServiceClient<Channel>,
    target: &Target,
    complaint: &str,
    wait: Duration,
) -> anyhow::Result<api::Case> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let request = api::ListCasesRequest {
            complaint: complaint.to_owned(),
            ..Default::default()
        };
        let list = client
            .list_cases(target.request(request)?)
            .await
            .map_err(failure)?;
        if let Some(case) = list.into_inner().cases.into_iter().next() {
            return Ok(case);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("no case for complaint {complaint} (yet: --wait gives it time to be classified)");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The case id and the version to change it at.
async fn version(
    client: &mut CaseServiceClient<Channel>,
    target: &Target,
    on: On,
) -> anyhow::Result<(String, u64)> {
    match on.version {
        Some(v) => Ok((on.case, v)),
        None => {
            let case = get(client, target, &on.case).await?;
            Ok((on.case, case.version))
        }
    }
}

/// One line: reference, id, version, state, department, handler, deadline.
fn summary(case: &api::Case) -> String {
    let state = CaseState::try_from(case.state)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("CASE_STATE_")
                .to_lowercase()
        })
        .unwrap_or_default();
    let reference = case
        .complaint
        .as_ref()
        .map(|c| c.reference.as_str())
        .unwrap_or_default();
    let due = case
        .deadlines
        .as_ref()
        .map(|d| {
            if d.paused {
                "clock paused".to_owned()
            } else if d.decision_due_date.is_empty() {
                "no running deadline".to_owned()
            } else {
                format!(
                    "decision due {} ({} days, {})",
                    d.decision_due_date, d.limit_days, d.regime
                )
            }
        })
        .unwrap_or_default();
    format!(
        "{reference}  case {}  v{}  {state}  {}{}  {due}",
        case.id,
        case.version,
        case.department,
        if case.handler.is_empty() {
            String::new()
        } else {
            format!(" ({})", case.handler)
        },
    )
}

/// `12.50` in `currency` as Money.
fn money(amount: &str, currency: &str) -> anyhow::Result<Money> {
    let (units, fraction) = amount.split_once('.').unwrap_or((amount, ""));
    if fraction.len() > 9 || !fraction.chars().all(|c| c.is_ascii_digit()) {
        bail!("--refund: `{amount}` is not an amount such as 320.50");
    }
    let units: i64 = units
        .parse()
        .with_context(|| format!("--refund: `{amount}` is not an amount such as 320.50"))?;
    let nanos: i32 = format!("{fraction:0<9}").parse().unwrap_or(0);
    let money = Money {
        currency_code: currency.to_owned(),
        units,
        nanos,
    };
    money
        .check("--refund")
        .map_err(|v| anyhow::anyhow!("{v}"))?;
    Ok(money)
}

fn when(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    let span: Duration = parse_duration(text)?;
    Ok(Utc::now() + chrono::Duration::from_std(span).map_err(|e| e.to_string())?)
}

/// An enum value by its lower-case name without the enum's prefix.
fn named<E: Copy>(
    text: &str,
    prefix: &str,
    all: &[E],
    name: impl Fn(&E) -> &'static str,
) -> Result<E, String> {
    let wanted = format!("{prefix}{}", text.trim().to_uppercase());
    all.iter()
        .find(|e| name(e) == wanted)
        .copied()
        .ok_or_else(|| {
            let names: Vec<String> = all
                .iter()
                .map(|e| name(e).trim_start_matches(prefix).to_lowercase())
                .collect();
            format!("`{text}`: one of {}", names.join(", "))
        })
}

fn state(text: &str) -> Result<CaseState, String> {
    use CaseState::*;
    let all = [
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
    ];
    named(text, "CASE_STATE_", &all, CaseState::as_str_name)
}

fn pause_reason(text: &str) -> Result<ClockPauseReason, String> {
    use ClockPauseReason::*;
    let all = [
        ExternalAppraisal,
        Mediation,
        AwaitingConsumer,
        AwaitingThirdParty,
    ];
    named(
        text,
        "CLOCK_PAUSE_REASON_",
        &all,
        ClockPauseReason::as_str_name,
    )
}

fn outcome(text: &str) -> Result<DecisionOutcome, String> {
    use DecisionOutcome::*;
    named(
        text,
        "DECISION_OUTCOME_",
        &[Upheld, PartlyUpheld, NotUpheld],
        DecisionOutcome::as_str_name,
    )
}

fn satisfaction(text: &str) -> Result<Satisfaction, String> {
    use Satisfaction::*;
    let all = [Satisfied, Neutral, Dissatisfied, NoAnswer];
    named(text, "SATISFACTION_", &all, Satisfaction::as_str_name)
}

fn target(text: &str) -> Result<EscalationTarget, String> {
    use EscalationTarget::*;
    named(
        text,
        "ESCALATION_TARGET_",
        &[Mediation, Regulator],
        EscalationTarget::as_str_name,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_refusals_list_the_choices() {
        assert_eq!(state("in_progress"), Ok(CaseState::InProgress));
        assert_eq!(outcome("partly_upheld"), Ok(DecisionOutcome::PartlyUpheld));
        let refused = satisfaction("happy").err().unwrap_or_default();
        assert!(
            refused.contains("satisfied, neutral, dissatisfied, no_answer"),
            "{refused}"
        );
    }

    #[test]
    fn refunds_are_money() {
        let m = money("320.5", "CNY").ok();
        assert_eq!(m.map(|m| (m.units, m.nanos)), Some((320, 500_000_000)));
        assert!(money("12.345", "CNY").is_err(), "CNY has two decimals");
        assert!(money("abc", "CNY").is_err());
        assert!(money("1", "RMB").is_err());
    }
}
