//! What a webhook endpoint may point at. Endpoint URLs come from users, so a URL could aim our
//! sender at the cloud metadata service, a database's HTTP port or anything else inside. At
//! send time (not only at registration, since DNS answers change) the host is resolved once,
//! every address it resolves to is checked, and the connection is pinned to the checked
//! address — so a second, different DNS answer (rebinding) is never used.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use futures::future::BoxFuture;
use ipnet::IpNet;
use url::{Host, Url};

#[derive(Debug, Clone, Default)]
pub struct SsrfPolicy {
    /// Allow `http://` endpoints: development only.
    pub allow_insecure_http: bool,
    /// Networks allowed even though they are private/loopback/… (e.g. a department's
    /// on-premises range). Empty in production unless configured.
    pub allowed_networks: Vec<IpNet>,
}

#[derive(Debug, thiserror::Error)]
pub enum SsrfError {
    #[error("endpoint must use https (http only with the allow-insecure development flag): {0}")]
    Insecure(String),
    #[error("endpoint scheme `{0}` is not http(s)")]
    Scheme(String),
    #[error("endpoint URL has no host")]
    NoHost,
    #[error("could not resolve `{host}`: {source}")]
    Resolve { host: String, source: io::Error },
    #[error("`{host}` resolves to no address")]
    NoAddress { host: String },
    #[error("`{host}` is {addr}, a {range} address, which is not allowed")]
    Forbidden {
        host: String,
        addr: IpAddr,
        range: &'static str,
    },
}

/// Where a request may go: the URL and the one address to connect to.
#[derive(Debug, Clone)]
pub struct Checked {
    pub url: Url,
    /// The domain to pin, when the URL names one (an IP literal needs no pinning).
    pub domain: Option<String>,
    pub addr: SocketAddr,
}

/// Name resolution, replaceable so tests can play a rebinding DNS server.
pub trait Resolve: Send + Sync {
    fn lookup<'a>(&'a self, host: &'a str, port: u16)
    -> BoxFuture<'a, io::Result<Vec<SocketAddr>>>;
}

/// The system resolver (getaddrinfo through tokio).
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// Special-purpose ranges no endpoint may reach unless allowed (IANA special-purpose address
/// registries, RFC 6890 and the RFCs named).
const V4_RANGES: &[(&str, &str)] = &[
    ("0.0.0.0/8", "\"this network\" (RFC 791)"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.64.0.0/10", "carrier-grade NAT (RFC 6598)"),
    ("127.0.0.0/8", "loopback (RFC 1122)"),
    ("169.254.0.0/16", "link-local (RFC 3927)"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments (RFC 6890)"),
    ("192.0.2.0/24", "documentation (RFC 5737)"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking (RFC 2544)"),
    ("198.51.100.0/24", "documentation (RFC 5737)"),
    ("203.0.113.0/24", "documentation (RFC 5737)"),
    ("224.0.0.0/4", "multicast (RFC 5771)"),
    ("240.0.0.0/4", "reserved (RFC 1112)"),
];

const V6_RANGES: &[(&str, &str)] = &[
    ("::/128", "unspecified (RFC 4291)"),
    ("::1/128", "loopback (RFC 4291)"),
    ("fc00::/7", "unique-local (RFC 4193)"),
    ("fe80::/10", "link-local (RFC 4291)"),
    ("fec0::/10", "site-local (RFC 3879)"),
    ("ff00::/8", "multicast (RFC 4291)"),
    ("2001:db8::/32", "documentation (RFC 3849)"),
    ("100::/64", "discard-only (RFC 6666)"),
];

fn in_ranges(ip: IpAddr, ranges: &'static [(&'static str, &'static str)]) -> Option<&'static str> {
    ranges.iter().find_map(|(cidr, name)| {
        let net: IpNet = cidr.parse().ok()?;
        net.contains(&ip).then_some(*name)
    })
}

/// IPv4 carried inside IPv6 (mapped, NAT64, 6to4) is judged as the IPv4 address it carries.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x2002, a, b, ..] => Some(Ipv4Addr::new(
            (a >> 8) as u8,
            a as u8,
            (b >> 8) as u8,
            b as u8,
        )),
        _ => None,
    }
}

/// The special-purpose range `ip` falls in, if any (`None`: a public address).
pub fn forbidden_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) if v4.is_broadcast() => Some("broadcast (RFC 919)"),
        IpAddr::V4(_) => in_ranges(ip, V4_RANGES),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => forbidden_range(IpAddr::V4(v4)),
            None => in_ranges(ip, V6_RANGES),
        },
    }
}

#[derive(Clone)]
pub struct Guard {
    policy: SsrfPolicy,
    resolver: Arc<dyn Resolve>,
}

impl Guard {
    pub fn new(policy: SsrfPolicy) -> Self {
        Self::with_resolver(policy, Arc::new(SystemResolver))
    }

    pub fn with_resolver(policy: SsrfPolicy, resolver: Arc<dyn Resolve>) -> Self {
        Guard { policy, resolver }
    }

    fn allowed(&self, host: &str, addr: IpAddr) -> Result<(), SsrfError> {
        match forbidden_range(addr) {
            Some(range)
                if !self
                    .policy
                    .allowed_networks
                    .iter()
                    .any(|n| n.contains(&addr)) =>
            {
                Err(SsrfError::Forbidden {
                    host: host.to_owned(),
                    addr,
                    range,
                })
            }
            _ => Ok(()),
        }
    }

    /// Checks `url` now: scheme, then every address its host resolves to. A name with any
    /// forbidden address is refused whole (a mixed answer is how rebinding attacks start).
    pub async fn check(&self, url: &Url) -> Result<Checked, SsrfError> {
        match url.scheme() {
            "https" => {}
            "http" if self.policy.allow_insecure_http => {}
            "http" => return Err(SsrfError::Insecure(url.to_string())),
            other => return Err(SsrfError::Scheme(other.to_owned())),
        }
        let port = url.port_or_known_default().ok_or(SsrfError::NoHost)?;
        let (domain, addrs) = match url.host().ok_or(SsrfError::NoHost)? {
            Host::Ipv4(v4) => (None, vec![SocketAddr::new(IpAddr::V4(v4), port)]),
            Host::Ipv6(v6) => (None, vec![SocketAddr::new(IpAddr::V6(v6), port)]),
            Host::Domain(name) => {
                let addrs = self.resolver.lookup(name, port).await.map_err(|source| {
                    SsrfError::Resolve {
                        host: name.to_owned(),
                        source,
                    }
                })?;
                (Some(name.to_owned()), addrs)
            }
        };
        let host = url.host_str().unwrap_or_default();
        for addr in &addrs {
            self.allowed(host, addr.ip())?;
        }
        let addr = *addrs.first().ok_or_else(|| SsrfError::NoAddress {
            host: host.to_owned(),
        })?;
        Ok(Checked {
            url: url.clone(),
            domain,
            addr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_ranges_are_named_and_public_ones_pass() {
        for (ip, range) in [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("0.0.0.0", "this network"),
            ("255.255.255.255", "broadcast"),
            ("::1", "loopback"),
            ("fe80::1", "link-local"),
            ("fd12:3456::1", "unique-local"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("2002:c0a8:0101::1", "private"),
        ] {
            let got = forbidden_range(ip.parse().unwrap());
            assert!(got.is_some_and(|g| g.contains(range)), "{ip}: {got:?}");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "172.32.0.1",
        ] {
            assert_eq!(forbidden_range(public.parse().unwrap()), None, "{public}");
        }
    }
}
