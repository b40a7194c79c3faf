//! What notification, analytics and compliance-audit need to run as processes beside the
//! pipeline: a real SMTP server (aiosmtpd writing a Maildir, the notification tests' own
//! script), notification's service key and compliance-audit's checkpoint signing key.

use std::{collections::HashMap, path::PathBuf, process::Stdio, time::Duration};

use redress_compliance_audit::{NoteSigner, NoteVerifier};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Child,
};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// A name no other run on this machine uses at the same time.
fn unique() -> String {
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    format!("{}-{nanos}", std::process::id())
}

/// The tests' Python (tests/python/venv.sh makes it once, with aiosmtpd).
fn python() -> String {
    let out = std::process::Command::new("bash")
        .arg(format!("{ROOT}/tests/python/venv.sh"))
        .output();
    match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Ok(out) => panic!("venv.sh: {}", String::from_utf8_lossy(&out.stderr)),
        Err(error) => panic!("venv.sh: {error}"),
    }
}

/// A real SMTP server on a free port, writing each mail it accepts to a Maildir.
pub struct Smtp {
    pub port: u16,
    pub maildir: PathBuf,
    _child: Child,
}

impl Smtp {
    pub async fn start() -> Self {
        let port = redress_runtime::testing::free_port();
        let maildir = std::env::temp_dir().join(format!("redress-chaos-maildir-{}", unique()));
        let script = format!("{ROOT}/services/notification/tests/support/smtp_server.py");
        let child = tokio::process::Command::new(python())
            .arg(script)
            .arg(port.to_string())
            .arg(&maildir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(error) => panic!("aiosmtpd does not start: {error}"),
        };
        let Some(stdout) = child.stdout.take() else {
            panic!("aiosmtpd: no stdout");
        };
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await;
        assert!(
            matches!(ready, Ok(Ok(Some(ref l))) if l == "ready"),
            "aiosmtpd: {ready:?}"
        );
        Self {
            port,
            maildir,
            _child: child,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    /// How often each Message-ID arrived. Notification's Message-ID is `<delivery id@…>`.
    pub fn received(&self) -> HashMap<String, usize> {
        let mut seen = HashMap::new();
        let Ok(dir) = std::fs::read_dir(self.maildir.join("new")) else {
            return seen;
        };
        for entry in dir.flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            let id = text
                .lines()
                .find_map(|l| l.strip_prefix("Message-ID: <"))
                .and_then(|l| l.split('@').next())
                .unwrap_or("(no Message-ID)")
                .to_owned();
            *seen.entry(id).or_insert(0) += 1;
        }
        seen
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}

/// Notification's service key and compliance-audit's signing key, in a directory of their own.
pub struct Keys {
    dir: PathBuf,
    pub service_key: PathBuf,
    pub signing_key: PathBuf,
    pub verifier: NoteVerifier,
}

impl Keys {
    pub fn write() -> Self {
        let dir = std::env::temp_dir().join(format!("redress-chaos-keys-{}", unique()));
        // The key id is the file's stem: `dev`, as the development public key's.
        let service_key = dir.join(format!("{}.pem", redress_runtime::auth::dev::KID));
        let signing_key = dir.join("audit-signing.key");
        let signer = match NoteSigner::generate("audit.chaos.redress.test") {
            Ok(signer) => signer,
            Err(error) => panic!("checkpoint signing key: {error}"),
        };
        let written = std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::write(&service_key, redress_runtime::auth::dev::PRIVATE_PEM))
            .and_then(|_| std::fs::write(&signing_key, signer.encode()));
        if let Err(error) = written {
            panic!("writing keys into {}: {error}", dir.display());
        }
        Self {
            dir,
            service_key,
            signing_key,
            verifier: signer.verifier(),
        }
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The settings of the three services, by binary: mail to `smtp`, notices sent at once and
/// retried soon (the run is minutes long), checkpoints every second.
pub fn settings(smtp: &Smtp, keys: &Keys) -> Vec<(&'static str, String, String)> {
    let path = |p: &PathBuf| p.display().to_string();
    let n = "redress-notification";
    vec![
        (n, "REDRESS_SERVICE_KEY".into(), path(&keys.service_key)),
        (n, "REDRESS_SMTP_URL".into(), smtp.url()),
        (n, "REDRESS_NOTIFY_POLL".into(), "100ms".into()),
        (n, "REDRESS_NOTIFY_RETRY_FIRST".into(), "1s".into()),
        (n, "REDRESS_NOTIFY_RATE_PER_HOUR".into(), "1000000".into()),
        (n, "REDRESS_NOTIFY_WORKERS".into(), "8".into()),
        (
            "redress-compliance-audit",
            "REDRESS_AUDIT_SIGNING_KEY_FILE".into(),
            path(&keys.signing_key),
        ),
        (
            "redress-compliance-audit",
            "REDRESS_AUDIT_CHECKPOINT_INTERVAL".into(),
            "1s".into(),
        ),
    ]
}
