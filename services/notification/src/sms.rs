//! SMS through `redress-outbound`: the providers of `REDRESS_SMS_CONFIG` in their failover
//! order, the clients kept for the receipt queries, and the consumer's number in the one form
//! both providers take (E.164).

use std::{sync::Arc, time::Duration};

use redress_outbound::sms::{
    PhoneNumber, ProviderKind, SendFailure, Sender, SmsProvider, SmsRequest, aliyun::Aliyun,
    tencent::Tencent,
};

use crate::{config::SmsSettings, templates::Rendered};

pub struct Sms {
    sender: Sender,
    pub aliyun: Option<Arc<Aliyun>>,
    pub tencent: Option<Arc<Tencent>>,
    /// What an attempt records as its provider before the send: the failover order.
    pub order: String,
    pub receipts_token: Option<String>,
    /// How long after a send without a receipt its provider is asked.
    pub receipt_gap: Duration,
}

/// What one SMS send came to.
pub enum SmsOutcome {
    Sent {
        provider: ProviderKind,
        message_id: String,
        /// The providers tried first and why they did not take it (the attempt's detail).
        detail: String,
    },
    /// Throttling or outages at every provider: try again later.
    Retry(String),
    /// The number was refused, or nothing can send it: no retry helps.
    Permanent(String),
    /// A provider may have taken it: never send it again by ourselves.
    InDoubt(String),
}

impl Sms {
    pub fn new(settings: SmsSettings, receipt_gap: Duration) -> Result<Self, reqwest::Error> {
        let aliyun = settings.aliyun.map(Aliyun::new).transpose()?.map(Arc::new);
        let tencent = settings
            .tencent
            .map(Tencent::new)
            .transpose()?
            .map(Arc::new);
        let mut providers: Vec<Arc<dyn SmsProvider>> = Vec::new();
        for kind in &settings.order {
            match kind {
                ProviderKind::Aliyun => {
                    if let Some(a) = &aliyun {
                        providers.push(a.clone());
                    }
                }
                ProviderKind::Tencent => {
                    if let Some(t) = &tencent {
                        providers.push(t.clone());
                    }
                }
            }
        }
        let order = settings
            .order
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(">");
        Ok(Self {
            sender: Sender::new(providers),
            aliyun,
            tencent,
            order,
            receipts_token: settings.receipts_token,
            receipt_gap,
        })
    }

    /// Sends one rendered SMS, `reference` (our delivery id) echoed in its receipts.
    pub async fn send(&self, to: &PhoneNumber, rendered: &Rendered, reference: &str) -> SmsOutcome {
        let request = SmsRequest {
            to: to.clone(),
            template: rendered.provider_key(),
            params: rendered.params.clone(),
            reference: reference.to_owned(),
        };
        let list = |errors: &[redress_outbound::sms::ProviderError]| {
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        };
        match self.sender.send(&request).await {
            Ok(sent) => SmsOutcome::Sent {
                provider: sent.accepted.provider,
                message_id: sent.accepted.message_id,
                detail: list(&sent.failed_before),
            },
            Err(SendFailure::Exhausted(errors)) => SmsOutcome::Retry(list(&errors)),
            Err(e @ (SendFailure::NoProviders | SendFailure::Recipient { .. })) => {
                SmsOutcome::Permanent(e.to_string())
            }
            Err(e @ SendFailure::InDoubt { .. }) => SmsOutcome::InDoubt(e.to_string()),
        }
    }
}

/// The consumer's number as E.164. Intake keeps mainland mobiles as 11 national digits
/// (`13812345678`); anything else must already carry its country code.
pub fn phone(raw: &str) -> Option<PhoneNumber> {
    let compact: String = raw
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .collect();
    let mainland = compact.len() == 11
        && compact.starts_with('1')
        && compact.bytes().all(|b| b.is_ascii_digit());
    let e164 = if mainland {
        format!("+86{compact}")
    } else {
        compact
    };
    PhoneNumber::parse(&e164).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_become_e164() {
        assert_eq!(phone("13812345678").unwrap().e164(), "+8613812345678");
        assert_eq!(phone("138-1234-5678").unwrap().masked(), "138****5678");
        assert_eq!(phone("+44 7700 900123").unwrap().e164(), "+447700900123");
        assert!(phone("").is_none());
        assert!(phone("12345").is_none());
    }
}
