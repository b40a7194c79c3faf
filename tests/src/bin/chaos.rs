//! `redress-chaos` (`make chaos`): the long chaos run. Under a steady load, each service is
//! killed in turn (and both case-coordination replicas at once), NATS restarts, Postgres drops
//! every connection, each service is paused past its ack wait, a table is locked, and hostile
//! load runs beside the steady one; then every accepted submission is checked from the
//! outside. Prints the table and writes it to target/chaos/report.md; exits non-zero if
//! anything was lost or duplicated.

use std::{process::ExitCode, time::Duration};

use redress_e2e::chaos::{self, Fault, Plan};

#[tokio::main]
async fn main() -> ExitCode {
    let rate = std::env::args()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(300);
    let plan = Plan {
        rate,
        faults: vec![
            Fault::Kill("redress-intake"),
            Fault::Kill("redress-classification"),
            Fault::Kill("redress-case-coordination"),
            Fault::KillAll("redress-case-coordination"),
            Fault::RestartNats,
            Fault::TerminatePostgres,
            Fault::Pause("redress-intake"),
            Fault::Pause("redress-classification"),
            Fault::Pause("redress-case-coordination"),
            Fault::Stall("cases.cases"),
            Fault::Stall("intake.complaints"),
            Fault::Garbage,
            Fault::ResendBurst(10_000),
            Fault::SlowDepartment,
        ],
        outage: Duration::from_secs(5),
        between: Duration::from_secs(5),
        replicas: vec![("redress-case-coordination", 2)],
    };
    println!(
        "chaos at {rate} submissions/s, {} faults",
        plan.faults.len()
    );
    let report = chaos::run(&plan).await;
    let table = report.table();
    println!("{table}");
    let _ = std::fs::create_dir_all("target/chaos");
    let _ = std::fs::write("target/chaos/report.md", &table);
    if report.lost.is_empty() && report.duplicated.is_empty() && report.dead_letters == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "lost: {:?}\nduplicated: {:?}",
            report.lost, report.duplicated
        );
        ExitCode::FAILURE
    }
}
