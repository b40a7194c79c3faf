//! SMS through the HTTP APIs of Chinese cloud providers, each signed exactly as its public
//! documentation says: [`aliyun`] (dysmsapi `SendSms`, RPC signature v1, HMAC-SHA1) and
//! [`tencent`] (SMS API 2021-01-11 `SendSms`, TC3-HMAC-SHA256).
//!
//! A [`Sender`] holds an ordered list of providers and moves to the next one when a provider is
//! throttled, unavailable or refuses our account — but never after an *in-doubt* attempt (a
//! timeout after the request went out), since the message may already be on its way, and never
//! for a recipient the provider rejects (another provider would reject it too).
//!
//! Delivery receipts arrive by callback or by the providers' query APIs; both are parsed into
//! [`Receipt`]s keyed by the provider's message id, which the caller dedupes on.

pub mod aliyun;
mod codes;
mod phone;
mod receipt;
mod sender;
pub mod tencent;

use std::fmt;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use codes::CodeClass;
pub use phone::{PhoneError, PhoneNumber};
pub use receipt::{Receipt, ReceiptError, ReceiptStatus};
pub use sender::{SendFailure, Sender, Sent};

/// Which provider a message went through (and whose id space its message id belongs to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Aliyun,
    Tencent,
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProviderKind::Aliyun => "aliyun",
            ProviderKind::Tencent => "tencent",
        })
    }
}

/// One SMS to send. Chinese carriers only carry pre-approved templates, so a message is a
/// template key (ours, e.g. `decision.zh-CN`, mapped to each provider's approved template id in
/// its config) and the template's variables in order.
#[derive(Debug, Clone)]
pub struct SmsRequest {
    pub to: PhoneNumber,
    pub template: String,
    /// Variables in template order: Aliyun takes them by name, Tencent by position.
    pub params: Vec<(String, String)>,
    /// Our delivery id, echoed back in receipts (Aliyun `OutId`, Tencent `SessionContext`).
    pub reference: String,
}

/// A provider took the message: its id is what receipts will carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub provider: ProviderKind,
    pub message_id: String,
    pub request_id: Option<String>,
}

/// Why one provider did not take a message.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{provider} throttled the send ({code}: {message})")]
    Throttled {
        provider: ProviderKind,
        code: String,
        message: String,
    },
    #[error("{provider} is unavailable ({code}: {message})")]
    Unavailable {
        provider: ProviderKind,
        code: String,
        message: String,
    },
    #[error("{provider} refused our request ({code}: {message})")]
    Refused {
        provider: ProviderKind,
        code: String,
        message: String,
    },
    #[error("{provider} rejected the recipient ({code}: {message})")]
    Recipient {
        provider: ProviderKind,
        code: String,
        message: String,
    },
    #[error("{provider} has no template configured for `{template}`")]
    NoTemplate {
        provider: ProviderKind,
        template: String,
    },
    /// The request may have reached the provider but we do not know its answer.
    #[error("{provider}: outcome unknown, the message may have been sent ({reason})")]
    InDoubt {
        provider: ProviderKind,
        reason: String,
    },
}

impl ProviderError {
    pub fn provider(&self) -> ProviderKind {
        match self {
            ProviderError::Throttled { provider, .. }
            | ProviderError::Unavailable { provider, .. }
            | ProviderError::Refused { provider, .. }
            | ProviderError::Recipient { provider, .. }
            | ProviderError::NoTemplate { provider, .. }
            | ProviderError::InDoubt { provider, .. } => *provider,
        }
    }

    /// Whether the next provider may be tried: only when this one certainly did not send.
    pub fn fails_over(&self) -> bool {
        matches!(
            self,
            ProviderError::Throttled { .. }
                | ProviderError::Unavailable { .. }
                | ProviderError::Refused { .. }
                | ProviderError::NoTemplate { .. }
        )
    }

    /// An error code from the provider, classified by `data/sms-codes.json`.
    pub(crate) fn from_code(provider: ProviderKind, code: &str, message: &str) -> Self {
        let (code, message) = (code.to_owned(), message.to_owned());
        match codes::classify(provider, &code) {
            CodeClass::Throttled => ProviderError::Throttled {
                provider,
                code,
                message,
            },
            CodeClass::Unavailable => ProviderError::Unavailable {
                provider,
                code,
                message,
            },
            CodeClass::Recipient => ProviderError::Recipient {
                provider,
                code,
                message,
            },
            CodeClass::Refused => ProviderError::Refused {
                provider,
                code,
                message,
            },
        }
    }

    /// Sends a built request and reads its status and body; transport errors classified.
    pub(crate) async fn exchange(
        provider: ProviderKind,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, Vec<u8>), ProviderError> {
        let response = request
            .send()
            .await
            .map_err(|e| Self::from_transport(provider, &e))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Self::from_transport(provider, &e))?;
        Ok((status, bytes.to_vec()))
    }

    /// The provider's approved template for one of our template keys.
    pub(crate) fn template<'a>(
        provider: ProviderKind,
        templates: &'a std::collections::HashMap<String, String>,
        request: &SmsRequest,
    ) -> Result<&'a String, ProviderError> {
        templates
            .get(&request.template)
            .ok_or_else(|| ProviderError::NoTemplate {
                provider,
                template: request.template.clone(),
            })
    }

    /// A transport error: only a failed connection proves nothing was sent.
    pub(crate) fn from_transport(provider: ProviderKind, err: &reqwest::Error) -> Self {
        if err.is_connect() {
            ProviderError::Unavailable {
                provider,
                code: "connect".into(),
                message: err.to_string(),
            }
        } else {
            ProviderError::InDoubt {
                provider,
                reason: err.to_string(),
            }
        }
    }

    /// A response we cannot read. A 429 is a refusal whatever its body; anything else may
    /// have been processed.
    pub(crate) fn unreadable(provider: ProviderKind, status: u16, why: &str) -> Self {
        if status == 429 {
            ProviderError::Throttled {
                provider,
                code: "http-429".into(),
                message: why.to_owned(),
            }
        } else {
            ProviderError::InDoubt {
                provider,
                reason: format!("HTTP {status}, unreadable answer: {why}"),
            }
        }
    }
}

/// An SMS provider adapter.
pub trait SmsProvider: Send + Sync {
    fn kind(&self) -> ProviderKind;
    fn send<'a>(
        &'a self,
        request: &'a SmsRequest,
    ) -> BoxFuture<'a, Result<Accepted, ProviderError>>;
}

/// The time format both providers use in receipts and queries, in China Standard Time.
pub(crate) fn parse_cst(value: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    let cst = chrono::FixedOffset::east_opt(8 * 3600)?;
    let naive = chrono::NaiveDateTime::parse_from_str(value.trim(), "%Y-%m-%d %H:%M:%S").ok()?;
    naive.and_local_timezone(cst).single()
}
