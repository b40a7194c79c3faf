//! The columnar path works here: `redress-analytics export --out DIR` (the binary, against
//! figures made through the write path) writes facts and cubes as CSV; DuckDB in Python reads
//! them, writes Parquet and reads that back, and its received-per-category-and-month equals
//! the `Breakdown` answer, as does its count of received complaints in the facts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use chrono::NaiveDate;
use redress_analytics::{MIGRATIONS, SCHEMA, context, events::from_event, query, rebuild};
use redress_proto::analytics::v1::Grain;
use redress_runtime::{db::Database, testing::TestEnv};
use support::{envelope, generate, start_2026};

const BIN: &str = env!("CARGO_BIN_EXE_redress-analytics");

fn python() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/duckdb/venv.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .arg(env!("CARGO_TARGET_TMPDIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "DuckDB for Python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_reads_the_export_as_csv_and_parquet_and_agrees_with_breakdown() {
    let env = TestEnv::new().await;
    let db = Database::connect(
        &env.database_url,
        SCHEMA,
        &env.schema(SCHEMA),
        2,
        &MIGRATIONS,
    )
    .await
    .unwrap();
    let pool = db.pool();
    let ctx = context("cn-nfra").unwrap();
    let events: Vec<_> = generate(31, 1_500, start_2026(), 90)
        .iter()
        .map(|r| from_event(&envelope(r)).unwrap())
        .collect();
    for chunk in events.chunks(1000) {
        let mut tx = pool.begin().await.unwrap();
        rebuild::apply_new(&mut tx, &ctx, "test", chunk)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("export-{}", uuid::Uuid::now_v7()));
    let status = env
        .command(BIN)
        .args(["export", "--out", dir.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(status.success(), "export exits 0");

    let out = std::process::Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/duckdb/read_export.py"
        ))
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let answer = query::Breakdown {
        dimensions: vec!["category".into()],
        measures: vec!["received".into()],
        grain: Grain::Month,
        from: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
        to: NaiveDate::from_ymd_opt(2026, 5, 1).unwrap(),
        filters: vec![],
    }
    .run(pool)
    .await
    .unwrap();
    let mut want: Vec<serde_json::Value> = answer
        .iter()
        .map(|r| serde_json::json!([r.dimensions[0], &r.period[..7], r.values[0] as i64]))
        .collect();
    want.sort_by_key(|v| v.to_string());
    assert!(want.len() > 20, "a breakdown worth comparing: {want:?}");
    for source in ["csv", "parquet"] {
        let mut got = read[source].as_array().unwrap().clone();
        got.sort_by_key(|v| v.to_string());
        assert_eq!(got, want, "DuckDB over the {source} = Breakdown");
    }
    assert_eq!(read["facts_received"], 1_500);
    std::fs::remove_dir_all(&dir).unwrap();
    pool.close().await;
    env.cleanup().await;
}
