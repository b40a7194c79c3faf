//! The service over real NATS, Postgres and gRPC: every stream consumed, a redelivered event
//! counted once, figures equal to a direct computation; every RPC refuses the roles it must;
//! a department head sees only their department; page tokens; CSV export; reports.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use futures::StreamExt;
use redress_analytics::{Config, config::AnalyticsConfig, run};
use redress_proto::analytics::v1::{
    BreakdownRequest, ExportCsvRequest, GetReportRequest, Grain, ListAlertsRequest, Query,
    ReportFormat, ReportKind, TrendRequest, analytics_service_client::AnalyticsServiceClient,
};
use redress_runtime::{
    Exit,
    testing::{TestEnv, authed, eventually, grpc_channel, token},
};
use support::{cells, envelope, generate, outgoing, reference, start_2026};
use tokio_util::sync::CancellationToken;
use tonic::{Code, transport::Channel};

fn query(dims: &[&str], measures: &[&str]) -> Query {
    Query {
        dimensions: dims.iter().map(|d| (*d).to_owned()).collect(),
        measures: measures.iter().map(|m| (*m).to_owned()).collect(),
        grain: Grain::Month as i32,
        from: "2026-01-01".into(),
        to: "2026-03-01".into(),
        filters: vec![],
    }
}

fn as_head<T>(message: T, department: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = format!(
        "Bearer {}",
        token("head-1", &["department_head"], Some(department))
    );
    request
        .metadata_mut()
        .insert("authorization", value.parse().unwrap());
    request
}

async fn denied_and_allowed(client: &mut AnalyticsServiceClient<Channel>) {
    let b = || BreakdownRequest {
        query: Some(query(&[], &["received"])),
        page: None,
    };
    let t = || TrendRequest {
        measure: "received".into(),
        grain: Grain::Month as i32,
        from: "2026-01-01".into(),
        to: "2026-03-01".into(),
        ..Default::default()
    };
    let r = || GetReportRequest {
        kind: ReportKind::Management as i32,
        month: "2026-01".into(),
        format: ReportFormat::Csv as i32,
    };
    let e = || ExportCsvRequest {
        query: Some(query(&["channel"], &["received"])),
    };
    for role in ["handler", "educator", "senior_management"] {
        let code = |r: Result<(), tonic::Status>| r.unwrap_err().code();
        assert_eq!(
            code(client.breakdown(authed(b(), &[role])).await.map(|_| ())),
            Code::PermissionDenied,
            "{role}"
        );
        assert_eq!(
            code(client.trend(authed(t(), &[role])).await.map(|_| ())),
            Code::PermissionDenied,
            "{role}"
        );
        assert_eq!(
            code(
                client
                    .list_alerts(authed(ListAlertsRequest::default(), &[role]))
                    .await
                    .map(|_| ())
            ),
            Code::PermissionDenied,
            "{role}"
        );
        assert_eq!(
            code(client.get_report(authed(r(), &[role])).await.map(|_| ())),
            Code::PermissionDenied,
            "{role}"
        );
        assert_eq!(
            code(client.export_csv(authed(e(), &[role])).await.map(|_| ())),
            Code::PermissionDenied,
            "{role}"
        );
    }
    for role in ["analyst", "specialist", "compliance", "product", "admin"] {
        client.breakdown(authed(b(), &[role])).await.unwrap();
        client.trend(authed(t(), &[role])).await.unwrap();
        client
            .list_alerts(authed(ListAlertsRequest::default(), &[role]))
            .await
            .unwrap();
        client.get_report(authed(r(), &[role])).await.unwrap();
        client.export_csv(authed(e(), &[role])).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_over_the_bus_and_every_rpc_behind_its_roles() {
    let env = TestEnv::new().await;
    let shutdown = CancellationToken::new();
    let config = Config {
        runtime: env.runtime_config(),
        analytics: AnalyticsConfig {
            gauge_interval: Duration::from_millis(300),
            ..AnalyticsConfig::default()
        },
        command: None,
    };
    let Exit::Serving(running) = run(config, shutdown.clone()).await.unwrap() else {
        panic!("serves");
    };
    let mut client = AnalyticsServiceClient::new(
        grpc_channel(&format!("http://{}", running.endpoints.grpc)).await,
    );

    // 300 complaints over two months; every 10th event published twice under another
    // message id (a redelivery JetStream cannot recognise: the inbox must).
    let raw = generate(11, 300, start_2026(), 59);
    let events: Vec<_> = raw.iter().map(envelope).collect();
    let mut messages = Vec::new();
    for (i, e) in events.iter().enumerate() {
        messages.push(outgoing(e, &e.id));
        if i % 10 == 0 {
            messages.push(outgoing(e, &format!("again-{}", e.id)));
        }
    }
    let bus = env.bus().await;
    let (stored, error) = bus.publish_all(messages).await;
    assert!(error.is_none(), "{error:?}");
    assert!(stored > events.len());

    let expected = reference(&env, "reference", &events).await;
    let want = cells(&expected, "agg_day").await;
    let live = env.pool("analytics").await;
    eventually("every event counted", Duration::from_secs(45), || async {
        (cells(&live, "agg_day").await == want).then_some(())
    })
    .await;
    let received: i64 =
        sqlx::query_scalar("SELECT sum(value)::bigint FROM agg_day WHERE measure = 'received'")
            .fetch_one(&live)
            .await
            .unwrap();
    assert_eq!(received, 300);

    // Breakdown answers equal the aggregates; pages follow one another.
    let request = |page: Option<redress_proto::common::v1::PageRequest>| BreakdownRequest {
        query: Some(query(
            &["channel"],
            &["received", "on_time_rate", "p90_decide_hours"],
        )),
        page,
    };
    let all = client
        .breakdown(authed(request(None), &["analyst"]))
        .await
        .unwrap()
        .into_inner();
    let total: f64 = all.rows.iter().map(|r| r.values[0]).sum();
    assert_eq!(total, 300.0);
    let first = client
        .breakdown(authed(
            request(Some(redress_proto::common::v1::PageRequest {
                page_size: 3,
                page_token: String::new(),
            })),
            &["analyst"],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.rows.len(), 3);
    assert!(!first.next_page_token.is_empty());
    let second = client
        .breakdown(authed(
            request(Some(redress_proto::common::v1::PageRequest {
                page_size: 3,
                page_token: first.next_page_token.clone(),
            })),
            &["analyst"],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.rows[0], all.rows[3]);
    let mut other = request(Some(redress_proto::common::v1::PageRequest {
        page_size: 3,
        page_token: first.next_page_token,
    }));
    other.query.as_mut().unwrap().dimensions = vec!["category".into()];
    let refused = client
        .breakdown(authed(other, &["analyst"]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);

    // Bad input names the field.
    let mut bad = query(&["colour"], &["received"]);
    bad.from = "January".into();
    let status = client
        .breakdown(authed(
            BreakdownRequest {
                query: Some(bad),
                page: None,
            },
            &["analyst"],
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("query.dimensions[0]") && status.message().contains("query.from"),
        "{}",
        status.message()
    );

    // A department head sees their department only, whatever they filter.
    let mut q = query(&["department"], &["received"]);
    q.filters = vec![redress_proto::analytics::v1::Filter {
        dimension: "department".into(),
        values: vec!["cards".into(), "loans".into()],
    }];
    let head = client
        .breakdown(as_head(
            BreakdownRequest {
                query: Some(q),
                page: None,
            },
            "cards",
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!head.rows.is_empty());
    assert!(
        head.rows.iter().all(|r| r.dimensions == ["cards"]),
        "{:?}",
        head.rows
    );
    let csv = client
        .export_csv(as_head(
            ExportCsvRequest {
                query: Some(query(&["department"], &["received"])),
            },
            "cards",
        ))
        .await
        .unwrap();
    let text: String = csv
        .into_inner()
        .map(|c| String::from_utf8(c.unwrap().data).unwrap())
        .collect::<Vec<_>>()
        .await
        .concat();
    assert!(text.starts_with("period,department,received\r\n"), "{text}");
    assert!(
        text.lines().skip(1).all(|l| l.contains(",cards,")),
        "{text}"
    );

    // Every RPC behind its roles.
    denied_and_allowed(&mut client).await;

    // The report's headline equals Breakdown's answer.
    let report = client
        .get_report(authed(
            GetReportRequest {
                kind: ReportKind::Management as i32,
                month: "2026-01".into(),
                format: ReportFormat::Csv as i32,
            },
            &["analyst"],
        ))
        .await
        .unwrap()
        .into_inner();
    let text = String::from_utf8(report.content).unwrap();
    let mut jan = query(&[], &["received", "on_time_rate"]);
    jan.grain = Grain::All as i32;
    jan.to = "2026-02-01".into();
    let b = client
        .breakdown(authed(
            BreakdownRequest {
                query: Some(jan),
                page: None,
            },
            &["analyst"],
        ))
        .await
        .unwrap()
        .into_inner();
    let line = |measure: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{measure},")))
            .unwrap()
            .rsplit(',')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        line("received"),
        redress_analytics::csv::number(b.rows[0].values[0])
    );
    assert_eq!(
        line("on_time_rate"),
        redress_analytics::csv::number(b.rows[0].values[1])
    );

    // The live gauges on /metrics.
    let http = running.endpoints.http;
    eventually(
        "gauges on /metrics",
        Duration::from_secs(20),
        || async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = tokio::net::TcpStream::connect(http).await.ok()?;
            stream
                .write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
                .await
                .ok()?;
            let mut text = String::new();
            stream.read_to_string(&mut text).await.ok()?;
            (text.contains("redress_analytics_open_cases{")
                && text.contains("redress_analytics_on_time_rate_this_month"))
            .then_some(())
        },
    )
    .await;

    shutdown.cancel();
    let _ = running.stopped().await;
    live.close().await;
    expected.close().await;
    env.cleanup().await;
}
