//! The intake domain: what a valid submission is, and how personal data is kept out of
//! everything that leaves this service.

pub mod redact;
pub mod similarity;
pub mod validate;

pub use validate::{Registration, validate};
