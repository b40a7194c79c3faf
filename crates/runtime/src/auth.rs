//! Bearer JWTs on every gRPC call (DESIGN §7).
//!
//! Tokens are signed with Ed25519 (`EdDSA`) or RSA (`RS256`) and checked against the public
//! keys in configuration or an identity provider's JWKS; the key id (`kid`) picks the key, so
//! keys rotate by adding the new one before signing with it. Besides the signature, every
//! token must carry `sub`, `iss`, `aud`, `exp` and `iat`; `nbf` is honoured; `iat` may not lie
//! in the future and `exp - iat` may not exceed the configured lifetime.
//!
//! The roles claim becomes a list of [`Role`]s in a [`Principal`] that handlers read from the
//! request. Service identities (`service:<name>`) are an explicit list, and count only in a
//! token whose subject is that identity: a person's token cannot carry one.

use std::{
    fmt,
    path::Path,
    sync::RwLock,
    time::{Duration, Instant},
};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, jwk::JwkSet};
use redress_proto::common::v1::{Actor, Channel};
use serde::{Deserialize, Serialize};
use tonic::Status;

use crate::config::AuthConfig;

/// Seconds a token's times may be off from ours (clock skew between machines).
const LEEWAY_SECONDS: u64 = 60;
/// A token naming an unknown key refreshes the JWKS at most this often.
const JWKS_REFRESH: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read key {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is neither an Ed25519 nor an RSA key in PEM form")]
    KeyFormat { path: String },
    #[error(
        "no keys to check tokens with: set REDRESS_JWT_PUBLIC_KEYS (PEM files) or REDRESS_JWT_JWKS_URL"
    )]
    NoKeys,
    #[error("REDRESS_JWT_JWKS_URL {url}: {reason}")]
    Jwks { url: String, reason: String },
    #[error("cannot sign token: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

/// The Redress services, as identities that call each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceId {
    Intake,
    Classification,
    CaseCoordination,
    Notification,
    Analytics,
    Audit,
}

impl ServiceId {
    pub const ALL: [ServiceId; 6] = [
        ServiceId::Intake,
        ServiceId::Classification,
        ServiceId::CaseCoordination,
        ServiceId::Notification,
        ServiceId::Analytics,
        ServiceId::Audit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ServiceId::Intake => "intake",
            ServiceId::Classification => "classification",
            ServiceId::CaseCoordination => "case-coordination",
            ServiceId::Notification => "notification",
            ServiceId::Analytics => "analytics",
            ServiceId::Audit => "compliance-audit",
        }
    }
}

/// What a caller may do (DESIGN §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// 消保专员
    Specialist,
    /// 数据分析师
    Analyst,
    /// 教育培训专员
    Educator,
    /// 合规审查员
    Compliance,
    /// 产品经理
    Product,
    /// A department's case handler (carries a `department` claim).
    Handler,
    /// Head of a department (carries a `department` claim): its webhooks, its figures.
    DepartmentHead,
    /// Head-office senior management: approves the second extension (cn-nfra Art. 18).
    SeniorManagement,
    Admin,
    /// A Redress service calling another.
    Service(ServiceId),
    /// A channel's system submitting complaints (`service:channel-<channel>`).
    Channel(Channel),
}

impl Role {
    /// Every role a person can hold.
    pub const PEOPLE: [Role; 9] = [
        Role::Specialist,
        Role::Analyst,
        Role::Educator,
        Role::Compliance,
        Role::Product,
        Role::Handler,
        Role::DepartmentHead,
        Role::SeniorManagement,
        Role::Admin,
    ];

    /// The name in tokens and on events: `specialist`, `service:notification`,
    /// `service:channel-web`.
    pub fn name(self) -> String {
        match self {
            Role::Specialist => "specialist".into(),
            Role::Analyst => "analyst".into(),
            Role::Educator => "educator".into(),
            Role::Compliance => "compliance".into(),
            Role::Product => "product".into(),
            Role::Handler => "handler".into(),
            Role::DepartmentHead => "department_head".into(),
            Role::SeniorManagement => "senior_management".into(),
            Role::Admin => "admin".into(),
            Role::Service(s) => format!("service:{}", s.name()),
            Role::Channel(c) => format!("service:channel-{}", c.token()),
        }
    }

    /// The role a name stands for; `None` for names Redress does not know.
    pub fn parse(name: &str) -> Option<Role> {
        if let Some(service) = name.strip_prefix("service:") {
            if let Some(channel) = service.strip_prefix("channel-") {
                return Channel::from_token(channel).map(Role::Channel);
            }
            return ServiceId::ALL
                .into_iter()
                .find(|s| s.name() == service)
                .map(Role::Service);
        }
        Self::PEOPLE.into_iter().find(|r| r.name() == name)
    }

    fn is_identity(self) -> bool {
        matches!(self, Role::Service(_) | Role::Channel(_))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// Who is calling, as established by their token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub roles: Vec<Role>,
    pub department: Option<String>,
}

impl Principal {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The first of `allowed` this principal holds — the role it acts in — or
    /// `PERMISSION_DENIED` naming the roles the call needs.
    pub fn require(&self, allowed: &[Role]) -> Result<Role, Status> {
        if let Some(role) = allowed.iter().copied().find(|r| self.has(*r)) {
            return Ok(role);
        }
        let names: Vec<String> = allowed.iter().map(|r| r.name()).collect();
        let held: Vec<String> = self.roles.iter().map(|r| r.name()).collect();
        Err(Status::permission_denied(format!(
            "this call needs one of the roles {}; the caller has {}",
            names.join(", "),
            if held.is_empty() {
                "none".to_owned()
            } else {
                held.join(", ")
            }
        )))
    }

    /// The department a role scoped to one (handler, department head) acts for.
    pub fn department(&self) -> &str {
        self.department.as_deref().unwrap_or_default()
    }

    /// The actor recorded on events, acting in `role`.
    pub fn actor(&self, role: Role) -> Actor {
        Actor {
            subject: self.subject.clone(),
            role: role.name(),
            department: self.department.clone().unwrap_or_default(),
        }
    }

    /// The authenticated caller of a request (set by the serving layer).
    pub fn of<T>(request: &tonic::Request<T>) -> Result<&Principal, Status> {
        request
            .extensions()
            .get::<Principal>()
            .ok_or_else(|| Status::unauthenticated("no authenticated caller"))
    }
}

/// The caller of `request` and the first of `allowed` roles they hold.
pub fn require<T>(
    request: &tonic::Request<T>,
    allowed: &[Role],
) -> Result<(Principal, Role), Status> {
    let principal = Principal::of(request)?;
    let role = principal.require(allowed)?;
    Ok((principal.clone(), role))
}

/// The claims Redress writes into the tokens it mints (development and service tokens).
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

struct Key {
    kid: Option<String>,
    key: DecodingKey,
    algorithm: Algorithm,
}

/// Validates bearer tokens against the configured keys.
pub struct Authenticator {
    static_keys: Vec<Key>,
    jwks: Option<Jwks>,
    config: AuthConfig,
}

struct Jwks {
    url: String,
    keys: RwLock<(Vec<Key>, Instant)>,
    client: reqwest::Client,
}

impl Authenticator {
    /// Loads the PEM keys and fetches the JWKS of `config`; one of them must give a key.
    pub async fn new(config: &AuthConfig) -> Result<Self, AuthError> {
        let mut static_keys = Vec::new();
        for path in &config.jwt_public_keys {
            static_keys.push(pem_key(path)?);
        }
        let jwks = match &config.jwt_jwks_url {
            Some(url) => {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .map_err(|e| AuthError::Jwks {
                        url: url.clone(),
                        reason: e.to_string(),
                    })?;
                let keys = fetch_jwks(&client, url).await?;
                Some(Jwks {
                    url: url.clone(),
                    keys: RwLock::new((keys, Instant::now())),
                    client,
                })
            }
            None => None,
        };
        let authenticator = Self {
            static_keys,
            jwks,
            config: config.clone(),
        };
        if authenticator.key_count() == 0 {
            return Err(AuthError::NoKeys);
        }
        Ok(authenticator)
    }

    fn key_count(&self) -> usize {
        let jwks = self
            .jwks
            .as_ref()
            .and_then(|j| j.keys.read().ok().map(|k| k.0.len()))
            .unwrap_or(0);
        self.static_keys.len() + jwks
    }

    /// Checks a bearer token and returns who it names.
    pub async fn verify(&self, token: &str) -> Result<Principal, Status> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| Status::unauthenticated("the bearer token is not a JWT"))?;
        if header.kid.is_none() && self.key_count() > 1 {
            return Err(Status::unauthenticated(
                "the bearer token has no `kid`, and more than one key could have signed it",
            ));
        }
        let mut result = self.verify_with_keys(token, &header);
        if result.is_err()
            && let Some(jwks) = &self.jwks
            && let Some(kid) = &header.kid
            && !jwks.holds(kid)
            && jwks.refresh_due()
        {
            // A key the provider rotated in since we last looked.
            jwks.refresh().await;
            result = self.verify_with_keys(token, &header);
        }
        result.map_err(|reason| {
            Status::unauthenticated(format!("the bearer token is not valid: {reason}"))
        })
    }

    fn verify_with_keys(&self, token: &str, header: &Header) -> Result<Principal, String> {
        let mut last = "no configured key matches the token's kid and algorithm".to_owned();
        let jwks = self.jwks.as_ref().and_then(|j| j.keys.read().ok());
        let jwks_keys = jwks.as_ref().map(|k| k.0.as_slice()).unwrap_or_default();
        for key in self.static_keys.iter().chain(jwks_keys) {
            let kid_matches = match (&header.kid, &key.kid) {
                (Some(wanted), Some(kid)) => wanted == kid,
                (None, _) => true,
                (Some(_), None) => false,
            };
            if key.algorithm != header.alg || !kid_matches {
                continue;
            }
            match self.decode(token, key) {
                Ok(principal) => return Ok(principal),
                Err(reason) => last = reason,
            }
        }
        Err(last)
    }

    fn decode(&self, token: &str, key: &Key) -> Result<Principal, String> {
        let mut validation = Validation::new(key.algorithm);
        validation.set_issuer(&[&self.config.jwt_issuer]);
        validation.set_audience(&[&self.config.jwt_audience]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key.key, &validation)
            .map_err(|e| e.to_string())?;
        self.principal(&data.claims)
    }

    fn principal(&self, claims: &serde_json::Value) -> Result<Principal, String> {
        let now = chrono::Utc::now().timestamp();
        let number = |name: &str| claims.get(name).and_then(serde_json::Value::as_i64);
        let (Some(iat), Some(exp)) = (number("iat"), number("exp")) else {
            return Err("`iat` and `exp` must be numbers".into());
        };
        if iat > now + LEEWAY_SECONDS as i64 {
            return Err("issued in the future (`iat`)".into());
        }
        let lifetime = exp.saturating_sub(iat);
        if lifetime > self.config.jwt_max_lifetime.as_secs() as i64 {
            return Err(format!(
                "lives {lifetime} s; tokens may live at most {} s",
                self.config.jwt_max_lifetime.as_secs()
            ));
        }
        let subject = claims
            .get("sub")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let roles = claim_path(claims, &self.config.jwt_roles_claim)
            .and_then(serde_json::Value::as_array)
            .map(|names| {
                names
                    .iter()
                    .filter_map(serde_json::Value::as_str)
                    .filter_map(|name| Role::parse(self.mapped(name)))
                    // A service identity counts only as the token's own subject.
                    .filter(|role| !role.is_identity() || role.name() == subject)
                    .collect()
            })
            .unwrap_or_default();
        let department = claim_path(claims, &self.config.jwt_department_claim)
            .and_then(serde_json::Value::as_str)
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_owned);
        Ok(Principal {
            subject,
            roles,
            department,
        })
    }

    fn mapped<'a>(&'a self, name: &'a str) -> &'a str {
        self.config
            .jwt_role_map
            .iter()
            .find(|(from, _)| from == name)
            .map(|(_, to)| to.as_str())
            .unwrap_or(name)
    }

    /// Reads `authorization: Bearer <token>` from request headers and verifies it.
    pub async fn authenticate(&self, headers: &http::HeaderMap) -> Result<Principal, Status> {
        let token = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .ok_or_else(|| Status::unauthenticated("missing `authorization: Bearer <token>`"))?;
        self.verify(token.trim()).await
    }
}

impl Jwks {
    fn holds(&self, kid: &str) -> bool {
        self.keys
            .read()
            .map(|k| k.0.iter().any(|key| key.kid.as_deref() == Some(kid)))
            .unwrap_or(false)
    }

    fn refresh_due(&self) -> bool {
        self.keys
            .read()
            .map(|k| k.1.elapsed() >= JWKS_REFRESH)
            .unwrap_or(false)
    }

    async fn refresh(&self) {
        match fetch_jwks(&self.client, &self.url).await {
            Ok(keys) => {
                if let Ok(mut held) = self.keys.write() {
                    *held = (keys, Instant::now());
                }
            }
            Err(error) => {
                tracing::warn!(%error, "JWKS refresh failed; keeping the keys held");
                if let Ok(mut held) = self.keys.write() {
                    held.1 = Instant::now();
                }
            }
        }
    }
}

async fn fetch_jwks(client: &reqwest::Client, url: &str) -> Result<Vec<Key>, AuthError> {
    let error = |reason: String| AuthError::Jwks {
        url: url.to_owned(),
        reason,
    };
    let set: JwkSet = client
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| error(e.to_string()))?
        .json()
        .await
        .map_err(|e| error(format!("not a JWK set: {e}")))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let algorithm = match jwk.common.key_algorithm.map(|a| a.to_string()).as_deref() {
            Some("EdDSA") => Algorithm::EdDSA,
            Some("RS256") | None => match &jwk.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                _ => continue,
            },
            _ => continue,
        };
        if let Ok(key) = DecodingKey::from_jwk(jwk) {
            keys.push(Key {
                kid: jwk.common.key_id.clone(),
                key,
                algorithm,
            });
        }
    }
    Ok(keys)
}

/// A claim by name, or by a dotted path into nested objects.
fn claim_path<'a>(claims: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    claims.get(path).or_else(|| {
        path.split('.')
            .try_fold(claims, |value, part| value.get(part))
    })
}

fn pem_key(path: &Path) -> Result<Key, AuthError> {
    let name = path.display().to_string();
    let pem = std::fs::read(path).map_err(|source| AuthError::Read {
        path: name.clone(),
        source,
    })?;
    let kid = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    let (key, algorithm) = DecodingKey::from_ed_pem(&pem)
        .map(|k| (k, Algorithm::EdDSA))
        .or_else(|_| DecodingKey::from_rsa_pem(&pem).map(|k| (k, Algorithm::RS256)))
        .map_err(|_| AuthError::KeyFormat { path: name })?;
    Ok(Key {
        kid,
        key,
        algorithm,
    })
}

/// Signs a token with a private key in PEM form (Ed25519 or RSA).
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
pub fn claims(subject: &str, roles: &[Role], department: Option<&str>, ttl: Duration) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        sub: subject.to_owned(),
        iss: crate::config::defaults::JWT_ISSUER.to_owned(),
        aud: crate::config::defaults::JWT_AUDIENCE.to_owned(),
        iat: now,
        exp: now + ttl.as_secs() as i64,
        roles: roles.iter().map(|r| r.name()).collect(),
        department: department.map(str::to_owned),
    }
}

/// Mints short-lived tokens for the calls a service makes to another, signed with its own
/// key (`REDRESS_SERVICE_KEY`); the callee lists the matching public key.
pub struct ServiceTokens {
    identity: ServiceId,
    private_pem: Vec<u8>,
    kid: String,
    cached: RwLock<Option<(String, Instant)>>,
}

impl ServiceTokens {
    const TTL: Duration = Duration::from_secs(300);

    pub fn new(identity: ServiceId, private_pem: Vec<u8>, kid: &str) -> Result<Self, AuthError> {
        let tokens = Self {
            identity,
            private_pem,
            kid: kid.to_owned(),
            cached: RwLock::new(None),
        };
        tokens.mint()?;
        Ok(tokens)
    }

    pub fn from_file(identity: ServiceId, path: &Path) -> Result<Self, AuthError> {
        let pem = std::fs::read(path).map_err(|source| AuthError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let kid = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self::new(identity, pem, &kid)
    }

    fn mint(&self) -> Result<String, AuthError> {
        let role = Role::Service(self.identity);
        mint(
            &self.private_pem,
            &self.kid,
            &claims(&role.name(), &[role], None, Self::TTL),
        )
    }

    /// A bearer token valid for at least a minute more.
    pub fn token(&self) -> Result<String, AuthError> {
        if let Ok(cached) = self.cached.read()
            && let Some((token, at)) = cached.as_ref()
            && at.elapsed() < Self::TTL - Duration::from_secs(60)
        {
            return Ok(token.clone());
        }
        let token = self.mint()?;
        if let Ok(mut cached) = self.cached.write() {
            *cached = Some((token.clone(), Instant::now()));
        }
        Ok(token)
    }
}

/// The development key pair shipped in `deploy/local/dev-keys/` (never for production): only
/// in builds with the `dev` feature (`redress dev`, tests, benches).
#[cfg(feature = "dev")]
pub mod dev {
    /// Key id of the development key: the stem of `dev.pem`, as the key's file is named.
    pub const KID: &str = "dev";
    pub const PRIVATE_PEM: &str = include_str!("../../../deploy/local/dev-keys/dev.key.pem");
    pub const PUBLIC_PEM: &str = include_str!("../../../deploy/local/dev-keys/dev.pem");

    /// Writes the public key as `<dir>/dev.pem` (so its key id is `dev`) and returns the path.
    pub fn write_public_key(dir: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{KID}.pem"));
        std::fs::write(&path, PUBLIC_PEM)?;
        Ok(path)
    }

    /// A development token.
    pub fn token(
        subject: &str,
        roles: &[super::Role],
        department: Option<&str>,
        ttl: std::time::Duration,
    ) -> Result<String, super::AuthError> {
        super::mint(
            PRIVATE_PEM.as_bytes(),
            KID,
            &super::claims(subject, roles, department, ttl),
        )
    }
}

#[cfg(all(test, feature = "dev"))]
mod tests {
    use super::*;
    use crate::config::RuntimeConfig;

    async fn authenticator(tweak: impl FnOnce(&mut AuthConfig)) -> Authenticator {
        let dir = std::env::temp_dir().join(format!("redress-auth-{}", uuid::Uuid::now_v7()));
        let path = dev::write_public_key(&dir).unwrap_or_default();
        let mut config = RuntimeConfig::local("", "", "").auth;
        config.jwt_public_keys = vec![path];
        tweak(&mut config);
        match Authenticator::new(&config).await {
            Ok(auth) => auth,
            Err(error) => panic!("dev key must load: {error}"),
        }
    }

    fn token(claims: &Claims) -> String {
        mint(dev::PRIVATE_PEM.as_bytes(), dev::KID, claims).unwrap_or_default()
    }

    fn claims_for(roles: &[Role]) -> Claims {
        claims("h1", roles, Some("cards"), Duration::from_secs(60))
    }

    #[tokio::test]
    async fn a_valid_token_yields_its_roles_and_department() {
        let principal = authenticator(|_| {})
            .await
            .verify(&token(&claims_for(&[Role::Handler])))
            .await;
        assert_eq!(
            principal.ok(),
            Some(Principal {
                subject: "h1".into(),
                roles: vec![Role::Handler],
                department: Some("cards".into())
            })
        );
    }

    #[tokio::test]
    async fn expired_early_future_long_lived_and_foreign_tokens_are_refused() {
        let auth = authenticator(|_| {}).await;
        let refused = |c: &Claims| {
            let t = token(c);
            let auth = &auth;
            async move { auth.verify(&t).await.map_err(|s| s.code()) }
        };
        let mut expired = claims_for(&[Role::Admin]);
        expired.exp -= 3600;
        assert_eq!(refused(&expired).await, Err(tonic::Code::Unauthenticated));
        let mut foreign = claims_for(&[Role::Admin]);
        foreign.aud = "someone-else".into();
        assert!(refused(&foreign).await.is_err());
        let mut future = claims_for(&[Role::Admin]);
        future.iat += 365 * 86_400;
        future.exp += 365 * 86_400;
        assert!(refused(&future).await.is_err());
        let mut century = claims_for(&[Role::Admin]);
        century.exp = century.iat + 100 * 365 * 86_400;
        assert!(refused(&century).await.is_err());
        // Not yet valid (`nbf` an hour ahead).
        let mut value = serde_json::to_value(claims_for(&[Role::Admin])).unwrap_or_default();
        value["nbf"] = serde_json::json!(chrono::Utc::now().timestamp() + 3600);
        let early = jsonwebtoken::encode(
            &{
                let mut h = Header::new(Algorithm::EdDSA);
                h.kid = Some(dev::KID.into());
                h
            },
            &value,
            &EncodingKey::from_ed_pem(dev::PRIVATE_PEM.as_bytes())
                .unwrap_or_else(|_| EncodingKey::from_secret(b"x")),
        )
        .unwrap_or_default();
        assert!(auth.verify(&early).await.is_err());
        let good = token(&claims_for(&[Role::Analyst]));
        assert!(auth.verify(&good.replace(".ey", ".eyX")).await.is_err());
        assert!(auth.verify("not a token").await.is_err());
    }

    #[tokio::test]
    async fn with_several_keys_a_token_must_name_its_key() {
        let dir = std::env::temp_dir().join(format!("redress-auth-{}", uuid::Uuid::now_v7()));
        let first = dev::write_public_key(&dir).unwrap_or_default();
        let second = dir.join("other.pem");
        std::fs::write(&second, dev::PUBLIC_PEM).ok();
        let mut config = RuntimeConfig::local("", "", "").auth;
        config.jwt_public_keys = vec![first, second];
        let Ok(auth) = Authenticator::new(&config).await else {
            panic!("keys load")
        };
        let claims = claims_for(&[Role::Analyst]);
        let key = EncodingKey::from_ed_pem(dev::PRIVATE_PEM.as_bytes())
            .unwrap_or_else(|_| EncodingKey::from_secret(b"x"));
        let no_kid =
            jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &key).unwrap_or_default();
        let refused = auth
            .verify(&no_kid)
            .await
            .err()
            .map(|s| s.message().to_owned());
        assert!(refused.is_some_and(|m| m.contains("no `kid`")));
        assert!(auth.verify(&token(&claims)).await.is_ok());
    }

    #[tokio::test]
    async fn service_identities_count_only_as_their_own_subject() {
        let auth = authenticator(|_| {}).await;
        let forged = claims(
            "someone",
            &[Role::Handler, Role::Service(ServiceId::Notification)],
            Some("cards"),
            Duration::from_secs(60),
        );
        let principal = auth.verify(&token(&forged)).await.ok();
        assert_eq!(principal.map(|p| p.roles), Some(vec![Role::Handler]));
        let real = Role::Service(ServiceId::Notification);
        let own = claims(&real.name(), &[real], None, Duration::from_secs(60));
        let principal = auth.verify(&token(&own)).await.ok();
        assert_eq!(principal.map(|p| p.roles), Some(vec![real]));
    }

    #[tokio::test]
    async fn unknown_roles_are_dropped_and_idp_roles_mapped() {
        let auth = authenticator(|c| {
            c.jwt_role_map = vec![("cp-specialist".into(), "specialist".into())];
        })
        .await;
        let mut c = claims_for(&[]);
        c.roles = vec![
            "wizard".into(),
            "cp-specialist".into(),
            "service:anything".into(),
        ];
        let principal = auth.verify(&token(&c)).await.ok();
        assert_eq!(principal.map(|p| p.roles), Some(vec![Role::Specialist]));
    }

    #[tokio::test]
    async fn nested_role_claims_are_read_by_path() {
        let auth = authenticator(|c| c.jwt_roles_claim = "realm_access.roles".into()).await;
        let mut value = serde_json::to_value(claims_for(&[])).unwrap_or_default();
        value["realm_access"] = serde_json::json!({ "roles": ["compliance"] });
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(dev::KID.into());
        let key = EncodingKey::from_ed_pem(dev::PRIVATE_PEM.as_bytes())
            .unwrap_or_else(|_| EncodingKey::from_secret(b"x"));
        let signed = jsonwebtoken::encode(&header, &value, &key).unwrap_or_default();
        let principal = auth.verify(&signed).await.ok();
        assert_eq!(principal.map(|p| p.roles), Some(vec![Role::Compliance]));
    }

    #[test]
    fn roles_round_trip_by_name_and_require_names_the_missing_ones() {
        for role in Role::PEOPLE {
            assert_eq!(Role::parse(&role.name()), Some(role));
        }
        for service in ServiceId::ALL {
            assert_eq!(
                Role::parse(&Role::Service(service).name()),
                Some(Role::Service(service))
            );
        }
        assert_eq!(
            Role::parse("service:channel-web"),
            Some(Role::Channel(Channel::Web))
        );
        assert_eq!(Role::parse("service:anything"), None);
        assert_eq!(Role::parse("wizard"), None);
        let principal = Principal {
            subject: "x".into(),
            roles: vec![Role::Analyst],
            department: None,
        };
        let status = principal
            .require(&[Role::Specialist, Role::Compliance])
            .err()
            .unwrap_or_else(|| Status::ok(""));
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert!(status.message().contains("specialist, compliance"));
        assert_eq!(
            principal.require(&[Role::Analyst]).ok(),
            Some(Role::Analyst)
        );
    }
}
