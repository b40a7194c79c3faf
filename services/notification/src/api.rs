//! gRPC `redress.notification.v1.NotificationService`: the proof of what each consumer was
//! told, resending, previewing, and the deliveries a specialist must act on.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use redress_proto::notification::v1 as pb;
use redress_proto::{
    events::v1::{FieldViolation, NoticeChannel, NoticeKind},
    notification::v1::{
        Delivery, ListDeliveriesRequest, ListDeliveriesResponse, ListTasksRequest,
        ListTasksResponse, PreviewRequest, PreviewResponse, ResendRequest, ResendResponse,
        StatusChange, Task, notification_service_server::NotificationService,
    },
    vocab::{TextKind, code},
};
use redress_runtime::{Principal, Role, event::timestamp, grpc};
use sqlx::Row;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    Shared,
    notices::{kind_from_token, kind_token},
    store::{self, DELIVER},
    templates::{self, sample_facts, sms_length},
    webhooks::{self, manage},
};

const READERS: &[Role] = &[Role::Specialist, Role::Compliance, Role::Admin];
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
