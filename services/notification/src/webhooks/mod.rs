//! Department webhooks: departments and partners that do not sit on NATS register endpoints
//! for a filter of case event subjects; every matching case event becomes one message per
//! endpoint, signed per Standard Webhooks (`redress-outbound`) and sent as due work on svix's
//! schedule (data: `crates/outbound/data/webhook-retry.json`).
//!
//! ```text
//! fanout  — CASE_EVENTS (durable notification-webhooks) → one message per matching endpoint
//! send    — queue `webhook`: one attempt, then delivered / retry later / endpoint disabled
//! manage  — the endpoint RPCs: create, list, rotate, disable, enable, delete, replay, test-fire
//! store   — the SQL
//! ```
//!
//! Per-endpoint ordering is not promised: a retried older message can land after a newer one
//! (receivers order by the event's `occurredAt`, and dedupe on `webhook-id`).

pub mod fanout;
pub mod manage;
pub mod send;
pub mod store;

use std::time::Duration;

use chrono::{DateTime, Utc};
use redress_outbound::webhook::{
    Deliverer, Guard, RetryPolicy, Secret, SignatureKey, Signer, SigningError, SsrfPolicy,
    signing::Keypair,
};
use serde::{Deserialize, Serialize};

/// The due-work queue messages are sent from.
pub const QUEUE: &str = "webhook";

/// What sending webhooks needs: the SSRF guard (also checked at registration), the
/// deliverer, and the retry policy.
pub struct Webhooks {
    pub guard: Guard,
    pub deliverer: Deliverer,
    pub policy: RetryPolicy,
}

impl Webhooks {
    pub fn new(
        policy: SsrfPolicy,
        timeout: Duration,
        retry: RetryPolicy,
        root: Option<reqwest::Certificate>,
    ) -> Self {
        let mut deliverer = Deliverer::new(Guard::new(policy.clone()), timeout);
        if let Some(root) = root {
            deliverer = deliverer.with_root_certificate(root);
        }
        Self {
            guard: Guard::new(policy),
            deliverer,
            policy: retry,
        }
    }
}

/// One signing key of an endpoint as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredKey {
    /// `whsec_…` (v1) or `whsk_…` (v1a).
    pub key: String,
    /// Set when a newer key replaced it: it signs beside the new one until then.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A fresh key for `scheme`: what is stored, and what the owner is shown (the `whsec_`
/// secret for v1; the `whpk_` public key for v1a).
pub fn new_key(scheme: &str) -> Result<(StoredKey, String), SigningError> {
    let (key, shown) = if scheme == "v1a" {
        let pair = Keypair::generate()?;
        (pair.to_whsk(), pair.public().to_whpk())
    } else {
        let secret = Secret::generate()?.to_whsec();
        (secret.clone(), secret)
    };
    Ok((
        StoredKey {
            key,
            expires_at: None,
        },
        shown,
    ))
}

/// The keys still valid at `now`.
pub fn live(keys: &[StoredKey], now: DateTime<Utc>) -> Vec<&StoredKey> {
    keys.iter()
        .filter(|k| k.expires_at.is_none_or(|t| t > now))
        .collect()
}

/// Signs with every key still valid at `now` (during a rotation, the old and the new).
pub fn signer(keys: &[StoredKey], now: DateTime<Utc>) -> Result<Signer, SigningError> {
    let mut out = Vec::new();
    for k in live(keys, now) {
        out.push(if k.key.starts_with("whsk_") {
            SignatureKey::Asymmetric(Keypair::parse(&k.key)?)
        } else {
            SignatureKey::Symmetric(Secret::parse(&k.key)?)
        });
    }
    Signer::new(out)
}

/// The public keys (v1a) receivers verify with.
pub fn public_keys(keys: &[StoredKey], now: DateTime<Utc>) -> Vec<String> {
    live(keys, now)
        .into_iter()
        .filter_map(|k| Keypair::parse(&k.key).ok())
        .map(|p| p.public().to_whpk())
        .collect()
}

/// Whether `subject` matches the NATS-style `filter` (`*` one token, `>` one or more at the end).
pub fn matches(filter: &str, subject: &str) -> bool {
    let mut wanted = filter.split('.');
    let mut given = subject.split('.');
    loop {
        match (wanted.next(), given.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(w), Some(g)) if w == g => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Checks a subject filter for a department's endpoint: a case subject, within the
/// department's subjects unless the caller may see every department.
pub fn check_filter(filter: &str, department: &str, any_department: bool) -> Result<(), String> {
    let tokens: Vec<&str> = filter.split('.').collect();
    if tokens.iter().any(|t| t.is_empty()) {
        return Err(format!("`{filter}` has an empty token"));
    }
    if let Some(i) = tokens.iter().position(|t| *t == ">")
        && i + 1 != tokens.len()
    {
        return Err(format!("`{filter}`: `>` may only end a filter"));
    }
    if tokens.len() < 4 || tokens[..3] != ["redress", "case", "v1"] {
        return Err(format!(
            "`{filter}` is not a case event subject (redress.case.v1.<department>.<event>)"
        ));
    }
    if !any_department && tokens[3] != department {
        return Err(format!(
            "`{filter}` reaches beyond department `{department}` (redress.case.v1.{department}.…)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_as_nats_subjects_do() {
        assert!(matches(
            "redress.case.v1.cards.>",
            "redress.case.v1.cards.decided"
        ));
        assert!(!matches("redress.case.v1.cards.>", "redress.case.v1.cards"));
        assert!(matches(
            "redress.case.v1.*.decided",
            "redress.case.v1.loans.decided"
        ));
        assert!(!matches(
            "redress.case.v1.*.decided",
            "redress.case.v1.loans.created"
        ));
        assert!(matches(
            "redress.case.v1.cards.created",
            "redress.case.v1.cards.created"
        ));
        assert!(!matches(
            "redress.case.v1.cards.created",
            "redress.case.v1.cards.created.x"
        ));
    }

    #[test]
    fn a_department_head_filters_only_their_department() {
        assert!(check_filter("redress.case.v1.cards.>", "cards", false).is_ok());
        assert!(check_filter("redress.case.v1.cards.decided", "cards", false).is_ok());
        let err = check_filter("redress.case.v1.*.decided", "cards", false).unwrap_err();
        assert!(err.contains("beyond department"), "{err}");
        assert!(check_filter("redress.case.v1.*.decided", "cards", true).is_ok());
        assert!(check_filter("redress.complaint.v1.>", "cards", true).is_err());
        assert!(check_filter("redress.case.v1.>.x", "cards", true).is_err());
        assert!(check_filter("redress.case..cards", "cards", true).is_err());
    }

    #[test]
    fn rotation_signs_with_both_keys_until_the_old_expires() {
        let now = Utc::now();
        let (mut old, _) = new_key("v1").unwrap();
        let (new, shown) = new_key("v1").unwrap();
        assert!(shown.starts_with("whsec_"));
        old.expires_at = Some(now + chrono::Duration::hours(1));
        let keys = vec![old, new];
        let id = redress_outbound::webhook::MessageId::new();
        let both = signer(&keys, now).unwrap().sign(&id, 1, b"{}");
        assert_eq!(both.split(' ').count(), 2);
        let later = now + chrono::Duration::hours(2);
        assert_eq!(
            signer(&keys, later)
                .unwrap()
                .sign(&id, 1, b"{}")
                .split(' ')
                .count(),
            1
        );
        let (pair, public) = new_key("v1a").unwrap();
        assert!(pair.key.starts_with("whsk_") && public.starts_with("whpk_"));
        assert_eq!(public_keys(&[pair], now), [public]);
    }
}
