//! Builds the service crates/runtime/README.md shows and uses it over the real bus and gRPC.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use redress_example_tally::{Config, run};
use redress_proto::{
    common::v1::Channel,
    events::v1::{ComplaintReceived, ComplaintSummary},
    example::v1::{CountReceivedRequest, tally_service_client::TallyServiceClient},
};
use redress_runtime::{
    event::{new_event, service_actor},
    testing::{TestEnv, authed, eventually, grpc_channel},
};
use tokio_util::sync::CancellationToken;

fn received(channel: Channel, n: usize) -> redress_runtime::NewEvent {
    let complaint_id = format!("00000000-0000-7000-8000-{n:012}");
    new_event(
        "intake",
        complaint_id.clone(),
        1,
        service_actor("intake"),
        ComplaintReceived {
            complaint: Some(ComplaintSummary {
                complaint_id,
                channel: channel.into(),
                ..Default::default()
            }),
        },
    )
}

#[tokio::test]
async fn counts_each_event_once_and_answers_over_grpc() {
    let env = TestEnv::new().await;
    let shutdown = CancellationToken::new();
    let config = Config {
        runtime: env.runtime_config(),
    };
    let running = run(config, shutdown.clone()).await.expect("tally starts");
    let mut client =
        TallyServiceClient::new(grpc_channel(&format!("http://{}", running.endpoints.grpc)).await);

    let bus = env.bus().await;
    let first = received(Channel::App, 1);
    // The second copy of `first` is a redelivery: JetStream drops it by message id, and the
    // inbox would if it did not. The hotline event after it is the marker that it was seen.
    let events = [
        &first,
        &received(Channel::App, 2),
        &received(Channel::Web, 3),
        &first,
    ];
    for event in events.into_iter().chain([&received(Channel::Hotline, 4)]) {
        bus.publish_event(event).await.expect("published");
    }
    let count = |channel: Channel| {
        let mut client = client.clone();
        async move {
            let request = CountReceivedRequest {
                channel: channel.into(),
            };
            let reply = client.count_received(authed(request, &["analyst"])).await;
            reply.map(|r| r.into_inner().received).ok()
        }
    };
    eventually("the marker counted", Duration::from_secs(30), || async {
        (count(Channel::Hotline).await == Some(1)).then_some(())
    })
    .await;
    assert_eq!(count(Channel::App).await, Some(2));
    assert_eq!(count(Channel::Web).await, Some(1));

    let denied = client
        .count_received(authed(
            CountReceivedRequest {
                channel: Channel::App.into(),
            },
            &["handler"],
        ))
        .await;
    assert_eq!(
        denied.map(|_| ()).unwrap_err().code(),
        tonic::Code::PermissionDenied
    );
    let unnamed = client
        .count_received(authed(CountReceivedRequest::default(), &["analyst"]))
        .await;
    let status = unnamed.map(|_| ()).unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("channel"), "{}", status.message());

    shutdown.cancel();
    let _ = running.stopped().await;
    env.cleanup().await;
}

#[test]
fn the_runtime_readme_shows_this_very_service() {
    let readme = include_str!("../../README.md");
    for (file, code) in [
        ("src/lib.rs", include_str!("../src/lib.rs")),
        ("src/main.rs", include_str!("../src/main.rs")),
    ] {
        let block = format!("```rust\n{code}```");
        assert!(
            readme.contains(&block),
            "crates/runtime/README.md must show {file} verbatim"
        );
    }
    let lines = include_str!("../src/lib.rs").lines().count();
    assert!(
        readme.contains(&format!("## A service in {lines} lines")),
        "the heading says how long src/lib.rs is ({lines} lines)"
    );
}
