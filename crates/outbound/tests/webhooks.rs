//! Webhook delivery to a real receiver that verifies with the Standard Webhooks reference
//! library for Python (tests/python/webhook_receiver.py), outcome classification, and the SSRF
//! guard's refusals.
// Helpers outside #[test] fns: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::Peer;
use futures::future::BoxFuture;
use redress_outbound::webhook::signing::Keypair;
use redress_outbound::webhook::{
    Deliverer, Endpoint, Guard, Message, MessageId, Outcome, Resolve, RetryPolicy, Secret,
    SignatureKey, Signer, SsrfError, SsrfPolicy,
};

/// Loopback allowed over http: what a development setup (and this test) needs.
fn dev_policy() -> SsrfPolicy {
    SsrfPolicy {
        allow_insecure_http: true,
        allowed_networks: vec!["127.0.0.1/32".parse().unwrap()],
    }
}

fn deliverer(policy: SsrfPolicy) -> Deliverer {
    Deliverer::new(Guard::new(policy), Duration::from_millis(1500))
}

fn endpoint(url: String, keys: Vec<SignatureKey>) -> Endpoint {
    Endpoint {
        url: url.parse().unwrap(),
        signer: Signer::new(keys).unwrap(),
    }
}

fn event() -> Message {
    Message::json(
        MessageId::new(),
        &serde_json::json!({
            "type": "redress.case.v1.extended",
            "timestamp": "2026-12-03T08:00:00Z",
            "data": {"caseId": "0193a6c2-7f1e-7000-8000-000000000001", "newDue": "2026-12-31"}
        }),
    )
}

struct Receiver {
    peer: Peer,
    old: Secret,
    new: Secret,
    pair: Keypair,
}

async fn receiver() -> Receiver {
    let (old, new, pair) = (
        Secret::generate().unwrap(),
        Secret::generate().unwrap(),
        Keypair::generate().unwrap(),
    );
    let peer = Peer::start(
        "webhook_receiver.py",
        &[
            "--secret",
            &old.to_whsec(),
            "--secret",
            &new.to_whsec(),
            "--public-key",
            &pair.public().to_whpk(),
        ],
    )
    .await;
    Receiver {
        peer,
        old,
        new,
        pair,
    }
}

/// During a rotation both secrets sign; a receiver holding either one accepts, with the
/// reference library, and a v1a signature in the same header does not disturb it.
#[tokio::test]
async fn the_reference_library_verifies_v1_during_rotation_and_v1a() {
    let mut r = receiver().await;
    let d = deliverer(dev_policy());
    let keys = vec![
        SignatureKey::Symmetric(r.old.clone()),
        SignatureKey::Symmetric(r.new.clone()),
        SignatureKey::Asymmetric(r.pair.clone()),
    ];
    for path in ["/v1/0", "/v1/1", "/v1a"] {
        let message = event();
        let outcome = d
            .deliver(&endpoint(r.peer.url(path), keys.clone()), &message)
            .await;
        assert!(
            matches!(outcome, Outcome::Delivered { status: 204 }),
            "{path}: {outcome:?}"
        );
        let seen = r.peer.next("VERIFIED").await;
        assert_eq!(seen["path"], path);
        assert_eq!(seen["id"], message.id.as_str());
        assert_eq!(seen["body"]["data"]["newDue"], "2026-12-31");
        assert_eq!(seen["signature"].as_str().unwrap().split(' ').count(), 3);
    }
    // After rotation only the new secret signs: a receiver still on the old one refuses.
    let only_new = vec![SignatureKey::Symmetric(r.new.clone())];
    let outcome = d
        .deliver(&endpoint(r.peer.url("/v1/0"), only_new), &event())
        .await;
    assert!(
        matches!(
            outcome,
            Outcome::Retry {
                status: Some(401),
                ..
            }
        ),
        "{outcome:?}"
    );
    assert!(
        r.peer.next("REJECTED").await["why"]
            .as_str()
            .unwrap()
            .contains("No matching signature")
    );
}

#[tokio::test]
async fn outcomes_are_classified_and_retry_after_is_honoured() {
    let r = receiver().await;
    let d = deliverer(dev_policy());
    let keys = vec![SignatureKey::Symmetric(r.old.clone())];
    let send = |path: &str| {
        let e = endpoint(r.peer.url(path), keys.clone());
        let d = &d;
        async move { d.deliver(&e, &event()).await }
    };
    assert!(matches!(
        send("/gone").await,
        Outcome::Disable { status: 410 }
    ));
    let policy = RetryPolicy::standard().unwrap();
    match send("/throttle").await {
        Outcome::Retry {
            status: Some(429),
            retry_after: Some(after),
            ..
        } => {
            assert_eq!(after, Duration::from_secs(7));
            // First retry is 5 s on the schedule; the receiver asked for 7.
            assert_eq!(
                policy.next_delay(1, Some(after), 0.5),
                Some(Duration::from_secs(7))
            );
        }
        other => panic!("{other:?}"),
    }
    match send("/unavailable").await {
        Outcome::Retry {
            status: Some(503),
            retry_after: Some(after),
            ..
        } => {
            assert!(
                (Duration::from_secs(115)..=Duration::from_secs(121)).contains(&after),
                "{after:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        send("/error").await,
        Outcome::Retry {
            status: Some(500),
            retry_after: None,
            ..
        }
    ));
    // A redirect is a failure, and is not followed (it points at the metadata service).
    assert!(matches!(
        send("/redirect").await,
        Outcome::Retry {
            status: Some(302),
            ..
        }
    ));
    match send("/slow").await {
        Outcome::Retry {
            status: None,
            reason,
            ..
        } => assert!(reason.contains("timed out"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

fn refused(outcome: Outcome) -> SsrfError {
    match outcome {
        Outcome::Refused(err) => err,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn the_ssrf_guard_refuses_what_it_must() {
    let r = receiver().await;
    let keys = vec![SignatureKey::Symmetric(r.old.clone())];
    let to = |url: &str| endpoint(url.to_owned(), keys.clone());

    // Production policy: https only, no special addresses.
    let prod = deliverer(SsrfPolicy::default());
    let err = refused(prod.deliver(&to(&r.peer.url("/v1/0")), &event()).await);
    assert!(matches!(err, SsrfError::Insecure(_)), "{err}");
    for url in [
        "https://127.0.0.1/",
        "https://10.0.0.7/",
        "https://172.20.1.1/",
        "https://192.168.0.10/",
        "https://169.254.169.254/latest/meta-data/",
        "https://100.64.12.1/",
        "https://[::1]/",
        "https://[fe80::1]/",
        "https://[fd00:ec2::254]/",
        "https://[::ffff:127.0.0.1]/",
    ] {
        let err = refused(prod.deliver(&to(url), &event()).await);
        assert!(matches!(err, SsrfError::Forbidden { .. }), "{url}: {err}");
    }
    let err = refused(prod.deliver(&to("ftp://example.com/"), &event()).await);
    assert!(matches!(err, SsrfError::Scheme(_)), "{err}");

    // DNS is resolved at send time by the system resolver: `localhost` is loopback.
    let err = refused(prod.deliver(&to("https://localhost/hook"), &event()).await);
    assert!(
        matches!(err, SsrfError::Forbidden { ref host, .. } if host == "localhost"),
        "{err}"
    );

    // http allowed (dev flag) but loopback not allowlisted: still refused.
    let insecure_only = deliverer(SsrfPolicy {
        allow_insecure_http: true,
        allowed_networks: vec![],
    });
    let err = refused(
        insecure_only
            .deliver(&to(&r.peer.url("/v1/0")), &event())
            .await,
    );
    assert!(matches!(err, SsrfError::Forbidden { .. }), "{err}");
}

/// A DNS server that answers with an allowed address first and a forbidden one afterwards.
struct Rebinding {
    port: u16,
    lookups: AtomicUsize,
}

impl Resolve for Rebinding {
    fn lookup<'a>(
        &'a self,
        _host: &'a str,
        _port: u16,
    ) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>> {
        let n = self.lookups.fetch_add(1, Ordering::SeqCst);
        let ip = if n == 0 {
            "127.0.0.1"
        } else {
            "169.254.169.254"
        };
        let addr = SocketAddr::new(ip.parse().unwrap(), self.port);
        Box::pin(async move { Ok(vec![addr]) })
    }
}

/// The name is resolved once per attempt and the connection goes to that checked address:
/// reqwest never resolves `hooks.dept.test` itself (the system could not), so a second,
/// rebound answer cannot be used for the request that was checked.
#[tokio::test]
async fn the_connection_is_pinned_to_the_checked_address() {
    let mut r = receiver().await;
    let dns = Arc::new(Rebinding {
        port: r.peer.port,
        lookups: AtomicUsize::new(0),
    });
    let d = Deliverer::new(
        Guard::with_resolver(dev_policy(), dns.clone()),
        Duration::from_secs(5),
    );
    let url = format!("http://hooks.dept.test:{}/v1/0", r.peer.port);
    let e = endpoint(url, vec![SignatureKey::Symmetric(r.old.clone())]);
    let message = event();
    assert!(matches!(
        d.deliver(&e, &message).await,
        Outcome::Delivered { .. }
    ));
    assert_eq!(r.peer.next("VERIFIED").await["id"], message.id.as_str());
    assert_eq!(dns.lookups.load(Ordering::SeqCst), 1);
    // The next attempt resolves again, and the rebound answer is refused.
    let err = refused(d.deliver(&e, &event()).await);
    assert!(
        matches!(err, SsrfError::Forbidden { range, .. } if range.contains("link-local")),
        "{err}"
    );
    assert!(r.peer.drain().is_empty(), "nothing reached any server");
}

/// A name that always answers one address (what a department's DNS would say).
struct Fixed(SocketAddr);

impl Resolve for Fixed {
    fn lookup<'a>(
        &'a self,
        _host: &'a str,
        _port: u16,
    ) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>> {
        let addr = self.0;
        Box::pin(async move { Ok(vec![addr]) })
    }
}

/// A CA and a certificate for `name`, as PEM files in a fresh directory.
fn tls_files(name: &str) -> (std::path::PathBuf, reqwest::Certificate) {
    let dir = std::env::temp_dir().join(format!("redress-outbound-{}", MessageId::new().as_str()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    let root = reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap();
    (dir, root)
}

/// The production path: https, a domain pinned to its checked address, the certificate
/// verified for the domain (SNI), and the reference library verifying the signature.
#[tokio::test]
async fn https_delivery_is_pinned_and_verified_for_the_domain() {
    let (dir, root) = tls_files("hooks.dept.test");
    let secret = Secret::generate().unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let mut peer = Peer::start(
        "webhook_receiver.py",
        &[
            "--secret",
            &secret.to_whsec(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    )
    .await;
    let addr = SocketAddr::new("127.0.0.1".parse().unwrap(), peer.port);
    let policy = SsrfPolicy {
        allow_insecure_http: false,
        allowed_networks: vec!["127.0.0.1/32".parse().unwrap()],
    };
    let d = Deliverer::new(
        Guard::with_resolver(policy, Arc::new(Fixed(addr))),
        Duration::from_secs(5),
    )
    .with_root_certificate(root);
    let e = endpoint(
        format!("https://hooks.dept.test:{}/v1/0", peer.port),
        vec![SignatureKey::Symmetric(secret)],
    );
    let message = event();
    let outcome = d.deliver(&e, &message).await;
    assert!(
        matches!(outcome, Outcome::Delivered { status: 204 }),
        "{outcome:?}"
    );
    assert_eq!(peer.next("VERIFIED").await["id"], message.id.as_str());

    // The same server under a name its certificate does not carry: TLS refuses.
    let other = endpoint(
        format!("https://other.dept.test:{}/v1/0", peer.port),
        vec![SignatureKey::Symmetric(Secret::generate().unwrap())],
    );
    assert!(matches!(
        d.deliver(&other, &event()).await,
        Outcome::Retry { status: None, .. }
    ));
    let _ = std::fs::remove_dir_all(dir);
}

/// A resolver whose every answer is NXDOMAIN.
struct Nxdomain;

impl Resolve for Nxdomain {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        _port: u16,
    ) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>> {
        let err = io::Error::new(io::ErrorKind::NotFound, format!("{host}: NXDOMAIN"));
        Box::pin(async move { Err(err) })
    }
}

/// DNS failing is not the endpoint's fault for good: retry on the schedule, not refuse.
#[tokio::test]
async fn a_name_that_does_not_resolve_is_retried() {
    let d = Deliverer::new(
        Guard::with_resolver(SsrfPolicy::default(), Arc::new(Nxdomain)),
        Duration::from_secs(1),
    );
    let e = endpoint(
        "https://hooks.dept.test/".into(),
        vec![SignatureKey::Symmetric(Secret::generate().unwrap())],
    );
    match d.deliver(&e, &event()).await {
        Outcome::Retry {
            status: None,
            reason,
            ..
        } => assert!(reason.contains("NXDOMAIN"), "{reason}"),
        other => panic!("{other:?}"),
    }
}
