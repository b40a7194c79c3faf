//! Outbound channels for Redress notices, as a library the notification service calls:
//!
//! - [`sms`]: SMS through Aliyun dysmsapi and Tencent Cloud SMS, each signed exactly as its
//!   public documentation says, with failover between them, and their delivery receipts parsed
//!   into one typed form keyed by the provider's message id;
//! - [`webhook`]: department webhooks per the Standard Webhooks specification — signing (`v1`
//!   HMAC-SHA256 with secret rotation, `v1a` Ed25519), delivery with outcome classification, the
//!   retry schedule and disabling rule as data, and an SSRF guard that resolves a host once,
//!   checks the address and pins the connection to it.
//!
//! Nothing here stores anything: the service records attempts, dedupes receipts and schedules
//! retries with `runtime::jobs`.

pub mod sms;
pub mod webhook;
