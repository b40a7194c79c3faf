//! Delivery receipts (status reports), whichever way they arrive: pushed to our callback or
//! pulled from the provider's query API. They can arrive twice, late, or before our record of
//! the send: the caller dedupes on [`Receipt::key`].

use chrono::{DateTime, FixedOffset};

use super::ProviderKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptStatus {
    Delivered,
    Failed,
    /// Sent to the carrier, no report yet (Aliyun's query answers this).
    Pending,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    pub provider: ProviderKind,
    /// Aliyun `BizId`, Tencent `SerialNo`/`sid`: the id [`super::Accepted`] returned.
    pub message_id: String,
    /// As the provider reports it (Aliyun masks it in pushed reports).
    pub phone: String,
    pub status: ReceiptStatus,
    /// The carrier's status code, e.g. `DELIVERED`, `DELIVRD`, `MK:0001`.
    pub code: String,
    pub description: String,
    pub reported_at: Option<DateTime<FixedOffset>>,
    /// Our reference (Aliyun `OutId`, Tencent `SessionContext`) when the provider echoes it.
    pub reference: Option<String>,
}

impl Receipt {
    /// What to dedupe on: one message id per provider (we send one number per request).
    pub fn key(&self) -> (ProviderKind, &str) {
        (self.provider, &self.message_id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    #[error("{provider} receipt is not the documented JSON: {source}")]
    Malformed {
        provider: ProviderKind,
        source: serde_json::Error,
    },
}
