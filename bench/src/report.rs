//! Latency summaries, tables and JSON files.

use std::path::PathBuf;

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub case: String,
    pub count: usize,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// p50 and p99 of latencies in milliseconds.
pub fn percentiles(mut latencies: Vec<f64>) -> (f64, f64) {
    if latencies.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    (at(0.50), at(0.99))
}

pub fn write(name: &str, title: &str, rows: &[Row]) -> anyhow::Result<()> {
    println!("\n{title}\n");
    println!("| case | count | per second | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|");
    let ms = |v: f64| {
        if v.is_nan() {
            "—".to_owned()
        } else {
            format!("{v:.3}")
        }
    };
    for r in rows {
        println!(
            "| {} | {} | {:.0} | {} | {} |",
            r.case,
            r.count,
            r.per_second,
            ms(r.p50_ms),
            ms(r.p99_ms)
        );
    }
    let dir = PathBuf::from("target/bench");
    std::fs::create_dir_all(&dir)?;
    let json = serde_json::json!({ "benchmark": name, "title": title, "machine_cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), "rows": rows });
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_string_pretty(&json)?,
    )?;
    Ok(())
}
