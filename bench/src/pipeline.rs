//! The pipeline as separate processes (intake, classification, case-coordination), driven by
//! `redress load` as an operator would drive a deployment: realistic complaints submitted as
//! requests, from the publish to the receipt and to the `case.assigned` event.

use redress_e2e::{SERVICES, Suite, binary_path};

use crate::report::{Row, write};

pub async fn run() -> anyhow::Result<()> {
    let mut rows = Vec::new();
    let mut memory = Vec::new();
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
        let (figures, rss) = one(label, &args).await?;
        rows.extend(figures);
        memory.extend(rss.into_iter().map(|m| (label, m)));
    }
    write(
        "pipeline",
        "Pipeline (3 processes, `redress load`): channel request → receipt / case.assigned",
        &rows,
    )?;
    println!("\nMemory per process (MiB): idle after start-up, after the load, peak\n");
    println!("| scenario | service | idle | after | peak |");
    println!("|---|---|---:|---:|---:|");
    for (label, m) in &memory {
        println!(
            "| {label} | {} | {:.1} | {:.1} | {:.1} |",
            m.service, m.idle, m.after, m.peak
        );
    }
    std::fs::write(
        "target/bench/memory.json",
        serde_json::to_string_pretty(&serde_json::json!(
            memory
                .iter()
                .map(|(label, m)| serde_json::json!({
                    "scenario": label, "service": m.service,
                    "idle_mib": m.idle, "after_mib": m.after, "peak_mib": m.peak,
                }))
                .collect::<Vec<_>>()
        ))?,
    )?;
    Ok(())
}

/// Resident memory of one service process, in MiB.
struct Memory {
    service: &'static str,
    idle: f64,
    after: f64,
    peak: f64,
}

/// `VmRSS` and `VmHWM` (the peak) of a process, in MiB, from `/proc` (Linux only; NaN
/// elsewhere).
fn rss(pid: Option<u32>) -> (f64, f64) {
    let status = pid
        .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn pids(suite: &Suite) -> Vec<(&'static str, Option<u32>)> {
    SERVICES
        .iter()
        .flat_map(|(binary, _)| {
            suite
                .replicas(binary)
                .into_iter()
                .map(|i| (*binary, suite.pid(i)))
        })
        .collect()
}

async fn one(label: &str, args: &[&str]) -> anyhow::Result<(Vec<Row>, Vec<Memory>)> {
    // Every classification skips review, so every case is routed: the figure is the whole
    // path to a department, not the triage desk's.
    let suite = Suite::start(&[
        ("REDRESS_CLASSIFICATION_TARGET_PRECISION", "0"),
        ("REDRESS_LOG_FORMAT", "json"),
        ("RUST_LOG", "warn,redress_runtime::service=info"),
    ])
    .await;
    let idle: Vec<f64> = pids(&suite)
        .into_iter()
        .map(|(_, pid)| rss(pid).0)
        .collect();
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
    let memory = pids(&suite)
        .into_iter()
        .zip(idle)
        .map(|((service, pid), idle)| {
            let (after, peak) = rss(pid);
            Memory {
                service,
                idle,
                after,
                peak,
            }
        })
        .collect();
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
    let rows = vec![
        row("receipt", "submit_to_receipt", "seconds"),
        row(
            "case.assigned",
            "submit_to_case_assigned",
            "seconds_to_last_assigned",
        ),
    ];
    Ok((rows, memory))
}
