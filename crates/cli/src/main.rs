//! `redress`: the command for people working with Redress.
//!
//! ```text
//! redress dev                              run every service in one process
//! redress submit --channel web --file F    submit a complaint as a channel would
//! redress cases list | get | assign | start | decide | …   work cases (case-coordination)
//! redress complaints get RD-…              the redacted complaint (intake)
//! redress classification review | reclassify | train | bootstrap | eval | export-examples
//!                        | retrain | models | rollback
//! redress events tail [SUBJECT] [--since 1h | --all]        bus messages as JSON lines
//! redress token --role specialist          a bearer token (development key, or --key)
//! redress keys generate jwt | intake       keys for a deployment
//! redress intake rotate-key                re-seal personal data (runs redress-intake)
//! redress load --rate 500 --duration 60s    realistic complaints; receipt and case latencies
//! redress doctor                           is NATS (JetStream) and Postgres there?
//! redress asyncapi                         the bus contract as an AsyncAPI 3 document
//! redress audit verify | export | bundle   check the audit log offline (compliance-audit)
//! ```

mod asyncapi;
mod audit;
mod cases;
mod classification;
mod complaints;
mod dev;
mod doctor;
mod events;
mod grpc;
mod keys;
mod load;
mod notification;
mod report;
mod review;
mod submit;
mod token;
mod tools;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "redress",
    version,
    about = "Redress: complaint handling for consumer-protection teams"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every service in one process against local NATS and Postgres.
    Dev(Box<dev::Args>),
    /// Submit a complaint as a channel would, and print the receipt or the violations.
    Submit(submit::Args),
    /// Work cases: list, read, route, decide, close (case-coordination's gRPC API).
    Cases(cases::Args),
    /// Read registered complaints (intake's gRPC API; no contact details).
    Complaints(complaints::Args),
    /// The review queue, overrides, and training and measuring models.
    Classification {
        #[command(subcommand)]
        command: classification::Command,
    },
    /// Read messages from the bus.
    Events {
        #[command(subcommand)]
        command: events::Command,
    },
    /// Mint a bearer token.
    Token(token::Args),
    /// Make keys for a deployment.
    Keys {
        #[command(subcommand)]
        command: keys::Command,
    },
    /// Intake operations.
    Intake {
        #[command(subcommand)]
        command: IntakeCommand,
    },
    /// Submit realistic complaints at a rate or N at once, and measure receipt and case latencies.
    Load(load::Args),
    /// Check that NATS with JetStream and Postgres answer, and say what is wrong.
    Doctor(doctor::Args),
    /// Print the bus contract as an AsyncAPI 3 document (docs/asyncapi.json).
    Asyncapi,
    /// Consumer notices: preview any template with sample data.
    Notification {
        #[command(subcommand)]
        command: notification::Command,
    },
    /// The audit log: fetch an export or a case's evidence bundle, verify either offline.
    Audit {
        #[command(subcommand)]
        command: audit::Command,
    },
    /// The monthly management or regulator report (analytics): HTML, PDF, CSV.
    Report(report::Args),
}

#[derive(Subcommand)]
enum IntakeCommand {
    /// Re-seal every stored personal-data value under REDRESS_INTAKE_ACTIVE_KEY.
    RotateKey,
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Dev(args) => {
                let given = matches
                    .subcommand_matches("dev")
                    .map(dev::given)
                    .unwrap_or_else(|| Box::new(|_: &str| false));
                dev::run(*args, given).await
            }
            Command::Submit(args) => submit::run(args).await,
            Command::Cases(args) => cases::run(args).await,
            Command::Complaints(args) => complaints::run(args).await,
            Command::Classification { command } => classification::run(command).await,
            Command::Events { command } => events::run(command).await,
            Command::Token(args) => token::run(args),
            Command::Keys { command } => keys::run(command),
            Command::Intake {
                command: IntakeCommand::RotateKey,
            } => tools::run_service_command("redress-intake", &["rotate-key"]),
            Command::Load(args) => load::run(args).await,
            Command::Doctor(args) => doctor::run(args).await,
            Command::Asyncapi => asyncapi::run(),
            Command::Audit { command } => audit::run(command).await,
            Command::Notification { command } => notification::run(command),
            Command::Report(args) => report::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The causes, each said once; never a backtrace for a user's mistake.
            eprintln!("error: {}", redress_runtime::app::sentence(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        // Flags of the services flattened into `dev` must not collide.
        Cli::command().debug_assert();
    }
}
