//! The personal-data vault: AES-256-GCM encryption under a ring of keys from configuration,
//! each sealed value carrying the id of its key so keys can rotate, and keyed pseudonyms
//! (`consumer_ref`) that are stable for one person across complaints.

use std::collections::BTreeMap;

use aes_gcm::{
    Aes256Gcm, Nonce,
    aead::{Aead, AeadCore, KeyInit, OsRng, Payload},
};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VaultError {
    #[error("REDRESS_INTAKE_KEYS: `{0}` is not `<key-id>:<base64 of 32 bytes>`")]
    KeyFormat(String),
    #[error("REDRESS_INTAKE_ACTIVE_KEY: `{0}` is not one of the keys in REDRESS_INTAKE_KEYS")]
    UnknownActiveKey(String),
    #[error("REDRESS_INTAKE_PSEUDONYM_KEY must be base64 of at least 32 bytes")]
    PseudonymKey,
    #[error(
        "no key `{0}` to open a value sealed with it (was it removed from REDRESS_INTAKE_KEYS?)"
    )]
    MissingKey(String),
    #[error("a sealed value failed authentication: it was altered or belongs to another record")]
    Tampered,
}

/// The keys intake encrypts and pseudonymises with.
pub struct Vault {
    keys: BTreeMap<String, Aes256Gcm>,
    active: String,
    pseudonym: Vec<u8>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

/// A value sealed under one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    /// Nonce followed by ciphertext and tag.
    pub bytes: Vec<u8>,
}

impl Vault {
    /// `keys`: `id:base64,id:base64`; `active`: the id new values are sealed with.
    pub fn new(keys: &str, active: &str, pseudonym_key: &str) -> Result<Self, VaultError> {
        let mut ring = BTreeMap::new();
        for entry in keys.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, encoded) = entry
                .split_once(':')
                .ok_or_else(|| VaultError::KeyFormat(entry.to_owned()))?;
            let bytes = B64
                .decode(encoded)
                .ok()
                .filter(|b| b.len() == 32)
                .ok_or_else(|| VaultError::KeyFormat(format!("{id}:…")))?;
            let cipher = Aes256Gcm::new_from_slice(&bytes)
                .map_err(|_| VaultError::KeyFormat(format!("{id}:…")))?;
            ring.insert(id.to_owned(), cipher);
        }
        if !ring.contains_key(active) {
            return Err(VaultError::UnknownActiveKey(active.to_owned()));
        }
        let pseudonym = B64
            .decode(pseudonym_key)
            .ok()
            .filter(|b| b.len() >= 32)
            .ok_or(VaultError::PseudonymKey)?;
        Ok(Self {
            keys: ring,
            active: active.to_owned(),
            pseudonym,
        })
    }

    pub fn active_key(&self) -> &str {
        &self.active
    }

    /// Seals `plaintext` under the active key, bound to `record` (a complaint id), so a sealed
    /// value copied onto another record does not open.
    pub fn seal(&self, plaintext: &[u8], record: &str) -> Sealed {
        let cipher = &self.keys[&self.active];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: plaintext,
            aad: record.as_bytes(),
        };
        // Encryption with a valid key and a fresh nonce cannot fail for in-memory buffers.
        let ciphertext = cipher.encrypt(&nonce, payload).unwrap_or_default();
        let mut bytes = nonce.to_vec();
        bytes.extend(ciphertext);
        Sealed {
            key_id: self.active.clone(),
            bytes,
        }
    }

    pub fn open(&self, sealed: &Sealed, record: &str) -> Result<Vec<u8>, VaultError> {
        let cipher = self
            .keys
            .get(&sealed.key_id)
            .ok_or_else(|| VaultError::MissingKey(sealed.key_id.clone()))?;
        if sealed.bytes.len() < NONCE_LEN {
            return Err(VaultError::Tampered);
        }
        let (nonce, ciphertext) = sealed.bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| VaultError::Tampered)?;
        let nonce = Nonce::from(nonce);
        let payload = Payload {
            msg: ciphertext,
            aad: record.as_bytes(),
        };
        cipher
            .decrypt(&nonce, payload)
            .map_err(|_| VaultError::Tampered)
    }

    /// The stable pseudonym of a person: HMAC-SHA256 of their strongest identifier.
    pub fn consumer_ref(&self, identifier: &str) -> String {
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.pseudonym) {
            Ok(mac) => mac,
            Err(_) => return String::new(),
        };
        mac.update(identifier.as_bytes());
        let digest = mac.finalize().into_bytes();
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        format!("cr_{hex}")
    }
}

/// A development key ring (never for production): used by `redress dev` and tests.
#[cfg(any(test, feature = "dev"))]
pub mod dev {
    pub const KEYS: &str = "dev1:ZGV2ZWxvcG1lbnQta2V5LW5ldmVyLWluLXByb2R1Y3Q=";
    pub const ACTIVE: &str = "dev1";
    pub const PSEUDONYM: &str = "ZGV2ZWxvcG1lbnQtcHNldWRvbnltLWtleS1ub3QtcHJvZHVjdGlvbg==";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault(active: &str) -> Vault {
        let keys = format!("{},dev2:{}", dev::KEYS, B64.encode([7u8; 32]));
        match Vault::new(&keys, active, dev::PSEUDONYM) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn sealed_values_open_only_for_their_record_and_across_rotation() {
        let old = vault("dev1");
        let sealed = old.seal(b"13812345678", "complaint-1");
        assert_eq!(sealed.key_id, "dev1");
        assert!(!sealed.bytes.windows(11).any(|w| w == b"13812345678"));
        assert_eq!(
            old.open(&sealed, "complaint-1").ok(),
            Some(b"13812345678".to_vec())
        );
        assert_eq!(old.open(&sealed, "complaint-2"), Err(VaultError::Tampered));

        let rotated = vault("dev2");
        assert_eq!(
            rotated.open(&sealed, "complaint-1").ok(),
            Some(b"13812345678".to_vec())
        );
        assert_eq!(rotated.seal(b"x", "c").key_id, "dev2");
    }

    #[test]
    fn configuration_errors_name_what_is_wrong() {
        assert!(matches!(
            Vault::new("k1:short", "k1", dev::PSEUDONYM),
            Err(VaultError::KeyFormat(_))
        ));
        assert!(matches!(
            Vault::new(dev::KEYS, "nope", dev::PSEUDONYM),
            Err(VaultError::UnknownActiveKey(_))
        ));
        assert!(matches!(
            Vault::new(dev::KEYS, "dev1", "c2hvcnQ="),
            Err(VaultError::PseudonymKey)
        ));
    }

    #[test]
    fn pseudonyms_are_stable_and_distinct() {
        let v = vault("dev1");
        assert_eq!(
            v.consumer_ref("phone:+8613812345678"),
            v.consumer_ref("phone:+8613812345678")
        );
        assert_ne!(
            v.consumer_ref("phone:+8613812345678"),
            v.consumer_ref("phone:+8613812345679")
        );
        assert!(v.consumer_ref("x").starts_with("cr_"));
    }
}
