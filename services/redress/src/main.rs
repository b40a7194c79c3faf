//! `redress`: the command for people working with Redress.
//!
//! ```text
//! redress dev                      run every service in one process (local NATS + Postgres)
//! redress token --role specialist  mint a development bearer token
//! redress events tail [SUBJECT]    print bus events as JSON lines
//! redress doctor                   check that NATS (JetStream) and Postgres answer
//! redress submit --channel web --file complaint.json
//! redress intake rotate-key        re-seal personal data under the active key
//! redress classification train --data FILE.csv --text-column C --label-column L --out M
//! redress classification eval  --model M --data FILE.csv --text-column C --label-column L
//! ```

mod classification;
mod dev;
mod doctor;
mod events;
mod submit;
mod token;

use clap::{Parser, Subcommand};

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
    Dev(dev::Args),
    /// Mint a development token (signed with the development key in deploy/local/dev-keys).
    Token(token::Args),
    /// Read events from the bus.
    Events {
        #[command(subcommand)]
        command: events::Command,
    },
    /// Check that NATS with JetStream and Postgres answer, and say what is wrong.
    Doctor(doctor::Args),
    /// Submit a complaint as a channel would, and print the receipt or the violations.
    Submit(submit::Args),
    /// Train and measure classification models.
    Classification {
        #[command(subcommand)]
        command: classification::Command,
    },
    /// Intake operations.
    Intake {
        #[command(subcommand)]
        command: IntakeCommand,
    },
}

#[derive(Subcommand)]
enum IntakeCommand {
    /// Re-seal every stored personal-data value under REDRESS_INTAKE_ACTIVE_KEY.
    RotateKey(submit::RotateArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Dev(args) => dev::run(args).await,
        Command::Token(args) => token::run(args),
        Command::Events { command } => events::run(command).await,
        Command::Doctor(args) => doctor::run(args).await,
        Command::Submit(args) => submit::run(args).await,
        Command::Intake {
            command: IntakeCommand::RotateKey(args),
        } => submit::rotate(args).await,
        Command::Classification { command } => classification::run(command).await,
    }
}
