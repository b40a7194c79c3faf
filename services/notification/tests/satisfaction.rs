//! 回访 end to end, over real Postgres, NATS and gRPC on real sockets: intake, case-coordination
//! and notification running for real, a case classified, worked and decided through
//! case-coordination's API, the survey mailed to a real SMTP server, the consumer's answer
//! recorded through `RecordSurveyAnswer` and read back from the case with `GetCase`; a repeated
//! answer recorded once; case-coordination down while the answer waits, then up; one reminder,
//! then no answer; an opted-out consumer asked nothing; bad input refused naming the field.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{net::SocketAddr, time::Duration};

use redress_case_coordination::config::CasesConfig;
use redress_notification::handlers::reply_code;
use redress_proto::{
    cases::v1::{
        Case, GetCaseRequest, ListCasesRequest, RecordDecisionRequest, StartWorkRequest,
        case_service_client::CaseServiceClient,
    },
    common::v1::{Channel, Money, Severity},
    events::v1::{
        CaseState, Classification, ComplaintClassified, ComplaintSummary, DecisionOutcome, Remedy,
        Satisfaction, TaxonomyLabel, event::Payload,
    },
    notification::v1::{
        OptOutOfSurveysRequest, RecordSurveyAnswerRequest,
        notification_service_client::NotificationServiceClient,
    },
};
use redress_runtime::{
    Running,
    event::{new_event, service_actor, timestamp},
    testing::{TestEnv, authed, eventually, free_port, grpc_channel},
};
use support::*;
use tokio_util::sync::CancellationToken;
use tonic::{Code, transport::Channel as GrpcChannel};

const CHANNEL: &[&str] = &["service:channel-web"];
const SPECIALIST: &[&str] = &["specialist"];

/// Case-coordination in this process, on a fixed port so it can be stopped and started again
/// where notification expects it.
struct CaseCoordination {
    running: Running,
    shutdown: CancellationToken,
}

impl CaseCoordination {
    async fn start(env: &TestEnv, addr: SocketAddr) -> Self {
        let mut runtime = env.runtime_config();
        runtime.grpc_addr = addr;
        let config = redress_case_coordination::Config {
            runtime,
            cases: CasesConfig {
                timer_poll: Duration::from_millis(200),
                ..CasesConfig::default()
            },
        };
        let shutdown = CancellationToken::new();
        let running = redress_case_coordination::run(config, shutdown.clone())
            .await
            .expect("case-coordination starts");
        Self { running, shutdown }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.running.stopped().await;
    }
}

struct World {
    env: TestEnv,
    smtp: Smtp,
    intake: Intake,
    cases: Option<CaseCoordination>,
    cases_addr: SocketAddr,
    notification: Notification,
    pool: sqlx::PgPool,
}

impl World {
    async fn start(
        tune: impl FnOnce(&mut redress_notification::config::NotificationConfig),
    ) -> Self {
        let env = TestEnv::new().await;
        let smtp = Smtp::start(None).await;
        let intake = Intake::start(&env).await;
        let cases_addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let cases = CaseCoordination::start(&env, cases_addr).await;
        let mut config = config(&env, &intake.url(), &smtp);
        config.notification.smtp_url = Some(format!("smtp://127.0.0.1:{}?tls=none", smtp.port));
        config.notification.cases_url = format!("http://{cases_addr}");
        config.notification.cases_retry_first = Duration::from_millis(100);
        config.notification.cases_retry_max = Duration::from_millis(400);
        tune(&mut config.notification);
        let notification = Notification::start(config).await;
        let pool = env.pool("notification").await;
        Self {
            env,
            smtp,
            intake,
            cases: Some(cases),
            cases_addr,
            notification,
            pool,
        }
    }

    async fn cases_client(&self) -> CaseServiceClient<GrpcChannel> {
        CaseServiceClient::new(grpc_channel(&format!("http://{}", self.cases_addr)).await)
    }

    async fn client(&self) -> NotificationServiceClient<GrpcChannel> {
        NotificationServiceClient::new(grpc_channel(&self.notification.url()).await)
    }

    /// A complaint registered by intake, classified (as classification would publish it), and
    /// its case as case-coordination opened it.
    async fn open_case(&self, email: &str) -> Case {
        let (complaint_id, reference) = self.intake.complaint(email, "zh-CN").await;
        let label = |code: &str| TaxonomyLabel {
            code: code.into(),
            confidence: 0.9,
            ..Default::default()
        };
        let classified = new_event(
            "classification",
            complaint_id.clone(),
            2,
            service_actor("classification"),
            ComplaintClassified {
                complaint: Some(ComplaintSummary {
                    complaint_id: complaint_id.clone(),
                    reference,
                    channel: Channel::Web as i32,
                    received_at: Some(timestamp(chrono::Utc::now())),
                    consumer_ref: "cref-1".into(),
                    title: "重复扣款".into(),
                    description: "平台重复扣款两次，请退还。".into(),
                    ..Default::default()
                }),
                classification: Some(Classification {
                    category: Some(label("B02.04")),
                    cause: Some(label("C11")),
                    product: "消费贷".into(),
                    severity: Severity::Medium as i32,
                    confidence: 0.9,
                    ..Default::default()
                }),
            },
        );
        self.env
            .bus()
            .await
            .publish_event(&classified)
            .await
            .unwrap();
        let client = self.cases_client().await;
        eventually("the complaint's case", WAIT, || {
            let mut client = client.clone();
            let complaint_id = complaint_id.clone();
            async move {
                let cases = client
                    .list_cases(authed(ListCasesRequest::default(), SPECIALIST))
                    .await
                    .ok()?
                    .into_inner()
                    .cases;
                cases.into_iter().find(|c| {
                    c.complaint.as_ref().map(|s| s.complaint_id.as_str())
                        == Some(complaint_id.as_str())
                })
            }
        })
        .await
    }

    /// Works the case to a decision through case-coordination's API.
    async fn decide(&self, case: &Case) -> Case {
        let mut client = self.cases_client().await;
        let case = client
            .start_work(authed(
                StartWorkRequest {
                    case_id: case.id.clone(),
                    expected_version: case.version,
                },
                SPECIALIST,
            ))
            .await
            .expect("work starts")
            .into_inner();
        let case = client
            .record_decision(authed(
                RecordDecisionRequest {
                    case_id: case.id.clone(),
                    expected_version: case.version,
                    outcome: DecisionOutcome::Upheld as i32,
                    remedy: Some(Remedy {
                        amount: Some(Money {
                            currency_code: "CNY".into(),
                            units: 1280,
                            nanos: 0,
                        }),
                        action: "退还重复扣款".into(),
                    }),
                    explanation: "重复扣款属实，已退还。".into(),
                    root_cause_tags: vec!["duplicate-debit".into()],
                },
                SPECIALIST,
            ))
            .await
            .expect("decided")
            .into_inner();
        assert_eq!(case.state, CaseState::Decided as i32);
        case
    }

    async fn get_case(&self, case_id: &str) -> Option<Case> {
        let mut client = self.cases_client().await;
        client
            .get_case(authed(
                GetCaseRequest {
                    case_id: case_id.into(),
                },
                SPECIALIST,
            ))
            .await
            .ok()
            .map(tonic::Response::into_inner)
    }

    /// Polls GetCase until the case shows `satisfaction`.
    async fn case_shows(&self, case_id: &str, satisfaction: Satisfaction) -> Case {
        eventually(
            &format!("the case showing {satisfaction:?}"),
            WAIT,
            || async move {
                let case = self.get_case(case_id).await?;
                (case.satisfaction == satisfaction as i32).then_some(case)
            },
        )
        .await
    }

    /// The state of the case's delivery of `kind`, once there is one in `states`.
    async fn delivery_in(&self, case_id: &str, kind: &str, states: &[&str]) -> String {
        eventually(&format!("{kind} in {states:?}"), WAIT, || async move {
            let state: String =
                sqlx::query_scalar("SELECT state FROM deliveries WHERE case_id = $1 AND kind = $2")
                    .bind(case_id)
                    .bind(kind)
                    .fetch_optional(&self.pool)
                    .await
                    .ok()??;
            states.contains(&state.as_str()).then_some(state)
        })
        .await
    }

    async fn count(&self, sql: &'static str, case_id: &str) -> i64 {
        sqlx::query_scalar(sql)
            .bind(case_id)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    async fn stop(mut self) {
        self.notification.stop().await;
        if let Some(cases) = self.cases.take() {
            cases.stop().await;
        }
        self.intake.stop().await;
        self.env.cleanup().await;
    }
}

fn recorded_satisfactions(case: &Case) -> Vec<(i32, String)> {
    case.timeline
        .iter()
        .filter_map(|e| match &e.payload {
            Some(Payload::CaseSatisfactionRecorded(s)) => Some((s.satisfaction, s.comment.clone())),
            _ => None,
        })
        .collect()
}

fn answer(case_id: &str, satisfaction: Satisfaction) -> RecordSurveyAnswerRequest {
    RecordSurveyAnswerRequest {
        case_id: case_id.into(),
        reply_code: reply_code(case_id),
        survey_token: String::new(),
        satisfaction: satisfaction as i32,
        comment: "退款已收到，谢谢".into(),
        channel: "sms".into(),
    }
}

/// The fields an INVALID_ARGUMENT names (`field: message (code)`, `; ` between them).
fn fields(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .message()
        .split("; ")
        .filter_map(|v| v.split_once(": ").map(|(field, _)| field.to_owned()))
        .collect()
}

#[tokio::test]
async fn an_answer_reaches_the_case_once_and_bad_input_is_refused_naming_the_field() {
    let world = World::start(|_| {}).await;
    let case = world.open_case("wang.wu@example.com").await;
    world.decide(&case).await;
    world
        .delivery_in(&case.id, "satisfaction_survey", &["sent"])
        .await;
    let survey = world
        .smtp
        .mails()
        .await
        .into_iter()
        .find(|m| m.template.starts_with("satisfaction_survey"))
        .expect("the survey mailed");
    assert!(
        survey.body.contains(&reply_code(&case.id)),
        "{}",
        survey.body
    );
    let mut client = world.client().await;

    // Bad input: every wrong field named, nothing recorded.
    let empty = client
        .record_survey_answer(authed(RecordSurveyAnswerRequest::default(), CHANNEL))
        .await
        .unwrap_err();
    let named = fields(&empty);
    for field in ["caseId", "replyCode", "satisfaction", "channel"] {
        assert!(named.iter().any(|f| f == field), "{field} in {named:?}");
    }
    let wrong = [
        (
            RecordSurveyAnswerRequest {
                reply_code: if reply_code(&case.id) == "1000" {
                    "1001".into()
                } else {
                    "1000".into()
                },
                ..answer(&case.id, Satisfaction::Satisfied)
            },
            "replyCode",
        ),
        (
            RecordSurveyAnswerRequest {
                reply_code: "12a4".into(),
                ..answer(&case.id, Satisfaction::Satisfied)
            },
            "replyCode",
        ),
        (
            RecordSurveyAnswerRequest {
                reply_code: String::new(),
                survey_token: "0".repeat(32),
                ..answer(&case.id, Satisfaction::Satisfied)
            },
            "surveyToken",
        ),
        (answer(&case.id, Satisfaction::NoAnswer), "satisfaction"),
        (
            RecordSurveyAnswerRequest {
                satisfaction: 42,
                ..answer(&case.id, Satisfaction::Satisfied)
            },
            "satisfaction",
        ),
        (
            RecordSurveyAnswerRequest {
                channel: "fax".into(),
                ..answer(&case.id, Satisfaction::Satisfied)
            },
            "channel",
        ),
        (
            RecordSurveyAnswerRequest {
                comment: "好\u{202e}评".into(),
                ..answer(&case.id, Satisfaction::Satisfied)
            },
            "comment",
        ),
        (
            RecordSurveyAnswerRequest {
                case_id: "not-a-case".into(),
                ..answer(&case.id, Satisfaction::Satisfied)
            },
            "caseId",
        ),
    ];
    for (request, field) in wrong {
        let status = client
            .record_survey_answer(authed(request, CHANNEL))
            .await
            .unwrap_err();
        assert_eq!(fields(&status), [field], "{status:?}");
    }
    let denied = client
        .record_survey_answer(authed(
            answer(&case.id, Satisfaction::Satisfied),
            &["analyst"],
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let other = uuid::Uuid::now_v7().to_string();
    let undecided = client
        .record_survey_answer(authed(answer(&other, Satisfaction::Satisfied), CHANNEL))
        .await
        .unwrap_err();
    assert_eq!(undecided.code(), Code::FailedPrecondition);
    assert!(undecided.message().starts_with("caseId"), "{undecided:?}");
    assert_eq!(
        world
            .count(
                "SELECT count(*) FROM survey_answers WHERE case_id = $1",
                &case.id
            )
            .await,
        0
    );

    // The answer, by SMS reply through the channel: on the case.
    let first = client
        .record_survey_answer(authed(answer(&case.id, Satisfaction::Satisfied), CHANNEL))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.duplicate);
    let recorded = first.answer.unwrap();
    assert_eq!(recorded.satisfaction, Satisfaction::Satisfied as i32);
    assert_eq!(recorded.channel, "sms");
    assert_eq!(recorded.recorded_by, "service:channel-web");
    let on_case = world.case_shows(&case.id, Satisfaction::Satisfied).await;
    assert_eq!(
        recorded_satisfactions(&on_case),
        [(
            Satisfaction::Satisfied as i32,
            "退款已收到，谢谢".to_owned()
        )]
    );
    let (pool, id) = (&world.pool, case.id.as_str());
    let state: (String, Option<i64>) =
        eventually("the answer marked recorded", WAIT, || async move {
            let row: (String, Option<i64>) = sqlx::query_as(
                "SELECT case_state, case_version FROM survey_answers WHERE case_id = $1",
            )
            .bind(id)
            .fetch_one(pool)
            .await
            .ok()?;
            (row.0 == "recorded").then_some(row)
        })
        .await;
    let version = state.1.and_then(|v| u64::try_from(v).ok()).unwrap();
    assert!(version <= on_case.version, "{version} {}", on_case.version);

    // The same answer again (the consumer replied twice): nothing new, nowhere.
    let again = client
        .record_survey_answer(authed(answer(&case.id, Satisfaction::Satisfied), CHANNEL))
        .await
        .unwrap()
        .into_inner();
    assert!(again.duplicate);
    assert_eq!(again.answer.unwrap().answered_at, recorded.answered_at);
    // A different later answer is refused naming the field; the first stands.
    let changed = client
        .record_survey_answer(authed(
            answer(&case.id, Satisfaction::Dissatisfied),
            CHANNEL,
        ))
        .await
        .unwrap_err();
    assert_eq!(changed.code(), Code::AlreadyExists);
    assert!(changed.message().starts_with("satisfaction"), "{changed:?}");
    assert_eq!(
        world
            .count(
                "SELECT count(*) FROM jobs WHERE queue = 'satisfaction' AND key LIKE $1 || '#%'",
                &case.id
            )
            .await,
        1,
        "one answer passed to the case"
    );
    let after = world.get_case(&case.id).await.unwrap();
    assert_eq!(
        recorded_satisfactions(&after),
        [(
            Satisfaction::Satisfied as i32,
            "退款已收到，谢谢".to_owned()
        )]
    );

    world.stop().await;
}

#[tokio::test]
async fn an_answer_waits_while_case_coordination_is_down_and_reaches_the_case_when_it_is_up() {
    let mut world = World::start(|_| {}).await;
    let case = world.open_case("zhao.liu@example.com").await;
    world.decide(&case).await;
    world
        .delivery_in(&case.id, "satisfaction_survey", &["sent"])
        .await;
    world.cases.take().unwrap().stop().await;

    // A specialist's follow-up by phone: no reply code needed.
    let mut client = world.client().await;
    let reply = client
        .record_survey_answer(authed(
            RecordSurveyAnswerRequest {
                reply_code: String::new(),
                channel: "hotline".into(),
                comment: String::new(),
                ..answer(&case.id, Satisfaction::Neutral)
            },
            SPECIALIST,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.answer.unwrap().case_state, "pending");
    // Tried, and tried again, while case-coordination is away.
    let (pool, id) = (world.pool.clone(), case.id.clone());
    eventually("attempts while case-coordination is down", WAIT, || {
        let (pool, id) = (pool.clone(), id.clone());
        async move {
            let (state, attempts): (String, i32) = sqlx::query_as(
                "SELECT case_state, case_attempts FROM survey_answers WHERE case_id = $1",
            )
            .bind(&id)
            .fetch_one(&pool)
            .await
            .ok()?;
            (state == "pending" && attempts >= 3).then_some(())
        }
    })
    .await;

    world.cases = Some(CaseCoordination::start(&world.env, world.cases_addr).await);
    let on_case = world.case_shows(&case.id, Satisfaction::Neutral).await;
    assert_eq!(recorded_satisfactions(&on_case).len(), 1);
    let actor = on_case
        .timeline
        .iter()
        .rev()
        .find(|e| matches!(e.payload, Some(Payload::CaseSatisfactionRecorded(_))))
        .and_then(|e| e.actor.clone())
        .unwrap();
    assert_eq!(actor.role, "service:notification");

    world.stop().await;
}

#[tokio::test]
async fn unanswered_one_reminder_then_no_answer_which_a_late_answer_replaces() {
    let world = World::start(|n| {
        n.survey_reminder = Duration::from_millis(300);
        n.survey_no_answer = Duration::from_millis(600);
    })
    .await;
    let case = world.open_case("sun.qi@example.com").await;
    world.decide(&case).await;

    let on_case = world.case_shows(&case.id, Satisfaction::NoAnswer).await;
    assert_eq!(
        recorded_satisfactions(&on_case),
        [(Satisfaction::NoAnswer as i32, String::new())]
    );
    // One survey, exactly one reminder, both mailed; the no answer came a period after it.
    let (survey_sent, reminder_sent): (
        chrono::DateTime<chrono::Utc>,
        chrono::DateTime<chrono::Utc>,
    ) = sqlx::query_as(
        "SELECT s.sent_at, r.sent_at FROM deliveries s, deliveries r
             WHERE s.case_id = $1 AND s.kind = 'satisfaction_survey'
               AND r.case_id = $1 AND r.kind = 'satisfaction_reminder'",
    )
    .bind(&case.id)
    .fetch_one(&world.pool)
    .await
    .unwrap();
    assert!(reminder_sent >= survey_sent + chrono::Duration::milliseconds(300));
    let answered_at: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT answered_at FROM survey_answers WHERE case_id = $1")
            .bind(&case.id)
            .fetch_one(&world.pool)
            .await
            .unwrap();
    assert!(answered_at >= reminder_sent + chrono::Duration::milliseconds(600));
    assert_eq!(
        world
            .count(
                "SELECT count(*) FROM jobs WHERE queue = 'survey-follow-up' AND grp = $1 AND state <> 'done'",
                &case.id
            )
            .await,
        0,
        "nothing more is due"
    );
    assert_eq!(
        world
            .count(
                "SELECT count(*) FROM deliveries WHERE case_id = $1 AND kind = 'satisfaction_reminder'",
                &case.id
            )
            .await,
        1
    );
    let mails = world.smtp.mails().await;
    let templates = |prefix: &str| {
        mails
            .iter()
            .filter(|m| m.template.starts_with(prefix))
            .count()
    };
    assert_eq!(templates("satisfaction_survey"), 1);
    assert_eq!(templates("satisfaction_reminder"), 1);
    let reminder = mails
        .iter()
        .find(|m| m.template.starts_with("satisfaction_reminder"))
        .unwrap();
    assert!(reminder.body.contains(&reply_code(&case.id)));

    // The consumer answers after all: their answer replaces the no answer on the case.
    let mut client = world.client().await;
    let late = client
        .record_survey_answer(authed(
            answer(&case.id, Satisfaction::Dissatisfied),
            CHANNEL,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!late.duplicate);
    let on_case = world.case_shows(&case.id, Satisfaction::Dissatisfied).await;
    assert_eq!(recorded_satisfactions(&on_case).len(), 2);

    world.stop().await;
}

#[tokio::test]
async fn an_opted_out_consumer_gets_no_survey_nor_reminder_and_the_case_records_no_answer() {
    let world = World::start(|n| {
        n.survey_reminder = Duration::from_millis(300);
        n.survey_no_answer = Duration::from_millis(300);
    })
    .await;
    let case = world.open_case("zhou.ba@example.com").await;
    let mut client = world.client().await;

    // A channel must show the survey's reply code; a wrong one is named.
    let opt_out = |reply_code: &str, channel: &str| OptOutOfSurveysRequest {
        case_id: case.id.clone(),
        reply_code: reply_code.into(),
        survey_token: String::new(),
        channel: channel.into(),
    };
    let missing = client
        .opt_out_of_surveys(authed(opt_out("", "sms"), CHANNEL))
        .await
        .unwrap_err();
    assert_eq!(fields(&missing), ["replyCode"]);
    let bad_channel = client
        .opt_out_of_surveys(authed(opt_out("", "pigeon"), SPECIALIST))
        .await
        .unwrap_err();
    assert_eq!(fields(&bad_channel), ["channel"]);

    // Once notification has seen the case, the consumer (who called the hotline) opts out.
    let first = eventually("the opt-out taken", WAIT, || {
        let mut client = client.clone();
        let request = opt_out("", "hotline");
        async move {
            client
                .opt_out_of_surveys(authed(request, SPECIALIST))
                .await
                .ok()
                .map(tonic::Response::into_inner)
        }
    })
    .await;
    assert!(!first.already);
    assert_eq!(
        first.complaint_id,
        case.complaint.as_ref().unwrap().complaint_id
    );
    let again = client
        .opt_out_of_surveys(authed(opt_out(&reply_code(&case.id), "sms"), CHANNEL))
        .await
        .unwrap()
        .into_inner();
    assert!(again.already);
    assert_eq!(again.since, first.since);

    world.decide(&case).await;
    let on_case = world.case_shows(&case.id, Satisfaction::NoAnswer).await;
    assert_eq!(
        recorded_satisfactions(&on_case),
        [(
            Satisfaction::NoAnswer as i32,
            "opted out of surveys".to_owned()
        )]
    );
    // The decision (a legal notice) went; the survey did not, and no reminder was made.
    world.delivery_in(&case.id, "decision", &["sent"]).await;
    world
        .delivery_in(&case.id, "satisfaction_survey", &["suppressed"])
        .await;
    assert_eq!(
        world
            .count(
                "SELECT count(*) FROM deliveries WHERE case_id = $1 AND kind = 'satisfaction_reminder'",
                &case.id
            )
            .await,
        0
    );
    let mails = world.smtp.mails().await;
    assert!(mails.iter().any(|m| m.template.starts_with("decision")));
    assert!(
        !mails.iter().any(|m| m.template.starts_with("satisfaction")),
        "no survey, no reminder"
    );

    world.stop().await;
}
