//! Starts the Python peers of these tests (real HTTP servers on 127.0.0.1) and reads what they
//! report on stdout.

// Test support: a failed setup is a failed test.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// The shared test venv (tests/python/venv.sh), made once.
pub fn python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::process::Command::new(root.join("tests/python/venv.sh"))
        .output()
        .expect("tests/python/venv.sh runs");
    assert!(
        out.status.success(),
        "venv.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

pub struct Peer {
    _child: Child,
    pub port: u16,
    lines: mpsc::UnboundedReceiver<String>,
}

impl Peer {
    /// Runs `tests/python/<script>` with `args`; waits for its `READY <port>` line.
    pub async fn start(script: &str, args: &[&str]) -> Peer {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/python")
            .join(script);
        let mut child = Command::new(python())
            .arg(path)
            .args(args)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, mut lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let ready = tokio::time::timeout(Duration::from_secs(20), lines.recv())
            .await
            .expect("peer ready in time")
            .expect("peer printed READY");
        let port = ready
            .strip_prefix("READY ")
            .expect("READY line")
            .parse()
            .unwrap();
        Peer {
            _child: child,
            port,
            lines,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The next reported line starting with `kind`, as JSON (deadline 10 s).
    pub async fn next(&mut self, kind: &str) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("no {kind} line in time"))
                .expect("peer still running");
            if let Some(json) = line.strip_prefix(kind).and_then(|r| r.strip_prefix(' ')) {
                return serde_json::from_str(json).unwrap();
            }
        }
    }

    /// Every line reported so far, without waiting.
    pub fn drain(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(line) = self.lines.try_recv() {
            out.push(line);
        }
        out
    }
}
