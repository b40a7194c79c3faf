//! The pipeline as separate processes (intake, classification, case-coordination), driven by
//! `redress load` as an operator would drive a deployment: realistic complaints submitted as
//! requests, from the publish to the receipt and to the `case.assigned` event.

use redress_e2e::{Suite, binary_path};

use crate::report::{Row, write};

pub async fn run() -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for (label, args) in [
        (
            "closed loop, 64 in flight",
            vec!["--count", "6000", "--in-flight", "64"],
        ),
        (
            "closed loop, 256 in flight",
            vec!["--count", "6000", "--in-flight", "256"],
        ),
        (
            "open loop, 500/s for 10 s",
            vec!["--rate", "500", "--duration", "10s", "--in-flight", "4096"],
        ),
    ] {
        rows.extend(one(label, &args).await?);
    }
    write(
        "pipeline",
        "Pipeline (3 processes, `redress load`): channel request → receipt / case.assigned",
        &rows,
    )
}

async fn one(label: &str, args: &[&str]) -> anyhow::Result<Vec<Row>> {
    // Every classification skips review, so every case is routed: the figure is the whole
    // path to a department, not the triage desk's.
    let suite = Suite::start(&[
        ("REDRESS_CLASSIFICATION_TARGET_PRECISION", "0"),
        ("REDRESS_LOG_FORMAT", "json"),
        ("RUST_LOG", "warn,redress_runtime::service=info"),
    ])
    .await;
    let output = suite
        .env
        .command(binary_path("redress", "redress"))
        .arg("load")
        .args(args)
        .args([
            "--invalid",
            "0",
            "--resend",
            "0",
            "--json",
            "--settle",
            "300s",
        ])
        .output()
        .await?;
    suite.stop().await;
    if !output.status.success() {
        anyhow::bail!(
            "redress load failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let row = |what: &str, key: &str, seconds: &str| {
        let l = &report["latency"][key];
        let count = l["count"].as_u64().unwrap_or(0) as usize;
        Row {
            case: format!("{label}: {what}"),
            count,
            per_second: count as f64 / report[seconds].as_f64().unwrap_or(f64::NAN),
            p50_ms: l["p50_ms"].as_f64().unwrap_or(f64::NAN),
            p99_ms: l["p99_ms"].as_f64().unwrap_or(f64::NAN),
        }
    };
    Ok(vec![
        row("receipt", "submit_to_receipt", "seconds"),
        row(
            "case.assigned",
            "submit_to_case_assigned",
            "seconds_to_last_assigned",
        ),
    ])
}
