//! Department webhooks per the Standard Webhooks specification
//! (<https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>).
//!
//! - [`signing`]: `webhook-id`, `webhook-timestamp`, `webhook-signature`; `v1` is
//!   `base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}"))` with `whsec_` secrets, `v1a` an
//!   Ed25519 signature of the same bytes with `whsk_`/`whpk_` keys; several signatures,
//!   space-separated, while secrets rotate.
//! - [`deliver`]: one attempt — POST, classify the answer (2xx done, 410 disable, anything else
//!   retry, honouring `Retry-After`).
//! - [`retry`]: the schedule and the disabling rule, read from `data/webhook-retry.json`.
//! - [`ssrf`]: what an endpoint URL may point at, checked at send time.

pub mod deliver;
pub mod retry;
pub mod signing;
pub mod ssrf;

pub use deliver::{Deliverer, Endpoint, Message, Outcome};
pub use retry::{RetryPolicy, parse_retry_after};
pub use signing::{
    MessageId, PublicKey, Secret, SignatureKey, Signer, SigningError, VerifyKey, verify,
};
pub use ssrf::{Guard, Resolve, SsrfError, SsrfPolicy, SystemResolver};
