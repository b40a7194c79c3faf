//! The binary as a process: SIGKILLed in the middle of its batches and started again, it
//! counts every event exactly once; then `redress-analytics rebuild --from` recomputes the
//! figures from the streams, while the service runs, and they are the same.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use redress_runtime::testing::{TestEnv, eventually};
use support::{cells, envelope, generate, outgoing, reference, start_2026};

const BIN: &str = env!("CARGO_BIN_EXE_redress-analytics");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_across_a_sigkill_and_rebuild_equals_incremental() {
    let env = TestEnv::new().await;
    let raw = generate(23, 300, start_2026(), 90);
    let events: Vec<_> = raw.iter().map(envelope).collect();
    let bus = env.bus().await;
    bus.ensure_streams(redress_proto::bus::ALL_STREAMS)
        .await
        .unwrap();
    let messages = events.iter().map(|e| outgoing(e, &e.id)).collect();
    let (_, error) = bus.publish_all(messages).await;
    assert!(error.is_none(), "{error:?}");
    let expected = reference(&env, "reference", &events).await;
    let want = cells(&expected, "agg_day").await;

    let spawn = || {
        env.command(BIN)
            .env("REDRESS_CONSUMER_BATCH", "20")
            .env("REDRESS_CONSUMER_ACK_WAIT", "2s")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut first = spawn();
    let live = env.pool("analytics").await;
    let counted = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM inbox")
            .fetch_one(&live)
            .await
            .unwrap_or(0)
    };
    // Killed once it has applied some batches and not all.
    eventually("some batches applied", Duration::from_secs(30), || async {
        (counted().await > 200).then_some(())
    })
    .await;
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let at_kill = counted().await;
    assert!(
        at_kill < events.len() as i64,
        "killed before the end ({at_kill})"
    );

    let mut second = spawn();
    let total = events.len() as i64;
    eventually("every event applied", Duration::from_secs(150), || async {
        (counted().await == total).then_some(())
    })
    .await;
    assert_eq!(
        cells(&live, "agg_day").await,
        want,
        "each event counted once"
    );

    // Rebuild from the streams while the service runs: the same figures.
    sqlx::query("UPDATE cube_day SET received = received + 1000 WHERE received <> 0")
        .execute(&live)
        .await
        .unwrap();
    let status = env
        .command(BIN)
        .args(["rebuild", "--from", "2025-12-01"])
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(status.success());
    assert_eq!(cells(&live, "agg_day").await, want);
    assert_eq!(
        cells(&live, "agg_month").await,
        cells(&expected, "agg_month").await
    );

    second.start_kill().unwrap();
    let _ = second.wait().await;
    live.close().await;
    expected.close().await;
    env.cleanup().await;
}
