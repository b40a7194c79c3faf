//! `redress load` against the suite as processes: every submission is accounted for — new ones
//! registered with a case, resends answered as duplicates, invalid ones refused — and the
//! report says so in JSON.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use redress_e2e::{Suite, binary_path};

#[tokio::test]
async fn load_accounts_for_every_submission() {
    // Every classification skips review, so every case is routed and gets `assigned`.
    let suite = Suite::start(&[("REDRESS_CLASSIFICATION_TARGET_PRECISION", "0")]).await;
    let output = suite
        .env
        .command(binary_path("redress", "redress"))
        .args([
            "load",
            "--count",
            "300",
            "--in-flight",
            "16",
            "--invalid",
            "0.05",
        ])
        .args(["--resend", "0.1", "--json", "--settle", "120s"])
        .output()
        .await
        .expect("redress load runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "redress load failed: {stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the report is JSON");
    let count = |name: &str| report["counts"][name].as_u64().unwrap_or(u64::MAX);
    assert_eq!(count("sent"), 300);
    assert_eq!(count("failed"), 0, "{report}");
    assert_eq!(count("unexpected"), 0, "{report}");
    assert_eq!(
        count("registered") + count("duplicates") + count("rejected"),
        300,
        "{report}"
    );
    assert!(count("duplicates") > 0 && count("rejected") > 0, "{report}");
    assert_eq!(count("cases"), count("registered"), "{report}");
    assert_eq!(count("assigned"), count("registered"), "{report}");
    let receipts = &report["latency"]["submit_to_receipt"];
    assert_eq!(receipts["count"].as_u64(), Some(300));
    assert!(receipts["p50_ms"].as_f64().unwrap_or(0.0) > 0.0, "{report}");
    suite.stop().await;
}
