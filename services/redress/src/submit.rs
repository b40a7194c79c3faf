//! `redress submit` (as a channel would) and `redress intake rotate-key`.

use std::time::Duration;

use anyhow::Context;
use async_nats::HeaderMap;
use redress_proto::intake::v1::{SubmissionReply, submission_reply::Outcome};
use redress_runtime::{Bus, bus::headers};

#[derive(clap::Args)]
pub struct Args {
    /// The channel's subject token: app, web, hotline, email, wechat, letter, walk_in,
    /// regulator_referral, other.
    #[arg(long)]
    channel: String,
    /// A ComplaintSubmission in proto3 JSON (see services/intake/examples/).
    #[arg(long)]
    file: std::path::PathBuf,
    /// Publish without waiting for the receipt.
    #[arg(long)]
    no_wait: bool,
    #[arg(
        long,
        env = "REDRESS_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats_url: String,
    #[arg(long, env = "REDRESS_BUS_NAMESPACE", default_value = "")]
    namespace: String,
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
    let client = async_nats::connect(args.nats_url.as_str()).await?;
    let bus = Bus::from_client(client, &args.namespace, 1);
    let subject = bus.subject(&format!("redress.intake.v1.submit.{}", args.channel));
    let mut message_headers = HeaderMap::new();
    message_headers.insert(headers::CONTENT_TYPE, headers::JSON);
    message_headers.insert(
        headers::MSG_ID,
        format!("{}:{channel_ref}", args.channel).as_str(),
    );
    if args.no_wait {
        bus.client()
            .publish_with_headers(subject, message_headers, body.into())
            .await?;
        bus.client().flush().await?;
        println!("published");
        return Ok(());
    }
    let request = bus
        .client()
        .request_with_headers(subject, message_headers, body.into());
    let reply = match tokio::time::timeout(Duration::from_secs(15), request).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(error)) => anyhow::bail!("{error}: is intake running (redress dev)?"),
        Err(_) => anyhow::bail!("no receipt within 15 s: is intake running (redress dev)?"),
    };
    let reply: SubmissionReply = serde_json::from_slice(&reply.payload)
        .context("intake's reply is not a SubmissionReply")?;
    println!("{}", serde_json::to_string_pretty(&reply)?);
    match reply.outcome {
        Some(Outcome::Receipt(_)) => Ok(()),
        _ => std::process::exit(2),
    }
}

#[derive(clap::Args)]
pub struct RotateArgs {
    #[command(flatten)]
    config: redress_intake::config::IntakeConfig,
    #[arg(
        long,
        env = "REDRESS_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/redress"
    )]
    database_url: String,
}

pub async fn rotate(args: RotateArgs) -> anyhow::Result<()> {
    let vault = redress_intake::vault::Vault::new(
        &args.config.keys,
        &args.config.active_key,
        &args.config.pseudonym_key,
    )?;
    let db = redress_runtime::Database::connect(
        &args.database_url,
        "intake",
        2,
        &redress_intake::MIGRATIONS,
    )
    .await?;
    let count = redress_intake::store::rotate_keys(db.pool(), &vault).await?;
    println!(
        "re-sealed {count} record(s) under key `{}`",
        vault.active_key()
    );
    Ok(())
}
