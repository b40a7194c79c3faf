//! Calling the services: where each listens, TLS, and the bearer token every call carries.
//!
//! The token is `--token`, else `REDRESS_TOKEN`, else (against a development suite) a
//! development token minted for `--as <role>`.

use anyhow::Context;
use redress_runtime::Role;
use tonic::{
    metadata::MetadataValue,
    transport::{Certificate, Channel, ClientTlsConfig},
};

/// How to reach one service and who is calling.
#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// The service's gRPC address (e.g. http://127.0.0.1:50053; https:// for TLS).
    #[arg(long = "addr")]
    pub addr: Option<String>,
    /// A bearer token (else REDRESS_TOKEN, else a development token for --as).
    #[arg(long, env = "REDRESS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// With no token: mint a development token for this role (the development suite only).
    #[arg(long = "as", value_parser = crate::token::role, default_value = "specialist")]
    pub role: Role,
    /// The department of a development handler token.
    #[arg(long)]
    pub department: Option<String>,
    /// The subject of a development token.
    #[arg(long, default_value = "dev-user")]
    pub subject: String,
    /// PEM CA of the services' certificates (https://).
    #[arg(long, env = "REDRESS_GRPC_TLS_CA")]
    pub ca: Option<std::path::PathBuf>,
}

impl Target {
    /// A connected channel to `addr` (or the default), naming the address when it fails.
    pub async fn channel(&self, default_addr: &str) -> anyhow::Result<Channel> {
        let addr = self.addr.clone().unwrap_or_else(|| default_addr.to_owned());
        let mut endpoint = Channel::from_shared(addr.clone()).with_context(|| {
            format!("`{addr}` is not a gRPC address such as http://127.0.0.1:50051")
        })?;
        if let Some(ca) = &self.ca {
            let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
                .context("TLS settings")?;
        }
        endpoint.connect().await.with_context(|| {
            format!("cannot reach {addr}: is the service running (`make run`), and is this its gRPC port?")
        })
    }

    fn bearer(&self) -> anyhow::Result<String> {
        if let Some(token) = &self.token {
            return Ok(token.trim().to_owned());
        }
        let department = self.department.as_deref();
        crate::token::dev_token(&self.subject, &[self.role], department)
            .context("minting a development token")
    }

    /// `message` with `authorization: Bearer …`.
    pub fn request<T>(&self, message: T) -> anyhow::Result<tonic::Request<T>> {
        let mut request = tonic::Request::new(message);
        let value: MetadataValue<_> = format!("Bearer {}", self.bearer()?)
            .parse()
            .context("the token is not a valid header value")?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }
}

/// A gRPC status as a sentence, with each field violation on its own line.
pub fn failure(status: tonic::Status) -> anyhow::Error {
    use tonic_types::StatusExt as _;
    let mut text = format!("{:?}: {}", status.code(), status.message());
    if let Some(bad) = status.get_error_details().bad_request() {
        for v in &bad.field_violations {
            text.push_str(&format!("\n  {}: {}", v.field, v.description));
        }
    }
    anyhow::anyhow!(text)
}

/// Proto3 JSON, pretty.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A service's address: its `REDRESS_<SERVICE>_ADDR` variable, else where `redress dev` puts it.
pub fn default_addr(variable: &str, dev: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| dev.to_owned())
}
