//! Case-coordination probed with bad input and borrowed identities: every bad request field is
//! INVALID_ARGUMENT naming the field — never INTERNAL or UNAVAILABLE ("retry") for a request
//! that can never succeed — forged page tokens are refused, and a handler's token cannot
//! escape its department by carrying a service identity.

mod support;

use redress_proto::{
    cases::v1::{AssignRequest, ListCasesRequest, RecordDecisionRequest},
    common::v1::PageRequest,
    types::Timestamp,
};
use redress_runtime::testing::TestEnv;
use support::*;

fn status_of<T>(result: Result<T, tonic::Status>) -> tonic::Code {
    match result {
        Ok(_) => tonic::Code::Ok,
        Err(s) => s.code(),
    }
}

#[tokio::test]
async fn bad_fields_are_invalid_arguments_and_identities_do_not_widen_a_handler() {
    let env = TestEnv::new().await;
    let cases = Cases::start(&env).await;
    let client = cases.client().await;
    let classifier = Classifier::new(&env).await;
    let complaint = Complaint::lending();
    classifier.classified(&complaint).await;
    let case = client.case_of(&complaint.id).await;

    let list = |r: ListCasesRequest| client.list(SPECIALIST, r);
    let invalid = [
        ListCasesRequest {
            department: "a\u{0}b".into(),
            ..Default::default()
        },
        ListCasesRequest {
            due_before: Some(Timestamp {
                seconds: -(7000 * 31_556_952),
                nanos: 0,
            }),
            ..Default::default()
        },
        ListCasesRequest {
            state: 99,
            ..Default::default()
        },
        ListCasesRequest {
            page: Some(PageRequest {
                page_size: 10,
                page_token: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
            }),
            ..Default::default()
        },
    ];
    for request in invalid {
        assert_eq!(
            status_of(list(request.clone()).await),
            tonic::Code::InvalidArgument,
            "{request:?}"
        );
    }
    assert_eq!(
        status_of(client.get(SPECIALIST, "a\u{0}b").await),
        tonic::Code::InvalidArgument
    );
    let decision = RecordDecisionRequest {
        case_id: case.id.clone(),
        expected_version: case.version,
        outcome: 1,
        explanation: "x\u{0}".into(),
        root_cause_tags: vec!["fees".into()],
        ..Default::default()
    };
    let refused = client
        .inner
        .clone()
        .record_decision(req(SPECIALIST, decision))
        .await;
    assert_eq!(status_of(refused), tonic::Code::InvalidArgument);
    let assign = AssignRequest {
        case_id: case.id.clone(),
        expected_version: case.version,
        department: "Risk Control!".into(),
        ..Default::default()
    };
    let refused = client.inner.clone().assign(req(SPECIALIST, assign)).await;
    assert_eq!(status_of(refused), tonic::Code::InvalidArgument);

    // A handler of another department whose token also names a service identity stays a
    // handler of that department: the case looks absent, and listing lending is refused.
    let borrowed = As(
        "h-cards-1",
        &["handler", "service:notification", "service:anything"],
        Some("cards"),
    );
    assert_eq!(
        status_of(client.get(borrowed, &case.id).await),
        tonic::Code::NotFound
    );
    let lending = ListCasesRequest {
        department: "lending".into(),
        ..Default::default()
    };
    assert_eq!(
        status_of(client.list(borrowed, lending).await),
        tonic::Code::PermissionDenied
    );
    let unknown = As("svc", &["service:anything"], None);
    assert_eq!(
        status_of(client.list(unknown, ListCasesRequest::default()).await),
        tonic::Code::PermissionDenied
    );
    cases.stop().await;
    env.cleanup().await;
}

/// Arbitrary values in the read RPCs' fields: never a server fault.
#[tokio::test]
async fn generated_fields_are_never_a_server_fault() {
    use proptest::{prelude::*, strategy::ValueTree, test_runner::TestRunner};
    let env = TestEnv::new().await;
    let cases = Cases::start(&env).await;
    let client = cases.client().await;
    let mut runner = TestRunner::deterministic();
    let faults = [
        tonic::Code::Internal,
        tonic::Code::Unavailable,
        tonic::Code::Unknown,
    ];
    for _ in 0..200 {
        let text = any::<String>()
            .new_tree(&mut runner)
            .map(|t| t.current())
            .unwrap_or_default();
        let seconds = any::<i64>()
            .new_tree(&mut runner)
            .map(|t| t.current())
            .unwrap_or_default();
        let small = any::<i32>()
            .new_tree(&mut runner)
            .map(|t| t.current())
            .unwrap_or_default();
        let request = ListCasesRequest {
            department: text.clone(),
            state: small,
            severity: small.wrapping_mul(3),
            due_before: Some(Timestamp {
                seconds,
                nanos: small,
            }),
            breached: small % 2 == 0,
            page: Some(PageRequest {
                page_size: small.unsigned_abs(),
                page_token: text.clone(),
            }),
            complaint: text.clone(),
        };
        for code in [
            status_of(client.list(SPECIALIST, request).await),
            status_of(client.get(SPECIALIST, &text).await),
        ] {
            assert!(
                !faults.contains(&code),
                "{text:?} {seconds} {small}: {code:?}"
            );
        }
    }
    cases.stop().await;
    env.cleanup().await;
}
