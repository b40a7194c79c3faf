//! Sending a delivery, as due work (`runtime::jobs`, queue `deliver`): read the contact from
//! intake, choose the channel, keep quiet hours and the rate limit, render, commit the attempt,
//! send, and record the proof with `sent` in the outbox. An attempt committed but never given
//! an outcome (a crash mid-send) makes the delivery *in doubt*: reported, never re-sent.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use redress_proto::{
    events::v1::{NoticeChannel, NotificationFailed, NotificationSent},
    intake::v1::{Contact, ContactMethod},
};
use redress_runtime::{
    OutboxMessage,
    event::{new_event, service_actor, timestamp},
    jobs::{Job, JobError, JobHandler, Outcome},
    outbox,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    SERVICE, Shared,
    contact::ContactError,
    mask,
    notices::kind_token,
    quiet, receipts, satisfaction,
    sms::{self, SmsOutcome},
    smtp::SmtpError,
    store::{self, Pending, Sent},
    templates,
};

pub struct Deliver {
    pub shared: Arc<Shared>,
}

/// The address a channel would use, when the contact has one and we can send on it.
struct Route {
    channel: NoticeChannel,
    name: &'static str,
    address: String,
    masked: String,
}

impl JobHandler for Deliver {
    async fn run(&self, conn: &mut PgConnection, job: &Job) -> Result<Outcome, JobError> {
        let id = Uuid::parse_str(&job.key).map_err(|e| JobError::Permanent(e.to_string()))?;
        let Some(delivery) = store::load(conn, id).await? else {
            return Err(JobError::Permanent(format!("no delivery {id}")));
        };
        if delivery.state != "pending" {
            return Ok(Outcome::Done);
        }
        let unfinished = store::unfinished_attempts(conn, id).await?;
        if let Some((attempt, channel, provider)) = unfinished.first() {
            let reason = format!(
                "attempt {attempt} by {channel} ({provider}) was committed but its outcome never was: it may or may not have been sent"
            );
            self.in_doubt(conn, &delivery, &reason, provider).await?;
            return Ok(Outcome::Done);
        }
        // A survey or reminder due when the consumer has opted out or answered meanwhile.
        if let Some(reason) = satisfaction::suppression(conn, &delivery).await? {
            store::suppress(conn, id, reason).await?;
            return Ok(Outcome::Done);
        }
        if let Some(later) = self.rate_limited(conn, &delivery).await? {
            return Ok(Outcome::Later(later));
        }
        let contact = self
            .shared
            .contacts
            .get(
                &delivery.complaint_id,
                &format!("send {} notice", kind_token(delivery.kind)),
            )
            .await
            .map_err(|e| match e {
                ContactError::Unavailable(m) => JobError::Retry(m),
                ContactError::Refused(m) => JobError::Permanent(m),
            })?;
        let route = self.route(&contact).ok_or_else(|| {
            JobError::Permanent("no channel: the consumer has no address we can send to".into())
        })?;
        let now = Utc::now();
        let mut overridden = false;
        if quiet::applies(route.channel) {
            match quiet::check(
                &self.shared.settings.quiet,
                self.shared.settings.time_zone,
                now,
                delivery.due_by,
            ) {
                quiet::Verdict::Send => {}
                quiet::Verdict::SendFlagged => overridden = true,
                quiet::Verdict::Wait(until) => return Ok(Outcome::Later(until)),
            }
        }
        let language = templates::language(&contact.language);
        let rendered = self
            .shared
            .templates
            .render(
                &kind_token(delivery.kind),
                route.name,
                language,
                &delivery.facts,
            )
            .map_err(|e| JobError::Permanent(e.to_string()))?;
        let provider = match (route.channel, &self.shared.sms) {
            (NoticeChannel::Email, _) => "smtp".to_owned(),
            (NoticeChannel::Sms, Some(sms)) => sms.order.clone(),
            _ => "none".to_owned(),
        };
        let attempt =
            store::begin_attempt(self.shared.db.pool(), id, route.name, &provider).await?;
        let sent = self.send(&route, &rendered, id).await;
        drop(contact);
        let (provider, message_id, detail) = match sent {
            Sending::Sent {
                provider,
                message_id,
                detail,
            } => (provider, message_id, detail),
            Sending::InDoubt(reason) => {
                // The attempt keeps no outcome: the in-doubt report names it.
                let reason = format!("attempt {attempt} by {} ({provider}): {reason}", route.name);
                self.in_doubt(conn, &delivery, &reason, &provider).await?;
                return Ok(Outcome::Done);
            }
            Sending::Retry(detail) => {
                self.attempt_failed(id, attempt, &detail).await?;
                return Err(JobError::Retry(detail));
            }
            Sending::Permanent(detail) => {
                self.attempt_failed(id, attempt, &detail).await?;
                return Err(JobError::Permanent(detail));
            }
        };
        store::finish_attempt(conn, id, attempt, "sent", &detail).await?;
        let proof = Sent {
            channel: route.name,
            language,
            masked_address: &route.masked,
            template_id: &rendered.template_id,
            template_version: rendered.version,
            body_sha256: &rendered.sha256,
            provider: &provider,
            provider_message_id: &message_id,
            quiet_hours_overridden: overridden,
            sent_at: now,
        };
        store::mark_sent(conn, id, &proof).await?;
        let event = NotificationSent {
            header: Some(delivery.header(route.channel)),
            masked_address: route.masked.clone(),
            template_id: rendered.template_id.clone(),
            template_version: rendered.version,
            body_sha256: rendered.sha256.clone(),
            provider: provider.clone(),
            provider_message_id: message_id.clone(),
            sent_at: Some(timestamp(now)),
            attempt: u32::try_from(attempt).unwrap_or(0),
            quiet_hours_overridden: overridden,
            language: language.into(),
        };
        publish(conn, &delivery, 2, event).await?;
        // After `sent`: a receipt that came first is applied now and raises `delivered`.
        if let (NoticeChannel::Sms, Some(sms)) = (route.channel, &self.shared.sms) {
            receipts::after_send(conn, id, &provider, &message_id, sms.receipt_gap).await?;
        }
        Ok(Outcome::Done)
    }

    async fn failed(
        &self,
        conn: &mut PgConnection,
        job: &Job,
        reason: &str,
    ) -> Result<(), sqlx::Error> {
        let Ok(id) = Uuid::parse_str(&job.key) else {
            return Ok(());
        };
        let Some(delivery) = store::load(conn, id).await? else {
            return Ok(());
        };
        store::mark_failed(conn, id, reason, false).await?;
        let attempts = store::attempts(conn, id).await?;
        let event = NotificationFailed {
            header: Some(delivery.header(NoticeChannel::Unspecified)),
            provider: String::new(),
            reason: reason.to_owned(),
            attempts: u32::try_from(attempts).unwrap_or(0),
            r#final: true,
            in_doubt: false,
        };
        publish(conn, &delivery, 2, event).await
    }
}

/// What one send came to, whatever the channel.
enum Sending {
    Sent {
        provider: String,
        message_id: String,
        /// Providers tried before the one that took it (the attempt's detail).
        detail: String,
    },
    Retry(String),
    Permanent(String),
    /// It may have been sent: never again by ourselves.
    InDoubt(String),
}

impl Deliver {
    /// Sends on the route's channel.
    async fn send(&self, route: &Route, rendered: &templates::Rendered, id: Uuid) -> Sending {
        match route.channel {
            NoticeChannel::Email => {
                let Some(mailer) = &self.shared.mailer else {
                    return Sending::Permanent("no SMTP server configured".into());
                };
                match mailer.send(&route.address, rendered, &id.to_string()).await {
                    Ok(message_id) => Sending::Sent {
                        provider: "smtp".into(),
                        message_id,
                        detail: String::new(),
                    },
                    Err(e @ SmtpError::Transient(_)) => Sending::Retry(e.to_string()),
                    Err(e) => Sending::Permanent(e.to_string()),
                }
            }
            NoticeChannel::Sms => {
                let (Some(sms), Some(to)) = (&self.shared.sms, sms::phone(&route.address)) else {
                    return Sending::Permanent("no SMS provider configured".into());
                };
                match sms.send(&to, rendered, &id.to_string()).await {
                    SmsOutcome::Sent {
                        provider,
                        message_id,
                        detail,
                    } => Sending::Sent {
                        provider: provider.to_string(),
                        message_id,
                        detail,
                    },
                    SmsOutcome::Retry(d) => Sending::Retry(d),
                    SmsOutcome::Permanent(d) => Sending::Permanent(d),
                    SmsOutcome::InDoubt(d) => Sending::InDoubt(d),
                }
            }
            _ => Sending::Permanent(format!("no provider for {}", route.name)),
        }
    }

    /// Records a failed attempt's outcome on its own connection: the job's transaction is
    /// rolled back by the error that follows, the attempt's record must not be.
    async fn attempt_failed(
        &self,
        id: Uuid,
        attempt: i32,
        detail: &str,
    ) -> Result<(), sqlx::Error> {
        let mut own = self.shared.db.pool().acquire().await?;
        store::finish_attempt(&mut own, id, attempt, "failed", detail).await
    }

    async fn in_doubt(
        &self,
        conn: &mut PgConnection,
        delivery: &Pending,
        reason: &str,
        provider: &str,
    ) -> Result<(), sqlx::Error> {
        store::mark_failed(conn, delivery.id, reason, true).await?;
        let attempts = store::attempts(conn, delivery.id).await?;
        let event = NotificationFailed {
            header: Some(delivery.header(NoticeChannel::Unspecified)),
            provider: provider.to_owned(),
            reason: reason.to_owned(),
            attempts: u32::try_from(attempts).unwrap_or(0),
            r#final: true,
            in_doubt: true,
        };
        publish(conn, delivery, 2, event).await
    }

    /// The consumer's preferred channel first, then the configured fallback order; the first
    /// the contact has an address for and we can send on.
    fn route(&self, contact: &Contact) -> Option<Route> {
        let preferred = match ContactMethod::try_from(contact.preferred_contact) {
            Ok(ContactMethod::Email) => Some("email"),
            Ok(ContactMethod::Sms | ContactMethod::Phone) => Some("sms"),
            _ => None,
        };
        let order = preferred
            .into_iter()
            .chain(self.shared.settings.fallback.iter().map(String::as_str));
        for name in order {
            match name {
                "email" if !contact.email.trim().is_empty() && self.shared.mailer.is_some() => {
                    return Some(Route {
                        channel: NoticeChannel::Email,
                        name: "email",
                        address: contact.email.trim().to_owned(),
                        masked: mask::email(contact.email.trim()),
                    });
                }
                "sms" if self.shared.sms.is_some() => {
                    if let Some(phone) = sms::phone(&contact.phone) {
                        return Some(Route {
                            channel: NoticeChannel::Sms,
                            name: "sms",
                            address: phone.e164().to_owned(),
                            masked: phone.masked(),
                        });
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// `Some(when)` when the consumer has had their hourly share of notices; a legal notice
    /// whose period would run out first is sent anyway.
    async fn rate_limited(
        &self,
        conn: &mut PgConnection,
        delivery: &Pending,
    ) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        let now = Utc::now();
        let window = Duration::hours(1);
        let sent = store::sent_since(conn, &delivery.complaint_id, now - window).await?;
        if sent < i64::from(self.shared.settings.rate_per_hour) {
            return Ok(None);
        }
        let later = now + window;
        if delivery.legal && delivery.due_by.is_some_and(|due| due <= later) {
            return Ok(None);
        }
        Ok(Some(later))
    }
}

pub(crate) async fn publish<P: redress_proto::EventPayload>(
    conn: &mut PgConnection,
    delivery: &Pending,
    version: u64,
    payload: P,
) -> Result<(), sqlx::Error> {
    let event = new_event(
        SERVICE,
        delivery.id.to_string(),
        version,
        service_actor(SERVICE),
        payload,
    );
    outbox::enqueue(conn, &[OutboxMessage::event(&event)]).await
}
