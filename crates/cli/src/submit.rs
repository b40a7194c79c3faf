//! `redress submit`: a complaint submitted as a channel would, on the bus.
//!
//! By default as a core NATS request, answered with intake's receipt (or the violations) once
//! the complaint is registered; `--no-wait` publishes fire-and-forget; `--durable` publishes
//! with JetStream on `redress.intake.v1.durable.<channel>`, whose acknowledgement means stored.

use std::time::Duration;

use anyhow::{Context, bail};
use async_nats::HeaderMap;
use redress_proto::{
    bus,
    common::v1::Channel,
    intake::v1::{SubmissionReply, submission_reply::Outcome},
};
use redress_runtime::{Bus, RuntimeConfig, bus::headers};

#[derive(clap::Args)]
pub struct Args {
    /// The channel: app, web, hotline, email, wechat, letter, walk_in, regulator_referral, other.
    #[arg(long, value_parser = channel)]
    channel: Channel,
    /// A ComplaintSubmission in proto3 JSON (see services/intake/examples/).
    #[arg(long)]
    file: std::path::PathBuf,
    /// Publish without waiting for the receipt (core NATS: no acknowledgement at all).
    #[arg(long, conflicts_with = "durable")]
    no_wait: bool,
    /// Publish with JetStream and wait only for the stream's acknowledgement (stored).
    #[arg(long)]
    durable: bool,
    /// Print only the reference number of the receipt.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    bus: BusArgs,
}

/// Where the bus is: the services' own variables.
#[derive(clap::Args, Debug, Clone)]
pub struct BusArgs {
    #[arg(long, env = "REDRESS_NATS_URL", default_value = redress_runtime::config::defaults::NATS_URL)]
    pub nats_url: String,
    #[arg(long, env = "REDRESS_BUS_NAMESPACE", default_value = "")]
    pub namespace: String,
    #[arg(long, env = "REDRESS_NATS_CREDS")]
    pub nats_creds: Option<std::path::PathBuf>,
    #[arg(long, env = "REDRESS_NATS_TLS_CA")]
    pub nats_tls_ca: Option<std::path::PathBuf>,
    /// A user of the secured bus (deploy/nats/bus.toml), e.g. a channel's.
    #[arg(long, env = "REDRESS_NATS_USER", requires = "nats_password")]
    pub nats_user: Option<String>,
    #[arg(
        long,
        env = "REDRESS_NATS_PASSWORD",
        requires = "nats_user",
        hide_env_values = true
    )]
    pub nats_password: Option<String>,
}

impl BusArgs {
    pub async fn connect(&self) -> anyhow::Result<Bus> {
        let mut config = RuntimeConfig::local(&self.nats_url, "", &self.namespace);
        config.nats_creds = self.nats_creds.clone();
        config.tls.nats_tls_ca = self.nats_tls_ca.clone();
        config.nats_user = self.nats_user.clone();
        config.nats_password = self.nats_password.clone().map(secrecy::SecretString::from);
        Ok(Bus::connect(&config, "cli").await?)
    }
}

pub fn channel(token: &str) -> Result<Channel, String> {
    Channel::from_token(token).ok_or_else(|| {
        format!(
            "`{token}` is not a channel; the channels are {}",
            Channel::tokens()
        )
    })
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let body =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let json: serde_json::Value = serde_json::from_slice(&body)
        .with_context(|| format!("{} is not JSON", args.file.display()))?;
    let channel_ref = json
        .get("channelRef")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let bus = args.bus.connect().await?;
    let mut message_headers = HeaderMap::new();
    message_headers.insert(headers::CONTENT_TYPE, headers::JSON);
    message_headers.insert(
        headers::MSG_ID,
        format!("{}:{channel_ref}", args.channel.token()).as_str(),
    );
    if args.durable {
        let subject = bus.subject(&bus::durable_subject(args.channel));
        let ack = bus
            .jetstream()
            .publish_with_headers(subject, message_headers, body.into())
            .await
            .context("publishing")?
            .await
            .context("no acknowledgement from the INTAKE_DURABLE stream")?;
        println!(
            "stored in {} as #{}{}; intake registers it (the receipt is the `received` event)",
            ack.stream,
            ack.sequence,
            if ack.duplicate {
                " (a resend: stored before)"
            } else {
                ""
            }
        );
        return Ok(());
    }
    let subject = bus.subject(&bus::submit_subject(args.channel));
    if args.no_wait {
        bus.client()
            .publish_with_headers(subject, message_headers, body.into())
            .await?;
        bus.client().flush().await?;
        println!("published (fire-and-forget: no acknowledgement; use --durable for one)");
        return Ok(());
    }
    let request = bus
        .client()
        .request_with_headers(subject, message_headers, body.into());
    let reply = match tokio::time::timeout(Duration::from_secs(15), request).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(error)) => bail!("{error}: is intake running (`make run`)?"),
        Err(_) => bail!("no receipt within 15 s: is intake running (`make run`)?"),
    };
    let reply: SubmissionReply = serde_json::from_slice(&reply.payload)
        .context("intake's reply is not a SubmissionReply")?;
    match (&reply.outcome, args.quiet) {
        (Some(Outcome::Receipt(receipt)), true) => println!("{}", receipt.reference),
        _ => println!("{}", serde_json::to_string_pretty(&reply)?),
    }
    match reply.outcome {
        Some(Outcome::Receipt(_)) => Ok(()),
        _ => bail!("intake refused the submission (the violations are above)"),
    }
}
