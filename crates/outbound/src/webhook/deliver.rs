//! One delivery attempt: check the endpoint, POST the signed JSON, classify the answer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use chrono::Utc;
use reqwest::redirect::Policy;
use url::Url;

use super::retry::parse_retry_after;
use super::signing::{MessageId, Signer};
use super::ssrf::{Checked, Guard, SsrfError};

/// A registered endpoint, as the sender needs it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: Url,
    pub signer: Signer,
}

/// One event for one endpoint: the id stays the same on every retry.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: MessageId,
    /// The JSON body, serialised once: what is signed is exactly what is sent.
    pub body: Vec<u8>,
}

impl Message {
    pub fn json(id: MessageId, payload: &serde_json::Value) -> Self {
        Message {
            id,
            body: payload.to_string().into_bytes(),
        }
    }
}

/// What one attempt came to, and so what to do next.
#[derive(Debug)]
pub enum Outcome {
    /// 2xx: done.
    Delivered { status: u16 },
    /// 410 Gone: the receiver wants no more; disable the endpoint (and tell its owner).
    Disable { status: u16 },
    /// Anything else (3xx — redirects are not followed —, 4xx, 5xx, timeouts, connection
    /// errors): try again on the schedule, not before `retry_after` if the receiver gave one.
    Retry {
        status: Option<u16>,
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The endpoint points somewhere we do not send to (scheme, or an address outside the
    /// policy): nothing was sent, and the owner should fix the URL. A name that does not
    /// resolve is a `Retry` instead.
    Refused(SsrfError),
}

/// Clients kept per (domain, checked address): a client can only ever connect to the address
/// it was built for, so reusing it (and its pooled connections) for the next attempt that
/// checks to the same address is as safe as building a new one, and far cheaper.
type Clients = Mutex<HashMap<(Option<String>, SocketAddr), reqwest::Client>>;

/// Bound on kept clients; past it the cache starts afresh.
const MAX_CLIENTS: usize = 1024;

pub struct Deliverer {
    guard: Guard,
    timeout: Duration,
    roots: Vec<reqwest::Certificate>,
    clients: Clients,
}

impl Deliverer {
    /// `timeout` covers the whole attempt; the specification suggests 15 to 30 s.
    pub fn new(guard: Guard, timeout: Duration) -> Self {
        Deliverer {
            guard,
            timeout,
            roots: Vec::new(),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Trust a further CA (a department's private CA, or a test's).
    pub fn with_root_certificate(mut self, root: reqwest::Certificate) -> Self {
        self.roots.push(root);
        self
    }

    /// The client for this checked address, kept or built.
    fn client(&self, checked: &Checked) -> Result<reqwest::Client, reqwest::Error> {
        let key = (checked.domain.clone(), checked.addr);
        if let Some(client) = self.clients.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(client);
        }
        let client = self.build_client(checked)?;
        if let Ok(mut kept) = self.clients.lock() {
            if kept.len() >= MAX_CLIENTS {
                kept.clear();
            }
            kept.insert(key, client.clone());
        }
        Ok(client)
    }

    /// A client for this one checked address: no redirects (they could lead anywhere), no
    /// proxy from the environment, and the domain resolved to the address we checked.
    fn build_client(&self, checked: &Checked) -> Result<reqwest::Client, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .redirect(Policy::none())
            .no_proxy()
            .timeout(self.timeout)
            .user_agent(concat!("redress-webhooks/", env!("CARGO_PKG_VERSION")));
        if let Some(domain) = &checked.domain {
            builder = builder.resolve(domain, checked.addr);
        }
        for root in &self.roots {
            builder = builder.add_root_certificate(root.clone());
        }
        builder.build()
    }

    pub async fn deliver(&self, endpoint: &Endpoint, message: &Message) -> Outcome {
        let checked = match self.guard.check(&endpoint.url).await {
            Ok(checked) => checked,
            // A name that does not resolve now may resolve later: DNS outages pass.
            Err(err @ (SsrfError::Resolve { .. } | SsrfError::NoAddress { .. })) => {
                return retry(None, err.to_string(), None);
            }
            Err(err) => return Outcome::Refused(err),
        };
        let client = match self.client(&checked) {
            Ok(client) => client,
            Err(err) => return retry(None, format!("building the HTTP client: {err}"), None),
        };
        let timestamp = Utc::now().timestamp();
        let signature = endpoint.signer.sign(&message.id, timestamp, &message.body);
        let sent = client
            .post(checked.url)
            .header("content-type", "application/json")
            .header("webhook-id", message.id.as_str())
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(message.body.clone())
            .send()
            .await;
        match sent {
            Ok(response) => classify(&response),
            Err(err) if err.is_timeout() => retry(None, format!("timed out: {err}"), None),
            Err(err) => retry(None, format!("request failed: {err}"), None),
        }
    }
}

fn retry(status: Option<u16>, reason: String, retry_after: Option<Duration>) -> Outcome {
    Outcome::Retry {
        status,
        reason,
        retry_after,
    }
}

fn classify(response: &reqwest::Response) -> Outcome {
    let status = response.status().as_u16();
    match status {
        200..=299 => Outcome::Delivered { status },
        410 => Outcome::Disable { status },
        _ => {
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()));
            retry(Some(status), format!("HTTP {status}"), retry_after)
        }
    }
}
