//! Bearer JWTs on every gRPC call (DESIGN §7).
//!
//! Tokens are signed with Ed25519 (`EdDSA`) or RSA (`RS256`) and checked against the public
//! keys in configuration; the key id (`kid`) picks the key, so keys rotate by adding the new
//! one before signing with it. The `roles` and `department` claims become a [`Principal`]
//! that handlers read from the request.

use std::{path::Path, sync::Arc};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use redress_proto::common::v1::Actor;
use serde::{Deserialize, Serialize};
use tonic::{Request, Status};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read key {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is neither an Ed25519 nor an RSA key in PEM form")]
    KeyFormat { path: String },
    #[error("no public keys configured (REDRESS_JWT_PUBLIC_KEYS)")]
    NoKeys,
    #[error("cannot sign token: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

/// The claims Redress reads and writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
}

/// Who is calling, as established by their token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub roles: Vec<String>,
    pub department: Option<String>,
}

impl Principal {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// The first of `roles` this principal holds.
    pub fn role_among<'a>(&self, roles: &[&'a str]) -> Option<&'a str> {
        roles.iter().copied().find(|role| self.has_role(role))
    }

    /// The actor recorded on events, acting in `role`.
    pub fn actor(&self, role: &str) -> Actor {
        Actor {
            subject: self.subject.clone(),
            role: role.to_owned(),
            department: self.department.clone().unwrap_or_default(),
        }
    }
}

struct Key {
    kid: String,
    key: DecodingKey,
    algorithm: Algorithm,
}

/// Validates bearer tokens against the configured public keys.
pub struct Authenticator {
    keys: Vec<Key>,
    issuer: String,
    audience: String,
}

impl Authenticator {
    pub fn from_pem_files(
        paths: &[impl AsRef<Path>],
        issuer: &str,
        audience: &str,
    ) -> Result<Self, AuthError> {
        let mut keys = Vec::new();
        for path in paths {
            let path = path.as_ref();
            let name = path.display().to_string();
            let pem = std::fs::read(path).map_err(|source| AuthError::Read {
                path: name.clone(),
                source,
            })?;
            let kid = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let (key, algorithm) = decoding_key(&pem).ok_or(AuthError::KeyFormat { path: name })?;
            keys.push(Key {
                kid,
                key,
                algorithm,
            });
        }
        if keys.is_empty() {
            return Err(AuthError::NoKeys);
        }
        Ok(Self {
            keys,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        })
    }

    /// Checks signature, expiry, issuer and audience.
    pub fn verify(&self, token: &str) -> Result<Principal, Status> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| Status::unauthenticated("the bearer token is not a JWT"))?;
        let candidates = self.keys.iter().filter(|k| {
            k.algorithm == header.alg && header.kid.as_ref().is_none_or(|kid| *kid == k.kid)
        });
        let mut last_error = "no configured key matches the token's kid and algorithm".to_owned();
        for key in candidates {
            let mut validation = Validation::new(key.algorithm);
            validation.set_issuer(&[&self.issuer]);
            validation.set_audience(&[&self.audience]);
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => {
                    return Ok(Principal {
                        subject: data.claims.sub,
                        roles: data.claims.roles,
                        department: data.claims.department.filter(|d| !d.is_empty()),
                    });
                }
                Err(error) => last_error = error.to_string(),
            }
        }
        Err(Status::unauthenticated(format!(
            "the bearer token is not valid: {last_error}"
        )))
    }

    /// A tonic interceptor: `UNAUTHENTICATED` without a valid token; otherwise the
    /// [`Principal`] rides in the request's extensions.
    pub fn interceptor(
        self: &Arc<Self>,
    ) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone + Send + Sync + 'static
    {
        let auth = Arc::clone(self);
        move |mut request: Request<()>| {
            let token = request
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .ok_or_else(|| {
                    Status::unauthenticated("missing `authorization: Bearer <token>`")
                })?;
            let principal = auth.verify(token.trim())?;
            request.extensions_mut().insert(principal);
            Ok(request)
        }
    }
}

fn decoding_key(pem: &[u8]) -> Option<(DecodingKey, Algorithm)> {
    DecodingKey::from_ed_pem(pem)
        .map(|k| (k, Algorithm::EdDSA))
        .or_else(|_| DecodingKey::from_rsa_pem(pem).map(|k| (k, Algorithm::RS256)))
        .ok()
}

/// The caller, if they hold one of `roles`; `PERMISSION_DENIED` naming the roles otherwise.
/// Returns the principal and the role it acts in.
pub fn require<T>(request: &Request<T>, roles: &[&str]) -> Result<(Principal, String), Status> {
    let principal = request
        .extensions()
        .get::<Principal>()
        .ok_or_else(|| Status::unauthenticated("no authenticated caller"))?;
    match principal.role_among(roles) {
        Some(role) => Ok((principal.clone(), role.to_owned())),
        None => Err(Status::permission_denied(format!(
            "this call needs one of the roles {}; the caller has {}",
            roles.join(", "),
            if principal.roles.is_empty() {
                "none".to_owned()
            } else {
                principal.roles.join(", ")
            }
        ))),
    }
}

/// Signs a token with a private key in PEM form (Ed25519 or RSA): development tokens and tests.
pub fn mint(private_pem: &[u8], kid: &str, claims: &Claims) -> Result<String, AuthError> {
    let (key, algorithm) = EncodingKey::from_ed_pem(private_pem)
        .map(|k| (k, Algorithm::EdDSA))
        .or_else(|_| EncodingKey::from_rsa_pem(private_pem).map(|k| (k, Algorithm::RS256)))
        .map_err(AuthError::Sign)?;
    let mut header = Header::new(algorithm);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key).map_err(AuthError::Sign)
}

/// Claims for `subject` in `roles`, valid for `ttl` from now, for issuer/audience `redress`.
pub fn claims(
    subject: &str,
    roles: &[&str],
    department: Option<&str>,
    ttl: std::time::Duration,
) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        sub: subject.to_owned(),
        iss: "redress".to_owned(),
        aud: "redress".to_owned(),
        iat: now,
        exp: now + ttl.as_secs() as i64,
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        department: department.map(str::to_owned),
    }
}

/// The development key pair shipped in `deploy/local/dev-keys/` (never for production).
pub mod dev {
    /// Key id of the development key.
    pub const KID: &str = "dev";
    pub const PRIVATE_PEM: &str = include_str!("../../../deploy/local/dev-keys/dev.key.pem");
    pub const PUBLIC_PEM: &str = include_str!("../../../deploy/local/dev-keys/dev.pem");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn authenticator() -> Authenticator {
        let dir = std::env::temp_dir().join(format!("redress-auth-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).ok();
        let path = dir.join("dev.pem");
        std::fs::write(&path, dev::PUBLIC_PEM).ok();
        match Authenticator::from_pem_files(&[path], "redress", "redress") {
            Ok(auth) => auth,
            Err(error) => panic!("dev key must load: {error}"),
        }
    }

    fn token(claims: &Claims) -> String {
        mint(dev::PRIVATE_PEM.as_bytes(), dev::KID, claims).unwrap_or_default()
    }

    #[test]
    fn a_valid_token_yields_its_roles_and_department() {
        let claims = claims("h1", &["handler"], Some("cards"), Duration::from_secs(60));
        let principal = authenticator().verify(&token(&claims));
        assert_eq!(
            principal.ok(),
            Some(Principal {
                subject: "h1".into(),
                roles: vec!["handler".into()],
                department: Some("cards".into())
            })
        );
    }

    #[test]
    fn expired_tampered_and_foreign_tokens_are_refused() {
        let auth = authenticator();
        let mut expired = claims("a", &["admin"], None, Duration::from_secs(0));
        expired.exp -= 3600;
        assert_eq!(
            auth.verify(&token(&expired)).map_err(|s| s.code()),
            Err(tonic::Code::Unauthenticated)
        );

        let mut foreign = claims("a", &["admin"], None, Duration::from_secs(60));
        foreign.aud = "someone-else".into();
        assert!(auth.verify(&token(&foreign)).is_err());

        let good = token(&claims("a", &["analyst"], None, Duration::from_secs(60)));
        let tampered = good.replace(".ey", ".eyX");
        assert!(auth.verify(&tampered).is_err());
        assert!(auth.verify("not a token").is_err());
    }

    #[test]
    fn require_names_the_missing_roles() {
        let mut request = Request::new(());
        request.extensions_mut().insert(Principal {
            subject: "x".into(),
            roles: vec!["analyst".into()],
            department: None,
        });
        let denied = require(&request, &["specialist", "compliance"]);
        let status = denied.err().unwrap_or_else(|| Status::ok(""));
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert!(status.message().contains("specialist, compliance"));
        assert!(require(&request, &["analyst"]).is_ok());
    }
}
