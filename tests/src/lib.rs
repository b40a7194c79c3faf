//! The end-to-end harness: the suite as separate processes — `redress-intake`,
//! `redress-classification` and `redress-case-coordination` — on a fresh database and bus
//! namespace, talked to as channels and departments do: over NATS.

use std::{
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use redress_runtime::testing::{TestEnv, eventually};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Child,
};

pub use redress_runtime::testing;

pub mod chaos;

/// The services, in start order: (binary, package).
pub const SERVICES: [(&str, &str); 3] = [
    ("redress-intake", "redress-intake"),
    ("redress-classification", "redress-classification"),
    ("redress-case-coordination", "redress-case-coordination"),
];

/// A running suite; the processes are killed when it is dropped.
pub struct Suite {
    pub env: TestEnv,
    /// Every process, by service: several when a service runs replicas.
    processes: Vec<Process>,
    extra: Vec<(String, String)>,
    pub logs: Arc<Mutex<Vec<String>>>,
}

struct Process {
    binary: &'static str,
    package: &'static str,
    child: Option<Child>,
}

impl Suite {
    /// Starts every service as its own process, with `extra` environment on top, and waits
    /// until each says it is serving.
    pub async fn start(extra: &[(&str, &str)]) -> Self {
        Self::start_in(TestEnv::new().await, extra, &[]).await
    }

    /// As [`Suite::start`], in a given environment (e.g. one pointed at a test's own NATS),
    /// with `replicas` processes of the named binaries.
    pub async fn start_in(
        env: TestEnv,
        extra: &[(&str, &str)],
        replicas: &[(&str, usize)],
    ) -> Self {
        let mut suite = Self {
            env,
            processes: Vec::new(),
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            logs: Arc::new(Mutex::new(Vec::new())),
        };
        for (binary, package) in SERVICES {
            let n = replicas
                .iter()
                .find(|(b, _)| *b == binary)
                .map_or(1, |(_, n)| *n);
            for _ in 0..n {
                suite.processes.push(Process {
                    binary,
                    package,
                    child: None,
                });
                suite.launch(suite.processes.len() - 1).await;
            }
        }
        suite
    }

    /// Indexes of the processes of `binary`.
    pub fn replicas(&self, binary: &str) -> Vec<usize> {
        (0..self.processes.len())
            .filter(|i| self.processes[*i].binary == binary)
            .collect()
    }

    /// The OS process id of process `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.processes[i].child.as_ref().and_then(|c| c.id())
    }

    /// SIGKILL to process `i`; it stays down until [`Suite::launch`].
    pub async fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.processes[i].child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Starts process `i` (again) and waits until it is serving.
    pub async fn launch(&mut self, i: usize) {
        let Process {
            binary, package, ..
        } = self.processes[i];
        let path = binary_path(binary, package);
        let mut command = self.env.command(&path);
        command
            .env("REDRESS_INTAKE_KEYS", redress_intake::vault::dev::KEYS)
            .env(
                "REDRESS_INTAKE_ACTIVE_KEY",
                redress_intake::vault::dev::ACTIVE,
            )
            .env(
                "REDRESS_INTAKE_PSEUDONYM_KEY",
                redress_intake::vault::dev::PSEUDONYM,
            )
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in &self.extra {
            command.env(key, value);
        }
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => panic!("cannot start {}: {error}", path.display()),
        };
        let tag = format!("{binary}#{i}");
        let already = self.logs.lock().map(|l| l.len()).unwrap_or(0);
        collect(&mut child, &tag, self.logs.clone());
        let serving = format!("{tag}:");
        let logs = self.logs.clone();
        eventually(&format!("{tag} to serve"), Duration::from_secs(60), || {
            let logs = logs.clone();
            let serving = serving.clone();
            async move {
                let logs = logs.lock().ok()?;
                logs[already.min(logs.len())..]
                    .iter()
                    .any(|l| l.starts_with(&serving) && l.contains("serving"))
                    .then_some(())
            }
        })
        .await;
        self.processes[i].child = Some(child);
    }

    /// Stops the processes and removes the database and streams.
    pub async fn stop(mut self) {
        for i in 0..self.processes.len() {
            self.kill(i).await;
        }
        self.env.cleanup().await;
    }
}

/// Collects a child's output, each line prefixed with `<binary>:`.
fn collect(child: &mut Child, binary: &str, logs: Arc<Mutex<Vec<String>>>) {
    let outputs: Vec<Box<dyn tokio::io::AsyncRead + Unpin + Send>> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
    ]
    .into_iter()
    .flatten()
    .collect();
    for output in outputs {
        let logs = logs.clone();
        let binary = binary.to_owned();
        tokio::spawn(async move {
            let mut lines = BufReader::new(output).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(mut logs) = logs.lock() {
                    logs.push(format!("{binary}: {line}"));
                }
            }
        });
    }
}

/// The service binary beside this test executable (`target/<profile>/`), built first if
/// `cargo test` has not built it.
pub fn binary_path(binary: &str, package: &str) -> PathBuf {
    let profile_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|deps| deps.to_path_buf()))
        .map(|deps| {
            if deps.ends_with("deps") {
                deps.parent().map(|p| p.to_path_buf()).unwrap_or(deps)
            } else {
                deps
            }
        })
        .unwrap_or_else(|| PathBuf::from("target/debug"));
    let path = profile_dir.join(binary);
    if !path.exists() {
        let release = profile_dir.ends_with("release");
        let mut build =
            std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        build.args(["build", "-q", "-p", package, "--bin", binary]);
        if release {
            build.arg("--release");
        }
        let built = build.status().map(|s| s.success()).unwrap_or(false);
        assert!(built, "could not build {binary}");
    }
    path
}
