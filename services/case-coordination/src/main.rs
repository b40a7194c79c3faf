//! `redress-case-coordination`: the case-coordination service on its own.

use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: redress_case_coordination::Config = redress_runtime::config::parse();
    let _telemetry =
        redress_runtime::telemetry::init("case-coordination", config.runtime.log_format);
    let shutdown = CancellationToken::new();
    redress_runtime::shutdown::cancel_on_signal(shutdown.clone());
    let running = redress_case_coordination::run(config, shutdown).await?;
    running.stopped().await?;
    Ok(())
}
