//! The short chaos run of `make test` (`make chaos` runs the long one): under a steady load,
//! intake is killed, both case-coordination replicas are killed at once, NATS restarts,
//! Postgres drops every connection, classification is paused past its ack wait and the cases
//! table is locked — and every accepted submission still has exactly one complaint, one
//! classification and one case, with each event once and no dead letter.

use std::time::Duration;

use redress_e2e::chaos::{self, Fault, Plan};

#[tokio::test]
async fn nothing_accepted_is_lost_or_duplicated_while_things_fail() {
    let plan = Plan {
        rate: 30,
        faults: vec![
            Fault::Kill("redress-intake"),
            Fault::KillAll("redress-case-coordination"),
            Fault::RestartNats,
            Fault::TerminatePostgres,
            Fault::Pause("redress-classification"),
            Fault::Stall("cases.cases"),
            Fault::ResendBurst(500),
        ],
        outage: Duration::from_secs(3),
        between: Duration::from_secs(2),
        replicas: vec![("redress-case-coordination", 2)],
    };
    let report = chaos::run(&plan).await;
    println!("{}", report.table());
    assert!(report.submissions > 200, "{}", report.table());
    assert!(report.lost.is_empty(), "lost: {:?}", report.lost);
    assert!(
        report.duplicated.is_empty(),
        "duplicated: {:?}",
        report.duplicated
    );
    assert_eq!(report.dead_letters, 0, "{}", report.table());
    for fault in &report.faults {
        assert!(
            fault.recovered_in.is_some(),
            "{} never recovered",
            fault.fault
        );
    }
}
