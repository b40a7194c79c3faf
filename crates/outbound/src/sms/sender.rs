//! Failover over an ordered list of providers.

use std::sync::Arc;

use super::{Accepted, ProviderError, SmsProvider, SmsRequest};

/// Sends through the first provider that takes the message, in configured order.
#[derive(Clone)]
pub struct Sender {
    providers: Vec<Arc<dyn SmsProvider>>,
}

/// The message was taken; `failed_before` says which providers were tried first and why.
#[derive(Debug)]
pub struct Sent {
    pub accepted: Accepted,
    pub failed_before: Vec<ProviderError>,
}

/// The message was not taken by any provider — or may have been (`InDoubt`).
#[derive(Debug, thiserror::Error)]
pub enum SendFailure {
    #[error("no SMS provider is configured")]
    NoProviders,
    /// Every provider failed without sending: retry later (throttling and outages pass).
    #[error("every SMS provider failed: {}", list(.0))]
    Exhausted(Vec<ProviderError>),
    /// A provider rejected the recipient: no other provider will do better.
    #[error("recipient rejected: {last}")]
    Recipient {
        last: ProviderError,
        failed_before: Vec<ProviderError>,
    },
    /// A provider may have sent it: do not try another one; report it and query the provider.
    #[error("in doubt: {last}")]
    InDoubt {
        last: ProviderError,
        failed_before: Vec<ProviderError>,
    },
}

fn list(errors: &[ProviderError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Sender {
    pub fn new(providers: Vec<Arc<dyn SmsProvider>>) -> Self {
        Sender { providers }
    }

    pub async fn send(&self, request: &SmsRequest) -> Result<Sent, SendFailure> {
        if self.providers.is_empty() {
            return Err(SendFailure::NoProviders);
        }
        let mut failed_before = Vec::new();
        for provider in &self.providers {
            match provider.send(request).await {
                Ok(accepted) => {
                    return Ok(Sent {
                        accepted,
                        failed_before,
                    });
                }
                Err(err) if err.fails_over() => failed_before.push(err),
                Err(last @ ProviderError::Recipient { .. }) => {
                    return Err(SendFailure::Recipient {
                        last,
                        failed_before,
                    });
                }
                Err(last) => {
                    return Err(SendFailure::InDoubt {
                        last,
                        failed_before,
                    });
                }
            }
        }
        Err(SendFailure::Exhausted(failed_before))
    }
}
