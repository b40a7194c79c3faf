//! E-mail over SMTP with lettre: rustls with ring, STARTTLS when the server offers it (or
//! required, or implicit TLS), a pool of connections kept open across sends.

use std::{path::Path, time::Duration};

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{
        Mailbox,
        header::{ContentType, Header, HeaderName, HeaderValue},
    },
    transport::smtp::{
        PoolConfig,
        authentication::Credentials,
        client::{Certificate, Tls, TlsParameters},
    },
};

use crate::templates::Rendered;

#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("REDRESS_SMTP_URL: {0}")]
    Url(String),
    #[error("REDRESS_SMTP_CA {path}: {reason}")]
    Ca { path: String, reason: String },
    #[error("REDRESS_SMTP_FROM: {0}")]
    From(String),
    /// Worth trying again (4xx, connection, timeout).
    #[error("smtp: {0}")]
    Transient(String),
    /// The server refused for good (5xx) or the message cannot be built.
    #[error("smtp: {0}")]
    Permanent(String),
}

#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    pub fn new(url: &str, ca: Option<&Path>, from: &str, pool: u32) -> Result<Self, SmtpError> {
        let target = Target::parse(url)?;
        let mut tls = TlsParameters::builder(target.host.clone());
        if let Some(path) = ca {
            let ca_error = |reason: String| SmtpError::Ca {
                path: path.display().to_string(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
            let cert = Certificate::from_pem(&pem).map_err(|e| ca_error(e.to_string()))?;
            tls = tls.add_root_certificate(cert);
        }
        let params = tls
            .build_rustls()
            .map_err(|e| SmtpError::Url(format!("TLS settings: {e}")))?;
        let tls = match target.mode {
            Mode::Plain => Tls::None,
            Mode::StartTlsIfOffered => Tls::Opportunistic(params),
            Mode::StartTlsRequired => Tls::Required(params),
            Mode::Implicit => Tls::Wrapper(params),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&target.host)
            .port(target.port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(30)))
            .pool_config(PoolConfig::new().max_size(pool.max(1)));
        if let Some((user, password)) = target.credentials {
            builder = builder.credentials(Credentials::new(user, password));
        }
        let from = from
            .parse::<Mailbox>()
            .map_err(|e| SmtpError::From(format!("`{from}`: {e}")))?;
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }

    /// Sends `notice` to `to`; the Message-ID (the delivery's id) is the provider message id.
    pub async fn send(
        &self,
        to: &str,
        notice: &Rendered,
        message_id: &str,
    ) -> Result<String, SmtpError> {
        let to = to
            .parse::<Mailbox>()
            .map_err(|e| SmtpError::Permanent(format!("recipient: {e}")))?;
        let message_id = format!("<{message_id}@redress.notification>");
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(notice.subject.clone().unwrap_or_default())
            .message_id(Some(message_id.clone()))
            .header(ContentType::TEXT_PLAIN)
            .header(ContentLanguage(notice.language.clone()))
            .header(TemplateHeader(format!(
                "{};v{}",
                notice.template_id, notice.version
            )))
            .body(notice.body.clone())
            .map_err(|e| SmtpError::Permanent(format!("message: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(message_id),
            Err(e) if e.is_permanent() => Err(SmtpError::Permanent(e.to_string())),
            Err(e) => Err(SmtpError::Transient(e.to_string())),
        }
    }
}

#[derive(Debug, PartialEq)]
enum Mode {
    Plain,
    StartTlsIfOffered,
    StartTlsRequired,
    Implicit,
}

#[derive(Debug, PartialEq)]
struct Target {
    host: String,
    port: u16,
    mode: Mode,
    credentials: Option<(String, String)>,
}

impl Target {
    /// `smtp://[user:password@]host[:port][?tls=required|none]`, `smtps://…`.
    fn parse(url: &str) -> Result<Self, SmtpError> {
        let bad = |reason: &str| SmtpError::Url(format!("`{}`: {reason}", mask(url)));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
        let authority = authority.trim_end_matches('/');
        let (credentials, hostport) = match authority.rsplit_once('@') {
            Some((creds, hp)) => {
                let (user, password) = creds.split_once(':').unwrap_or((creds, ""));
                (Some((user.to_owned(), password.to_owned())), hp)
            }
            None => (None, authority),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                Some(p.parse::<u16>().map_err(|_| bad("port is not a number"))?),
            ),
            None => (hostport, None),
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let tls = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("tls="))
            .unwrap_or("");
        let (mode, default_port) = match (scheme, tls) {
            ("smtps", "") => (Mode::Implicit, 465),
            ("smtp", "") | ("smtp", "opportunistic") => (Mode::StartTlsIfOffered, 587),
            ("smtp", "required") => (Mode::StartTlsRequired, 587),
            ("smtp", "none") => (Mode::Plain, 25),
            _ => return Err(bad("scheme smtp or smtps, tls=required|opportunistic|none")),
        };
        Ok(Self {
            host: host.to_owned(),
            port: port.unwrap_or(default_port),
            mode,
            credentials,
        })
    }
}

fn mask(url: &str) -> String {
    redress_runtime::config::mask_url(url)
}

/// `Content-Language`, so mail clients know what they show (RFC 3282).
#[derive(Clone)]
struct ContentLanguage(String);

impl Header for ContentLanguage {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Content-Language")
    }
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_owned()))
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// `X-Redress-Template`: the template id and version the body was rendered from.
#[derive(Clone)]
struct TemplateHeader(String);

impl Header for TemplateHeader {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Redress-Template")
    }
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_owned()))
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_host_port_and_tls() {
        let t = Target::parse("smtp://127.0.0.1:2525").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.mode),
            ("127.0.0.1", 2525, Mode::StartTlsIfOffered)
        );
        let t = Target::parse("smtp://u:p@mail.example.com?tls=required").unwrap();
        assert_eq!((t.port, t.mode), (587, Mode::StartTlsRequired));
        assert_eq!(t.credentials, Some(("u".into(), "p".into())));
        assert_eq!(
            Target::parse("smtps://mail.example.com").unwrap().mode,
            Mode::Implicit
        );
        let error = Target::parse("http://u:secret@x").unwrap_err().to_string();
        assert!(
            error.contains("scheme") && !error.contains("secret"),
            "{error}"
        );
        assert!(Target::parse("smtp://x:port").is_err());
    }
}
