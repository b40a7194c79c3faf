//! The endpoint RPCs. Admins manage every endpoint; a department head only their own
//! department's, with filters inside its subjects.

use chrono::{DateTime, Utc};
use redress_proto::{
    events::v1::FieldViolation,
    notification::v1 as pb,
    vocab::{TextKind, Violations, code},
};
use redress_runtime::{Principal, Role, event::timestamp, grpc};
use sqlx::PgConnection;
use tonic::{Request, Status};
use uuid::Uuid;

use super::{check_filter, new_key, public_keys, send, store};
use crate::Shared;

const MANAGERS: &[Role] = &[Role::Admin, Role::DepartmentHead];

/// Who manages: `None` for an admin (every department), `Some(department)` for a head.
pub struct Scope {
    pub subject: String,
    pub department: Option<String>,
}

pub fn scope<T>(request: &Request<T>) -> Result<Scope, Status> {
    let principal = Principal::of(request)?;
    let role = principal.require(MANAGERS)?;
    let department = if role == Role::Admin {
        None
    } else {
        match principal.department.as_deref() {
            Some(d) if !d.is_empty() => Some(d.to_owned()),
            _ => {
                return Err(Status::permission_denied(
                    "a department head's token must name the department",
                ));
            }
        }
    };
    Ok(Scope {
        subject: principal.subject.clone(),
        department,
    })
}

pub fn to_pb(e: &store::Endpoint) -> pb::WebhookEndpoint {
    pb::WebhookEndpoint {
        endpoint_id: e.id.to_string(),
        url: e.url.clone(),
        department: e.department.clone(),
        subjects: e.subjects.clone(),
        description: e.description.clone(),
        state: e.state.clone(),
        disabled_reason: e.disabled_reason.clone(),
        failing_since: e.failing_since.map(timestamp),
        created_at: Some(timestamp(e.created_at)),
        owner: e.owner.clone(),
        signature_scheme: e.scheme.clone(),
        public_keys: if e.scheme == "v1a" {
            public_keys(&e.keys, Utc::now())
        } else {
            Vec::new()
        },
    }
}

/// The endpoint `id`, if the caller may manage it (a head's other departments look absent).
pub async fn owned(
    conn: &mut PgConnection,
    scope: &Scope,
    id: &str,
) -> Result<store::Endpoint, Status> {
    let id = grpc::id("endpointId", id)?;
    let endpoint = store::endpoint_by_id(conn, id)
        .await
        .map_err(|e| grpc::database("webhook endpoint", &e))?;
    match endpoint {
        Some(e)
            if e.state != "deleted"
                && scope.department.as_ref().is_none_or(|d| *d == e.department) =>
        {
            Ok(e)
        }
        _ => Err(Status::not_found(format!("no webhook endpoint {id}"))),
    }
}

/// Checks a registration; every problem named.
pub async fn create(
    shared: &Shared,
    scope: &Scope,
    r: &pb::CreateWebhookEndpointRequest,
) -> Result<pb::CreateWebhookEndpointResponse, Status> {
    let webhooks = &shared.webhooks;
    let mut violations = Vec::new();
    let department = grpc::slug("department", &r.department, true)
        .map_err(|v| violations.push(v))
        .unwrap_or_default();
    if let (Some(own), false) = (&scope.department, department.is_empty())
        && *own != department
    {
        violations.push(FieldViolation::new(
            "department",
            code::MISMATCH,
            format!("a department head registers for their own department, `{own}`"),
        ));
    }
    let subjects: Vec<String> = if r.subjects.is_empty() {
        vec![format!("redress.case.v1.{department}.>")]
    } else {
        r.subjects.iter().map(|s| s.trim().to_owned()).collect()
    };
    for (i, s) in subjects.iter().enumerate() {
        if let Err(reason) = check_filter(s, &department, scope.department.is_none()) {
            violations.push(FieldViolation::new(
                &format!("subjects[{i}]"),
                code::INVALID_FORMAT,
                reason,
            ));
        }
    }
    let description = grpc::text("description", &r.description, 500, TextKind::Line, false)
        .map_err(|v| violations.push(v))
        .unwrap_or_default();
    let scheme = match r.signature_scheme.trim() {
        "" | "v1" => "v1",
        "v1a" => "v1a",
        other => {
            violations.push(FieldViolation::new(
                "signatureScheme",
                code::UNKNOWN_VALUE,
                format!("`{other}`: v1 (HMAC-SHA256) or v1a (Ed25519)"),
            ));
            "v1"
        }
    };
    let url = match reqwest::Url::parse(r.url.trim()) {
        Ok(url) => match webhooks.guard.check(&url).await {
            Ok(_) => Some(url),
            Err(e) => {
                violations.push(FieldViolation::new("url", code::UNREACHABLE, e.to_string()));
                None
            }
        },
        Err(e) => {
            violations.push(FieldViolation::new(
                "url",
                code::INVALID_FORMAT,
                e.to_string(),
            ));
            None
        }
    };
    let (Some(url), true) = (url, violations.is_empty()) else {
        return Err(grpc::invalid(Violations(violations)));
    };
    let (key, secret) = new_key(scheme).map_err(|e| Status::internal(e.to_string()))?;
    let endpoint = store::Endpoint {
        id: Uuid::now_v7(),
        url: url.to_string(),
        department,
        subjects,
        description,
        owner: scope.subject.clone(),
        scheme: scheme.into(),
        keys: vec![key],
        state: "enabled".into(),
        disabled_reason: String::new(),
        failing_since: None,
        created_at: Utc::now(),
    };
    let mut conn = acquire(shared).await?;
    store::insert_endpoint(&mut conn, &endpoint)
        .await
        .map_err(|e| grpc::database("create webhook endpoint", &e))?;
    Ok(pb::CreateWebhookEndpointResponse {
        endpoint: Some(to_pb(&endpoint)),
        secret: if scheme == "v1" {
            secret
        } else {
            String::new()
        },
    })
}

pub async fn acquire(
    shared: &Shared,
) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, Status> {
    shared
        .db
        .pool()
        .acquire()
        .await
        .map_err(|e| grpc::database("webhooks", &e))
}

/// How long a rotated-out key keeps signing when the request names no overlap: long enough
/// for a receiver to deploy the new secret (svix uses 24 hours as well).
const ROTATION_OVERLAP: chrono::Duration = chrono::Duration::hours(24);

pub async fn rotate(
    shared: &Shared,
    scope: &Scope,
    r: &pb::RotateWebhookSecretRequest,
) -> Result<pb::RotateWebhookSecretResponse, Status> {
    let mut conn = acquire(shared).await?;
    let mut endpoint = owned(&mut conn, scope, &r.endpoint_id).await?;
    let now = Utc::now();
    let overlap = match r.overlap_seconds {
        0 => ROTATION_OVERLAP,
        s => chrono::Duration::seconds(i64::from(s)),
    };
    let expires = now + overlap;
    // Keys already expired are dropped; those still live end at the overlap's end at most.
    let mut keys: Vec<_> = super::live(&endpoint.keys, now)
        .into_iter()
        .cloned()
        .collect();
    for k in &mut keys {
        k.expires_at = Some(k.expires_at.map_or(expires, |t| t.min(expires)));
    }
    let (key, secret) = new_key(&endpoint.scheme).map_err(|e| Status::internal(e.to_string()))?;
    keys.push(key);
    store::set_keys(&mut conn, endpoint.id, &keys)
        .await
        .map_err(|e| grpc::database("rotate webhook secret", &e))?;
    endpoint.keys = keys;
    Ok(pb::RotateWebhookSecretResponse {
        endpoint: Some(to_pb(&endpoint)),
        secret: if endpoint.scheme == "v1" {
            secret
        } else {
            String::new()
        },
        old_expires_at: Some(timestamp(expires)),
    })
}

/// Disables (by a person), enables or deletes an endpoint.
pub async fn set_state(
    shared: &Shared,
    scope: &Scope,
    id: &str,
    state: &str,
    reason: &str,
) -> Result<store::Endpoint, Status> {
    let mut tx = shared
        .db
        .pool()
        .begin()
        .await
        .map_err(|e| grpc::database("webhook endpoint", &e))?;
    let endpoint = owned(&mut tx, scope, id).await?;
    let done = if state == "disabled" {
        let reason = format!("disabled by {}: {reason}", scope.subject);
        send::disable(
            &mut tx,
            &endpoint,
            "manual",
            &reason,
            endpoint.failing_since,
        )
        .await
    } else {
        store::set_state(&mut tx, endpoint.id, state, "").await
    };
    done.map_err(|e| grpc::database("webhook endpoint", &e))?;
    tx.commit()
        .await
        .map_err(|e| grpc::database("webhook endpoint", &e))?;
    let mut conn = acquire(shared).await?;
    store::endpoint_by_id(&mut conn, endpoint.id)
        .await
        .map_err(|e| grpc::database("webhook endpoint", &e))?
        .ok_or_else(|| Status::not_found("endpoint"))
}

pub async fn replay(
    shared: &Shared,
    scope: &Scope,
    r: &pb::ReplayWebhooksRequest,
) -> Result<pb::ReplayWebhooksResponse, Status> {
    let since: DateTime<Utc> = grpc::time("since", r.since.as_ref())
        .map_err(grpc::invalid)?
        .ok_or_else(|| grpc::invalid(FieldViolation::new("since", code::REQUIRED, "required")))?;
    let mut tx = shared
        .db
        .pool()
        .begin()
        .await
        .map_err(|e| grpc::database("replay", &e))?;
    let endpoint = owned(&mut tx, scope, &r.endpoint_id).await?;
    if endpoint.state != "enabled" {
        return Err(Status::failed_precondition(
            "the endpoint is disabled: enable it first",
        ));
    }
    let scheduled = store::replay(&mut tx, endpoint.id, since, r.include_delivered)
        .await
        .map_err(|e| grpc::database("replay", &e))?;
    tx.commit()
        .await
        .map_err(|e| grpc::database("replay", &e))?;
    Ok(pb::ReplayWebhooksResponse { scheduled })
}

/// Sends a `webhook.test` message now, records it and its attempt, answers what came back.
pub async fn test_fire(
    shared: &Shared,
    scope: &Scope,
    r: &pb::TestFireWebhookRequest,
) -> Result<pb::TestFireWebhookResponse, Status> {
    let mut conn = acquire(shared).await?;
    let endpoint = owned(&mut conn, scope, &r.endpoint_id).await?;
    let now = Utc::now();
    let event_id = format!("test:{}", Uuid::now_v7());
    let body = serde_json::json!({
        "type": "webhook.test",
        "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": { "endpointId": endpoint.id.to_string(), "department": endpoint.department },
    })
    .to_string();
    let new = store::NewMessage {
        endpoint_id: endpoint.id,
        event_id: &event_id,
        subject: "webhook.test",
        body: &body,
        occurred_at: now,
        send: false,
    };
    let id = store::insert_message(&mut conn, &new)
        .await
        .map_err(|e| grpc::database("test-fire", &e))?
        .ok_or_else(|| Status::internal("test message not recorded"))?;
    let a = send::attempt(shared, &endpoint, &id, &body)
        .await
        .map_err(Status::failed_precondition)?;
    let message = store::message_by_id(&mut conn, &id)
        .await
        .map_err(|e| grpc::database("test-fire", &e))?
        .ok_or_else(|| Status::internal("test message lost"))?;
    let state = if a.outcome == "delivered" {
        "delivered"
    } else {
        "failed"
    };
    store::attempted(&mut conn, &message, a.outcome, a.status, &a.detail, state)
        .await
        .map_err(|e| grpc::database("test-fire", &e))?;
    Ok(pb::TestFireWebhookResponse {
        message_id: id,
        delivered: a.outcome == "delivered",
        status: u32::from(a.status),
        detail: a.detail,
    })
}

pub fn message_to_pb(m: &store::Message) -> pb::WebhookMessage {
    pb::WebhookMessage {
        message_id: m.id.clone(),
        event_id: m.event_id.clone(),
        subject: m.subject.clone(),
        state: m.state.clone(),
        attempts: u32::try_from(m.attempts).unwrap_or(0),
        last_status: u32::try_from(m.last_status).unwrap_or(0),
        last_error: m.last_error.clone(),
        created_at: Some(timestamp(m.created_at)),
        delivered_at: m.delivered_at.map(timestamp),
    }
}
