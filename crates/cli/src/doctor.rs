//! `redress doctor`: is the ground under the suite there?

use std::time::Duration;

use sqlx::{ConnectOptions, postgres::PgConnectOptions};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, env = "REDRESS_NATS_URL", default_value = redress_runtime::config::defaults::NATS_URL)]
    nats_url: String,
    #[arg(long, env = "REDRESS_DATABASE_URL", default_value = redress_runtime::config::defaults::DATABASE_URL,
          hide_env_values = true)]
    database_url: String,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut healthy = true;
    match check_nats(&args.nats_url).await {
        Ok(info) => println!("ok    NATS at {} ({info})", args.nats_url),
        Err(problem) => {
            healthy = false;
            println!("FAIL  NATS at {}: {problem}", args.nats_url);
        }
    }
    match check_postgres(&args.database_url).await {
        Ok(info) => println!("ok    Postgres ({info})"),
        Err(problem) => {
            healthy = false;
            println!(
                "FAIL  Postgres at {}: {problem}",
                redress_runtime::config::mask_url(&args.database_url)
            );
        }
    }
    if !healthy {
        println!("\n`make deps` starts a local nats-server -js and Postgres when nothing answers.");
        std::process::exit(1);
    }
    Ok(())
}

async fn check_nats(url: &str) -> Result<String, String> {
    let connect = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(3))
        .connect(url);
    let client = tokio::time::timeout(Duration::from_secs(5), connect)
        .await
        .map_err(|_| "no answer within 5 s; is nats-server running?".to_owned())?
        .map_err(|e| format!("{e}; is nats-server running and the URL right?"))?;
    let version = client.server_info().version;
    // The raw API call: its answer is stable across server versions.
    let reply = client
        .request("$JS.API.INFO", bytes::Bytes::new())
        .await
        .map_err(|e| format!("JetStream does not answer ({e}); start nats-server with -js"))?;
    let info: serde_json::Value = serde_json::from_slice(&reply.payload)
        .map_err(|_| "the JetStream API answered something that is not JSON".to_owned())?;
    if let Some(error) = info.get("error") {
        return Err(format!(
            "JetStream refused: {error}; start nats-server with -js"
        ));
    }
    let streams = info.get("streams").and_then(|s| s.as_u64()).unwrap_or(0);
    Ok(format!(
        "server {version}, JetStream enabled, {streams} streams"
    ))
}

async fn check_postgres(url: &str) -> Result<String, String> {
    let options: PgConnectOptions = url
        .parse()
        .map_err(|e| format!("REDRESS_DATABASE_URL is not a Postgres URL: {e}"))?;
    let mut conn = tokio::time::timeout(Duration::from_secs(5), options.connect())
        .await
        .map_err(|_| "no answer within 5 s".to_owned())?
        .map_err(
            |e| match e.as_database_error().and_then(|d| d.code()).as_deref() {
                Some("3D000") => format!("{}; create the database (make deps does)", sentence(&e)),
                _ => format!(
                    "{}; is Postgres running there, and do user, password and TLS settings match?",
                    sentence(&e)
                ),
            },
        )?;
    let (version, may_create_roles): (String, bool) = sqlx::query_as(
        "SELECT current_setting('server_version'), rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(|e| e.to_string())?;
    let roles = if may_create_roles {
        "creates each service's role and schema itself"
    } else {
        "cannot create roles: each service's role and schema must be provisioned"
    };
    Ok(format!("server {version}; {roles}"))
}

/// An error and its causes on one line.
fn sentence(error: &dyn std::error::Error) -> String {
    redress_runtime::app::sentence(error)
}
