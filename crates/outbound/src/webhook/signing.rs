//! Standard Webhooks signatures: symmetric `v1` and asymmetric `v1a`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, Verifier as _};
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigningError {
    #[error("a webhook secret is `whsec_` and base64 of 24 to 64 random bytes")]
    BadSecret,
    #[error("an Ed25519 key is `{0}` and base64 of 32 bytes")]
    BadKey(&'static str),
    #[error("a signer needs at least one key")]
    NoKeys,
    #[error("the system random source failed")]
    Random,
    #[error("a message id must be non-empty and hold no `.` or whitespace")]
    BadMessageId,
    #[error("webhook-timestamp is not a unix time in seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is outside the tolerance")]
    Stale,
    #[error("no signature matches")]
    NoMatch,
}

fn random<const N: usize>() -> Result<[u8; N], SigningError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|_| SigningError::Random)?;
    Ok(bytes)
}

/// A symmetric signing secret (`whsec_…`): 24 to 64 bytes, as the specification requires.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// 32 random bytes.
    pub fn generate() -> Result<Self, SigningError> {
        Ok(Secret(random::<32>()?.to_vec()))
    }

    pub fn parse(value: &str) -> Result<Self, SigningError> {
        let b64 = value
            .strip_prefix("whsec_")
            .ok_or(SigningError::BadSecret)?;
        let bytes = B64.decode(b64).map_err(|_| SigningError::BadSecret)?;
        if (24..=64).contains(&bytes.len()) {
            Ok(Secret(bytes))
        } else {
            Err(SigningError::BadSecret)
        }
    }

    pub fn to_whsec(&self) -> String {
        format!("whsec_{}", B64.encode(&self.0))
    }

    fn mac(&self, content: &[u8]) -> Vec<u8> {
        // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
        match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(mut mac) => {
                mac.update(content);
                mac.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// An Ed25519 signing key (`whsk_` + base64 of the 32-byte seed).
#[derive(Clone)]
pub struct Keypair(ed25519_dalek::SigningKey);

impl Keypair {
    pub fn generate() -> Result<Self, SigningError> {
        Ok(Keypair(ed25519_dalek::SigningKey::from_bytes(
            &random::<32>()?,
        )))
    }

    pub fn parse(value: &str) -> Result<Self, SigningError> {
        let seed = decode32(value, "whsk_")?;
        Ok(Keypair(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    pub fn to_whsk(&self) -> String {
        format!("whsk_{}", B64.encode(self.0.to_bytes()))
    }

    /// What the receiver is given (`whpk_…`).
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({})", self.public().to_whpk())
    }
}

/// An Ed25519 public key (`whpk_` + base64 of 32 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl PublicKey {
    pub fn parse(value: &str) -> Result<Self, SigningError> {
        let bytes = decode32(value, "whpk_")?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| SigningError::BadKey("whpk_"))
    }

    pub fn to_whpk(&self) -> String {
        format!("whpk_{}", B64.encode(self.0.as_bytes()))
    }
}

fn decode32(value: &str, prefix: &'static str) -> Result<[u8; 32], SigningError> {
    let b64 = value
        .strip_prefix(prefix)
        .ok_or(SigningError::BadKey(prefix))?;
    let bytes = B64.decode(b64).map_err(|_| SigningError::BadKey(prefix))?;
    bytes.try_into().map_err(|_| SigningError::BadKey(prefix))
}

/// The id of one event, the same on every retry (the receiver's idempotency key). The
/// specification forbids `.` in it, since it is joined with `.` into the signed content.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageId(String);

impl MessageId {
    /// `msg_` and a UUIDv7 (time-ordered).
    pub fn new() -> Self {
        MessageId(format!("msg_{}", uuid::Uuid::now_v7().simple()))
    }

    pub fn parse(value: &str) -> Result<Self, SigningError> {
        if value.is_empty() || value.contains('.') || value.contains(char::is_whitespace) {
            Err(SigningError::BadMessageId)
        } else {
            Ok(MessageId(value.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for MessageId {
    fn default() -> Self {
        Self::new()
    }
}

fn signed_content(id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    content
}

/// One key an endpoint's messages are signed with.
#[derive(Debug, Clone)]
pub enum SignatureKey {
    /// `v1`: HMAC-SHA256.
    Symmetric(Secret),
    /// `v1a`: Ed25519, for receivers we do not control.
    Asymmetric(Keypair),
}

/// Signs with every current key: during a rotation the old and the new one, so a receiver
/// holding either accepts the message.
#[derive(Debug, Clone)]
pub struct Signer {
    keys: Vec<SignatureKey>,
}

impl Signer {
    pub fn new(keys: Vec<SignatureKey>) -> Result<Self, SigningError> {
        if keys.is_empty() {
            return Err(SigningError::NoKeys);
        }
        Ok(Signer { keys })
    }

    /// The `webhook-signature` header value.
    pub fn sign(&self, id: &MessageId, timestamp: i64, body: &[u8]) -> String {
        let content = signed_content(id.as_str(), timestamp, body);
        self.keys
            .iter()
            .map(|key| match key {
                SignatureKey::Symmetric(secret) => {
                    format!("v1,{}", B64.encode(secret.mac(&content)))
                }
                SignatureKey::Asymmetric(pair) => {
                    format!("v1a,{}", B64.encode(pair.0.sign(&content).to_bytes()))
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What a receiver verifies with.
#[derive(Debug, Clone)]
pub enum VerifyKey {
    Symmetric(Secret),
    Asymmetric(PublicKey),
}

/// Verifies a received webhook as the specification asks: timestamp within `tolerance_secs`
/// of `now`, and at least one listed signature made by one of `keys` (HMAC compared in
/// constant time). Used by our own receivers and tests; departments use their own library.
pub fn verify(
    keys: &[VerifyKey],
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), SigningError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SigningError::BadTimestamp)?;
    if (now - ts).abs() > tolerance_secs {
        return Err(SigningError::Stale);
    }
    let content = signed_content(id, ts, body);
    for listed in signatures.split_whitespace() {
        let Some((version, sig)) = listed.split_once(',') else {
            continue;
        };
        let Ok(sig) = B64.decode(sig) else { continue };
        for key in keys {
            let ok = match (version, key) {
                ("v1", VerifyKey::Symmetric(secret)) => Hmac::<Sha256>::new_from_slice(&secret.0)
                    .map(|mut mac| {
                        mac.update(&content);
                        mac.verify_slice(&sig).is_ok()
                    })
                    .unwrap_or(false),
                ("v1a", VerifyKey::Asymmetric(public)) => {
                    ed25519_dalek::Signature::from_slice(&sig)
                        .map(|s| public.0.verify(&content, &s).is_ok())
                        .unwrap_or(false)
                }
                _ => false,
            };
            if ok {
                return Ok(());
            }
        }
    }
    Err(SigningError::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks reference libraries' tests: this secret, id,
    /// timestamp and body sign to this `v1` value.
    #[test]
    fn matches_the_reference_example() {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signer = Signer::new(vec![SignatureKey::Symmetric(secret)]).unwrap();
        let id = MessageId::parse("msg_p5jXN8AQM9LWM0D4loKWxJek").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signer.sign(&id, 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn rotation_signs_with_every_key_and_each_verifies() {
        let old = Secret::generate().unwrap();
        let new = Secret::generate().unwrap();
        let pair = Keypair::generate().unwrap();
        let signer = Signer::new(vec![
            SignatureKey::Symmetric(old.clone()),
            SignatureKey::Symmetric(new.clone()),
            SignatureKey::Asymmetric(pair.clone()),
        ])
        .unwrap();
        let id = MessageId::new();
        let header = signer.sign(&id, 1_700_000_000, b"{}");
        assert_eq!(header.split(' ').count(), 3);
        for key in [
            VerifyKey::Symmetric(old),
            VerifyKey::Symmetric(new),
            VerifyKey::Asymmetric(pair.public()),
        ] {
            assert_eq!(
                verify(
                    &[key],
                    id.as_str(),
                    "1700000000",
                    &header,
                    b"{}",
                    1_700_000_010,
                    300
                ),
                Ok(())
            );
        }
        let stranger = VerifyKey::Symmetric(Secret::generate().unwrap());
        assert_eq!(
            verify(
                std::slice::from_ref(&stranger),
                id.as_str(),
                "1700000000",
                &header,
                b"{}",
                1_700_000_010,
                300
            ),
            Err(SigningError::NoMatch)
        );
        let tampered = verify(
            &[VerifyKey::Asymmetric(pair.public())],
            id.as_str(),
            "1700000000",
            &header,
            b"{ }",
            1_700_000_010,
            300,
        );
        assert_eq!(tampered, Err(SigningError::NoMatch));
        assert_eq!(
            verify(
                &[stranger],
                id.as_str(),
                "1700000000",
                &header,
                b"{}",
                1_700_001_000,
                300
            ),
            Err(SigningError::Stale)
        );
    }

    #[test]
    fn keys_round_trip_and_bad_ones_are_refused() {
        let secret = Secret::generate().unwrap();
        assert_eq!(Secret::parse(&secret.to_whsec()).unwrap(), secret);
        assert_eq!(
            Secret::parse("whsec_c2hvcnQ="),
            Err(SigningError::BadSecret)
        );
        assert_eq!(
            Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Err(SigningError::BadSecret)
        );
        let pair = Keypair::generate().unwrap();
        let again = Keypair::parse(&pair.to_whsk()).unwrap();
        assert_eq!(again.public(), pair.public());
        assert_eq!(
            PublicKey::parse(&pair.public().to_whpk()).unwrap(),
            pair.public()
        );
        assert!(PublicKey::parse("whpk_AAAA").is_err());
        assert_eq!(format!("{secret:?}"), "Secret(..)");
        assert_eq!(MessageId::parse("a.b"), Err(SigningError::BadMessageId));
        assert!(Signer::new(vec![]).is_err());
    }
}
