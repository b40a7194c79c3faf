//! gRPC `redress.notification.v1.NotificationService`: the proof of what each consumer was
//! told, resending, previewing, and the deliveries a specialist must act on.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use redress_proto::notification::v1 as pb;
use redress_proto::{
    events::v1::{FieldViolation, NoticeChannel, NoticeKind, Satisfaction},
    notification::v1::{
        Delivery, ListDeliveriesRequest, ListDeliveriesResponse, ListTasksRequest,
        ListTasksResponse, PreviewRequest, PreviewResponse, ResendRequest, ResendResponse,
        StatusChange, Task, notification_service_server::NotificationService,
    },
    vocab::{TextKind, Violations, code},
};
use redress_runtime::{Principal, Role, event::timestamp, grpc};
use sqlx::Row;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    Shared,
    handlers::reply_code,
    notices::{kind_from_token, kind_token},
    satisfaction,
    store::{self, DELIVER},
    templates::{self, sample_facts, sms_length},
    webhooks::{self, manage},
};

const READERS: &[Role] = &[Role::Specialist, Role::Compliance, Role::Admin];
/// Longest survey comment kept.
const MAX_COMMENT: usize = 2000;
const RESENDERS: &[Role] = &[Role::Specialist, Role::Admin];

pub struct Api {
    pub shared: Arc<Shared>,
}

fn channel_token(channel: NoticeChannel) -> Option<&'static str> {
    match channel {
        NoticeChannel::Email => Some("email"),
        NoticeChannel::Sms => Some("sms"),
        _ => None,
    }
}

fn channel_of(token: Option<&str>) -> NoticeChannel {
    match token {
        Some("email") => NoticeChannel::Email,
        Some("sms") => NoticeChannel::Sms,
        _ => NoticeChannel::Unspecified,
    }
}

#[tonic::async_trait]
impl NotificationService for Api {
    async fn list_deliveries(
        &self,
        request: Request<ListDeliveriesRequest>,
    ) -> Result<Response<ListDeliveriesResponse>, Status> {
        Principal::of(&request)?.require(READERS)?;
        let id = grpc::id("caseId", &request.get_ref().case_id)?.to_string();
        let pool = self.shared.db.pool();
        let rows = sqlx::query(
            "SELECT id, case_id, complaint_id, kind, state, channel, masked_address, template_id,
                    template_version, body_sha256, provider, provider_message_id, language,
                    article, due_by, sent_at, quiet_hours_overridden
             FROM deliveries WHERE case_id = $1 OR complaint_id = $1 ORDER BY created_at, id",
        )
        .bind(&id)
        .fetch_all(pool)
        .await
        .map_err(|e| grpc::database("list deliveries", &e))?;
        let mut deliveries = Vec::with_capacity(rows.len());
        for r in rows {
            let delivery_id: Uuid = r.get(0);
            let history: Vec<(String, DateTime<Utc>, String)> = sqlx::query_as(
                "SELECT status, at, detail FROM delivery_status WHERE delivery_id = $1 ORDER BY at",
            )
            .bind(delivery_id)
            .fetch_all(pool)
            .await
            .map_err(|e| grpc::database("list deliveries", &e))?;
            let text = |i: usize| r.get::<Option<String>, _>(i).unwrap_or_default();
            deliveries.push(Delivery {
                delivery_id: delivery_id.to_string(),
                case_id: r.get(1),
                complaint_id: r.get(2),
                kind: kind_from_token(r.get::<&str, _>(3))
                    .unwrap_or(NoticeKind::Unspecified)
                    .into(),
                state: r.get(4),
                channel: channel_of(r.get::<Option<&str>, _>(5)).into(),
                masked_address: text(6),
                template_id: text(7),
                template_version: r
                    .get::<Option<i32>, _>(8)
                    .and_then(|v| u32::try_from(v).ok())
                    .unwrap_or(0),
                body_sha256: text(9),
                provider: text(10),
                provider_message_id: text(11),
                language: text(12),
                article: r.get(13),
                due_by: r.get::<Option<DateTime<Utc>>, _>(14).map(timestamp),
                sent_at: r.get::<Option<DateTime<Utc>>, _>(15).map(timestamp),
                quiet_hours_overridden: r.get(16),
                history: history
                    .into_iter()
                    .map(|(status, at, detail)| StatusChange {
                        status,
                        at: Some(timestamp(at)),
                        detail,
                    })
                    .collect(),
            });
        }
        Ok(Response::new(ListDeliveriesResponse { deliveries }))
    }

    async fn resend(
        &self,
        request: Request<ResendRequest>,
    ) -> Result<Response<ResendResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        principal.require(RESENDERS)?;
        let r = request.into_inner();
        let mut violations = Vec::new();
        let old = redress_proto::vocab::parse_id("deliveryId", &r.delivery_id);
        let reason = grpc::text("reason", &r.reason, 500, TextKind::Line, true);
        let (Ok(old), Ok(reason)) = (old, reason.map_err(|v| violations.push(v))) else {
            return Err(grpc::invalid(redress_proto::vocab::Violations(violations)));
        };
        let id = Uuid::now_v7();
        let mut tx = self
            .shared
            .db
            .pool()
            .begin()
            .await
            .map_err(|e| grpc::database("resend", &e))?;
        let copied: Option<(String, String)> = sqlx::query_as(
            "INSERT INTO deliveries (id, dedupe_key, kind, case_id, complaint_id, department, regime,
                                     legal, article, due_by, facts)
             SELECT $2, 'resend:' || $2::text, kind, case_id, complaint_id, department, regime,
                    legal, article, due_by, facts
             FROM deliveries WHERE id = $1
             RETURNING case_id, complaint_id",
        )
        .bind(old)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| grpc::database("resend", &e))?;
        let Some((case_id, complaint_id)) = copied else {
            return Err(Status::not_found(format!("no delivery `{old}`")));
        };
        let detail = format!("resend of {old} by {}: {reason}", principal.subject);
        store::add_status(&mut tx, id, "recorded", &detail)
            .await
            .map_err(|e| grpc::database("resend", &e))?;
        let group = if case_id.is_empty() {
            complaint_id
        } else {
            case_id
        };
        redress_runtime::jobs::schedule(
            &mut tx,
            &[
                redress_runtime::jobs::NewJob::new(DELIVER, id.to_string(), Utc::now())
                    .group(group),
            ],
        )
        .await
        .map_err(|e| grpc::database("resend", &e))?;
        tx.commit()
            .await
            .map_err(|e| grpc::database("resend", &e))?;
        Ok(Response::new(ResendResponse {
            delivery_id: id.to_string(),
        }))
    }

    async fn preview(
        &self,
        request: Request<PreviewRequest>,
    ) -> Result<Response<PreviewResponse>, Status> {
        Principal::of(&request)?.require(&Role::PEOPLE)?;
        let r = request.get_ref();
        let mut violations = Vec::new();
        let kind = grpc::enum_value::<NoticeKind>("kind", r.kind)
            .and_then(|k| {
                k.filter(|k| *k != NoticeKind::Unspecified).ok_or_else(|| {
                    FieldViolation::new("kind", code::REQUIRED, "name a notice kind")
                })
            })
            .map_err(|v| violations.push(v))
            .ok();
        let channel = grpc::enum_value::<NoticeChannel>("channel", r.channel)
            .and_then(|c| {
                c.and_then(channel_token).ok_or_else(|| {
                    FieldViolation::new("channel", code::UNKNOWN_VALUE, "EMAIL or SMS")
                })
            })
            .map_err(|v| violations.push(v))
            .ok();
        let language = match r.language.as_str() {
            "" => Some("zh-CN"),
            l if templates::LANGUAGES.contains(&l) => Some(l),
            _ => {
                violations.push(FieldViolation::new(
                    "language",
                    code::UNKNOWN_VALUE,
                    "zh-CN or en",
                ));
                None
            }
        };
        let (Some(kind), Some(channel), Some(language)) = (kind, channel, language) else {
            return Err(grpc::invalid(redress_proto::vocab::Violations(violations)));
        };
        let rendered = self
            .shared
            .templates
            .render(&kind_token(kind), channel, language, &sample_facts())
            .map_err(|e| Status::not_found(e.to_string()))?;
        let (segments, encoding) = if channel == "sms" {
            let length = sms_length(&rendered.body);
            (
                u32::try_from(length.segments).unwrap_or(u32::MAX),
                length.encoding.name(),
            )
        } else {
            (0, "")
        };
        Ok(Response::new(PreviewResponse {
            template_id: rendered.template_id,
            template_version: rendered.version,
            subject: rendered.subject.unwrap_or_default(),
            body: rendered.body,
            sms_segments: segments,
            sms_encoding: encoding.into(),
        }))
    }

    async fn list_tasks(
        &self,
        request: Request<ListTasksRequest>,
    ) -> Result<Response<ListTasksResponse>, Status> {
        Principal::of(&request)?.require(READERS)?;
        let rows: Vec<(Uuid, String, String, String, bool, DateTime<Utc>)> = sqlx::query_as(
            "SELECT t.delivery_id, d.case_id, d.kind, t.reason, t.in_doubt, t.created_at
             FROM specialist_tasks t JOIN deliveries d ON d.id = t.delivery_id
             WHERE t.resolved_at IS NULL ORDER BY t.created_at, t.delivery_id",
        )
        .fetch_all(self.shared.db.pool())
        .await
        .map_err(|e| grpc::database("list tasks", &e))?;
        let tasks = rows
            .into_iter()
            .map(|(id, case_id, kind, reason, in_doubt, at)| Task {
                delivery_id: id.to_string(),
                case_id,
                kind: kind_from_token(&kind)
                    .unwrap_or(NoticeKind::Unspecified)
                    .into(),
                reason,
                in_doubt,
                created_at: Some(timestamp(at)),
            })
            .collect();
        Ok(Response::new(ListTasksResponse { tasks }))
    }

    async fn record_survey_answer(
        &self,
        request: Request<pb::RecordSurveyAnswerRequest>,
    ) -> Result<Response<pb::RecordSurveyAnswerResponse>, Status> {
        let caller = SurveyCaller::of(&request)?;
        let r = request.into_inner();
        let mut v = Violations::default();
        let proof = Proof::parse(&mut v, &caller, &r.case_id, &r.reply_code, &r.survey_token);
        let score = match grpc::enum_value::<Satisfaction>("satisfaction", r.satisfaction) {
            Ok(Some(s)) if s != Satisfaction::NoAnswer => Some(s),
            Ok(Some(_)) => {
                v.add(
                    "satisfaction",
                    code::UNKNOWN_VALUE,
                    "satisfied, neutral or dissatisfied: no answer is recorded by the service when none comes",
                );
                None
            }
            Ok(None) => {
                v.add(
                    "satisfaction",
                    code::REQUIRED,
                    "satisfied, neutral or dissatisfied",
                );
                None
            }
            Err(violation) => {
                v.0.push(violation);
                None
            }
        };
        let comment = v.check(grpc::text(
            "comment",
            &r.comment,
            MAX_COMMENT,
            TextKind::Prose,
            false,
        ));
        let channel = answer_channel(&mut v, &r.channel);
        let (Some(proof), Some(score), Some(comment), Some(channel)) =
            (proof, score, comment, channel)
        else {
            return Err(grpc::invalid(v));
        };
        let mut tx = self
            .shared
            .db
            .pool()
            .begin()
            .await
            .map_err(|e| grpc::database("record survey answer", &e))?;
        let survey = satisfaction::survey(&mut tx, &proof.case_id)
            .await
            .map_err(|e| grpc::database("record survey answer", &e))?;
        let Some((complaint_id, token)) = survey else {
            return Err(Status::failed_precondition(format!(
                "caseId: case `{}` has no satisfaction survey here: it is not decided yet, or its decision has not reached notification",
                proof.case_id
            )));
        };
        proof.verify(Some(token.as_str()))?;
        let answer = satisfaction::NewAnswer {
            case_id: &proof.case_id,
            complaint_id: &complaint_id,
            satisfaction: score,
            comment: &comment,
            channel,
            recorded_by: &caller.subject,
        };
        let recorded = satisfaction::record(&mut tx, &answer)
            .await
            .map_err(|e| grpc::database("record survey answer", &e))?;
        tx.commit()
            .await
            .map_err(|e| grpc::database("record survey answer", &e))?;
        match recorded {
            satisfaction::Recorded::New(a) => Ok(Response::new(pb::RecordSurveyAnswerResponse {
                answer: Some(answer_to_pb(&a)),
                duplicate: false,
            })),
            satisfaction::Recorded::Duplicate(a) => {
                Ok(Response::new(pb::RecordSurveyAnswerResponse {
                    answer: Some(answer_to_pb(&a)),
                    duplicate: true,
                }))
            }
            satisfaction::Recorded::Conflict(a) => Err(Status::already_exists(format!(
                "satisfaction: the survey of case `{}` was answered `{}` at {}; a different answer is not recorded (a specialist corrects the case with case-coordination's RecordSatisfaction)",
                a.case_id,
                satisfaction::token(a.satisfaction),
                a.answered_at.to_rfc3339(),
            ))),
        }
    }

    async fn opt_out_of_surveys(
        &self,
        request: Request<pb::OptOutOfSurveysRequest>,
    ) -> Result<Response<pb::OptOutOfSurveysResponse>, Status> {
        let caller = SurveyCaller::of(&request)?;
        let r = request.into_inner();
        let mut v = Violations::default();
        let proof = Proof::parse(&mut v, &caller, &r.case_id, &r.reply_code, &r.survey_token);
        let channel = answer_channel(&mut v, &r.channel);
        let (Some(proof), Some(channel)) = (proof, channel) else {
            return Err(grpc::invalid(v));
        };
        let mut tx = self
            .shared
            .db
            .pool()
            .begin()
            .await
            .map_err(|e| grpc::database("opt out of surveys", &e))?;
        let complaint_id = store::complaint_of(&mut tx, &proof.case_id)
            .await
            .map_err(|e| grpc::database("opt out of surveys", &e))?
            .ok_or_else(|| {
                Status::not_found(format!(
                    "caseId: no case `{}` has reached notification",
                    proof.case_id
                ))
            })?;
        let token = satisfaction::survey(&mut tx, &proof.case_id)
            .await
            .map_err(|e| grpc::database("opt out of surveys", &e))?
            .map(|(_, token)| token);
        proof.verify(token.as_deref())?;
        let (since, already) = store::opt_out(&mut tx, &complaint_id, &caller.subject, channel)
            .await
            .map_err(|e| grpc::database("opt out of surveys", &e))?;
        tx.commit()
            .await
            .map_err(|e| grpc::database("opt out of surveys", &e))?;
        Ok(Response::new(pb::OptOutOfSurveysResponse {
            complaint_id,
            since: Some(timestamp(since)),
            already,
        }))
    }

    async fn create_webhook_endpoint(
        &self,
        request: Request<pb::CreateWebhookEndpointRequest>,
    ) -> Result<Response<pb::CreateWebhookEndpointResponse>, Status> {
        let scope = manage::scope(&request)?;
        let created = manage::create(&self.shared, &scope, request.get_ref()).await?;
        Ok(Response::new(created))
    }

    async fn list_webhook_endpoints(
        &self,
        request: Request<pb::ListWebhookEndpointsRequest>,
    ) -> Result<Response<pb::ListWebhookEndpointsResponse>, Status> {
        let scope = manage::scope(&request)?;
        let mut conn = manage::acquire(&self.shared).await?;
        let endpoints = webhooks::store::endpoints(&mut conn, scope.department.as_deref())
            .await
            .map_err(|e| grpc::database("list webhook endpoints", &e))?;
        Ok(Response::new(pb::ListWebhookEndpointsResponse {
            endpoints: endpoints.iter().map(manage::to_pb).collect(),
        }))
    }

    async fn rotate_webhook_secret(
        &self,
        request: Request<pb::RotateWebhookSecretRequest>,
    ) -> Result<Response<pb::RotateWebhookSecretResponse>, Status> {
        let scope = manage::scope(&request)?;
        let rotated = manage::rotate(&self.shared, &scope, request.get_ref()).await?;
        Ok(Response::new(rotated))
    }

    async fn disable_webhook_endpoint(
        &self,
        request: Request<pb::DisableWebhookEndpointRequest>,
    ) -> Result<Response<pb::WebhookEndpoint>, Status> {
        let scope = manage::scope(&request)?;
        let r = request.get_ref();
        let reason =
            grpc::text("reason", &r.reason, 500, TextKind::Line, true).map_err(grpc::invalid)?;
        let e =
            manage::set_state(&self.shared, &scope, &r.endpoint_id, "disabled", &reason).await?;
        Ok(Response::new(manage::to_pb(&e)))
    }

    async fn enable_webhook_endpoint(
        &self,
        request: Request<pb::EnableWebhookEndpointRequest>,
    ) -> Result<Response<pb::WebhookEndpoint>, Status> {
        let scope = manage::scope(&request)?;
        let id = &request.get_ref().endpoint_id;
        let e = manage::set_state(&self.shared, &scope, id, "enabled", "").await?;
        Ok(Response::new(manage::to_pb(&e)))
    }

    async fn delete_webhook_endpoint(
        &self,
        request: Request<pb::DeleteWebhookEndpointRequest>,
    ) -> Result<Response<pb::DeleteWebhookEndpointResponse>, Status> {
        let scope = manage::scope(&request)?;
        let id = &request.get_ref().endpoint_id;
        manage::set_state(&self.shared, &scope, id, "deleted", "").await?;
        Ok(Response::new(pb::DeleteWebhookEndpointResponse {}))
    }

    async fn replay_webhooks(
        &self,
        request: Request<pb::ReplayWebhooksRequest>,
    ) -> Result<Response<pb::ReplayWebhooksResponse>, Status> {
        let scope = manage::scope(&request)?;
        let replayed = manage::replay(&self.shared, &scope, request.get_ref()).await?;
        Ok(Response::new(replayed))
    }

    async fn test_fire_webhook(
        &self,
        request: Request<pb::TestFireWebhookRequest>,
    ) -> Result<Response<pb::TestFireWebhookResponse>, Status> {
        let scope = manage::scope(&request)?;
        let fired = manage::test_fire(&self.shared, &scope, request.get_ref()).await?;
        Ok(Response::new(fired))
    }

    async fn list_webhook_messages(
        &self,
        request: Request<pb::ListWebhookMessagesRequest>,
    ) -> Result<Response<pb::ListWebhookMessagesResponse>, Status> {
        let scope = manage::scope(&request)?;
        let mut conn = manage::acquire(&self.shared).await?;
        let endpoint = manage::owned(&mut conn, &scope, &request.get_ref().endpoint_id).await?;
        let messages = webhooks::store::messages(&mut conn, endpoint.id)
            .await
            .map_err(|e| grpc::database("list webhook messages", &e))?;
        Ok(Response::new(pb::ListWebhookMessagesResponse {
            messages: messages.iter().map(manage::message_to_pb).collect(),
        }))
    }
}

/// Who may record a survey answer or an opt-out: a channel's system, relaying what the
/// consumer sent (it must show the survey's reply code or token), or a specialist following up
/// by phone (they identified the consumer; proof optional).
struct SurveyCaller {
    subject: String,
    channel: bool,
}

impl SurveyCaller {
    fn of<T>(request: &Request<T>) -> Result<Self, Status> {
        let principal = Principal::of(request)?;
        let channel = principal
            .roles
            .iter()
            .any(|r| matches!(r, Role::Channel(_)));
        if !channel && !principal.has(Role::Specialist) {
            return Err(Status::permission_denied(
                "this call needs a channel service (service:channel-*) or the role specialist",
            ));
        }
        Ok(Self {
            subject: principal.subject.clone(),
            channel,
        })
    }
}

/// The case and what shows the caller answers for its consumer.
struct Proof {
    case_id: String,
    reply_code: Option<String>,
    token: Option<String>,
}

impl Proof {
    /// Checks the fields' form; `None` (with the violations added) when one is wrong.
    fn parse(
        v: &mut Violations,
        caller: &SurveyCaller,
        case_id: &str,
        reply_code: &str,
        token: &str,
    ) -> Option<Self> {
        let case_id = v.check(redress_proto::vocab::parse_id("caseId", case_id));
        let reply_code = reply_code.trim();
        let token = token.trim();
        let mut ok = true;
        let digits = |text: &str, n: usize, digit: fn(&u8) -> bool| {
            text.len() == n && text.as_bytes().iter().all(digit)
        };
        if !reply_code.is_empty() && !digits(reply_code, 4, u8::is_ascii_digit) {
            v.add(
                "replyCode",
                code::INVALID_FORMAT,
                "the four digits the survey carried",
            );
            ok = false;
        }
        if !token.is_empty() && !digits(token, 32, u8::is_ascii_hexdigit) {
            v.add(
                "surveyToken",
                code::INVALID_FORMAT,
                "the 32 hexadecimal digits of the survey's link",
            );
            ok = false;
        }
        if caller.channel && reply_code.is_empty() && token.is_empty() {
            v.add(
                "replyCode",
                code::REQUIRED,
                "a channel gives the survey's reply code (or its surveyToken)",
            );
            ok = false;
        }
        let case_id = case_id?;
        ok.then(|| Self {
            case_id: case_id.to_string(),
            reply_code: (!reply_code.is_empty()).then(|| reply_code.to_owned()),
            token: (!token.is_empty()).then(|| token.to_ascii_lowercase()),
        })
    }

    /// Whatever proof was given must be the case's: the reply code derived from its id, the
    /// token of its survey.
    fn verify(&self, survey_token: Option<&str>) -> Result<(), Status> {
        let mut v = Violations::default();
        if let Some(given) = &self.reply_code
            && *given != reply_code(&self.case_id)
        {
            v.add(
                "replyCode",
                code::MISMATCH,
                "not the reply code of this case's survey",
            );
        }
        if let Some(given) = &self.token
            && survey_token != Some(given.as_str())
        {
            v.add(
                "surveyToken",
                code::MISMATCH,
                "not the token of this case's survey",
            );
        }
        v.into_result(()).map_err(grpc::invalid)
    }
}

/// The channel an answer or opt-out came by.
fn answer_channel(v: &mut Violations, channel: &str) -> Option<&'static str> {
    let channel = channel.trim();
    if channel.is_empty() {
        v.add(
            "channel",
            code::REQUIRED,
            format!("one of {}", satisfaction::CHANNELS.join(", ")),
        );
        return None;
    }
    let found = satisfaction::CHANNELS
        .iter()
        .copied()
        .find(|c| c.eq_ignore_ascii_case(channel));
    if found.is_none() {
        v.add(
            "channel",
            code::UNKNOWN_VALUE,
            format!("one of {}", satisfaction::CHANNELS.join(", ")),
        );
    }
    found
}

fn answer_to_pb(a: &satisfaction::Answer) -> pb::SurveyAnswer {
    pb::SurveyAnswer {
        case_id: a.case_id.clone(),
        complaint_id: a.complaint_id.clone(),
        satisfaction: a.satisfaction.into(),
        comment: a.comment.clone(),
        channel: a.channel.clone(),
        answered_at: Some(timestamp(a.answered_at)),
        recorded_by: a.recorded_by.clone(),
        case_state: a.case_state.clone(),
        case_detail: a.case_detail.clone(),
    }
}
