//! A service binary's `main`: parse the configuration once (a bad value stops start-up with a
//! message naming its variable), set up logs and traces, run until SIGTERM, and report an
//! error as a sentence rather than a panic.
//!
//! ```text
//! fn main() -> std::process::ExitCode {
//!     redress_runtime::main(redress_classification::SERVICE, redress_classification::run)
//! }
//! ```

use std::{error::Error, future::Future, process::ExitCode};

use tokio_util::sync::CancellationToken;

use crate::{Running, RuntimeConfig, config, service::StartError, shutdown, telemetry};

/// A service's configuration: its own settings with the runtime's flattened in.
pub trait ServiceConfig: clap::Parser + Send + 'static {
    fn runtime(&self) -> &RuntimeConfig;
}

/// What a binary's entry point ended with: a service now serving, or a command that is done.
pub enum Exit {
    Serving(Running),
    Done,
}

impl From<Running> for Exit {
    fn from(running: Running) -> Self {
        Exit::Serving(running)
    }
}

impl From<()> for Exit {
    fn from(_: ()) -> Self {
        Exit::Done
    }
}

/// Runs `entry` with the parsed configuration and a shutdown token cancelled on SIGTERM or
/// SIGINT, then waits for a serving service to stop.
pub fn main<C, F, Fut, X>(service: &'static str, entry: F) -> ExitCode
where
    C: ServiceConfig,
    F: FnOnce(C, CancellationToken) -> Fut,
    Fut: Future<Output = Result<X, StartError>>,
    X: Into<Exit>,
{
    let config: C = config::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("redress-{service}: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let _telemetry = telemetry::init(service, config.runtime().log_format);
        let shutdown = CancellationToken::new();
        shutdown::cancel_on_signal(shutdown.clone());
        let result = match entry(config, shutdown).await.map(Into::into) {
            Ok(Exit::Serving(running)) => running.stopped().await,
            Ok(Exit::Done) => Ok(()),
            Err(error) => Err(error),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(%error, "stopped with an error");
                eprintln!("redress-{service}: {}", sentence(&error));
                ExitCode::FAILURE
            }
        }
    })
}

/// An error and its causes as one line, each cause said once.
pub fn sentence(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}
