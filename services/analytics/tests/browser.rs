//! The reports opened in a real headless browser (Debian's chromium through chromedriver's
//! WebDriver HTTP API): every chart's SVG laid out with marks drawn, Chinese labels measured
//! with width; the regulator report's figures equal `Breakdown`'s answers and the browser
//! shows the same tables as the CSV; printed to PDF by `pdf::print`, whose text carries the
//! Chinese titles and whose fonts include Noto Sans CJK.
//!
//! Chromium missing is a failure naming what to install, never a skip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{path::Path, time::Duration};

use chrono::TimeZone;
use redress_analytics::{Config, config::AnalyticsConfig, csv::number, pdf, run};
use redress_proto::analytics::v1::{
    BreakdownRequest, GetReportRequest, Grain, Query, ReportFormat, ReportKind,
    analytics_service_client::AnalyticsServiceClient,
};
use redress_runtime::{
    Exit,
    testing::{TestEnv, authed, eventually, free_port, grpc_channel},
};
use serde_json::{Value, json};
use support::{envelope, generate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

const MONTH: &str = "2026-11";

fn require(program: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{program} is not installed; the report must be checked in a real browser: {}, \
         and apt-get install poppler-utils",
        pdf::INSTALL
    );
}

/// One HTTP/1.1 exchange with chromedriver (Connection: close; it answers with a length).
async fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Option<Value> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    // chromedriver keeps the connection open whatever we ask: read exactly Content-Length.
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&raw[..end]).to_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())?;
        if raw.len() >= end + 4 + length {
            return serde_json::from_slice(&raw[end + 4..end + 4 + length]).ok();
        }
    }
}

struct Driver {
    port: u16,
    session: String,
    _process: tokio::process::Child,
}

impl Driver {
    async fn start() -> Self {
        let port = free_port();
        let process = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("chromedriver: {e}; {}", pdf::INSTALL));
        eventually("chromedriver ready", Duration::from_secs(15), || async {
            let status = http(port, "GET", "/status", None).await?;
            (status["value"]["ready"] == json!(true)).then_some(())
        })
        .await;
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,2000"]
            }
        }}});
        let created = http(port, "POST", "/session", Some(&caps)).await.unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        Self {
            port,
            session,
            _process: process,
        }
    }

    async fn call(&self, path: &str, body: Value) -> Value {
        let path = format!("/session/{}/{path}", self.session);
        let answer = http(self.port, "POST", &path, Some(&body)).await.unwrap();
        assert!(answer["value"]["error"].is_null(), "{path}: {answer}");
        answer["value"].clone()
    }

    async fn open(&self, file: &Path) -> Value {
        let url = format!("file://{}", file.display());
        self.call("url", json!({ "url": url })).await;
        self.call("execute/sync", json!({ "script": LAYOUT, "args": [] }))
            .await
    }

    async fn quit(self) {
        let path = format!("/session/{}", self.session);
        http(self.port, "DELETE", &path, None).await;
    }
}

/// What the browser laid out: each chart's box and its drawn marks (a mark with an empty box
/// is not drawn), the rendered width of Chinese text, and every table's cells.
const LAYOUT: &str = r#"
const charts = [...document.querySelectorAll('svg.chart')].map(svg => {
  const box = svg.getBoundingClientRect();
  const marks = [...svg.querySelectorAll('rect.bar, rect.cell, polyline.series')];
  const drawn = marks.filter(m => { const b = m.getBoundingClientRect(); return b.width > 0 && b.height > 0; });
  const title = svg.querySelector('text');
  return { kind: svg.getAttribute('class'), width: box.width, height: box.height,
           marks: marks.length, drawn: drawn.length,
           title: title.textContent, title_width: title.getComputedTextLength() };
});
const ctx = document.createElement('canvas').getContext('2d');
ctx.font = "16px 'Noto Sans CJK SC'";
const cjk = ctx.measureText('管理层报告').width;
const range = document.createRange();
range.selectNodeContents(document.querySelector('h1'));
const h1 = range.getBoundingClientRect().width;
const tables = [...document.querySelectorAll('table')].map(t =>
  [...t.rows].map(r => [...r.cells].map(c => c.textContent)));
return { charts, cjk, h1, tables, title: document.title };
"#;

fn query(dims: &[&str], measures: &[&str], from: &str, to: &str) -> BreakdownRequest {
    BreakdownRequest {
        query: Some(Query {
            dimensions: dims.iter().map(|d| (*d).to_owned()).collect(),
            measures: measures.iter().map(|m| (*m).to_owned()).collect(),
            grain: Grain::All as i32,
            from: from.into(),
            to: to.into(),
            filters: vec![],
        }),
        page: None,
    }
}

async fn breakdown(
    c: &mut AnalyticsServiceClient<Channel>,
    r: BreakdownRequest,
) -> Vec<Vec<String>> {
    let rows = c
        .breakdown(authed(r, &["analyst"]))
        .await
        .unwrap()
        .into_inner()
        .rows;
    rows.into_iter()
        .map(|r| {
            let mut cells = vec![r.period];
            cells.extend(r.dimensions);
            cells.extend(r.values.into_iter().map(number));
            cells
        })
        .collect()
}

async fn report(
    c: &mut AnalyticsServiceClient<Channel>,
    kind: ReportKind,
    format: ReportFormat,
) -> String {
    let r = GetReportRequest {
        kind: kind as i32,
        month: MONTH.into(),
        format: format as i32,
    };
    let content = c.get_report(authed(r, &["compliance"])).await.unwrap();
    String::from_utf8(content.into_inner().content).unwrap()
}

/// RFC 4180 as `csv::line` writes it: tables separated by an empty line, each headed by its
/// title, then its header row.
fn csv_tables(text: &str) -> Vec<(String, Vec<Vec<String>>)> {
    let mut tables = Vec::new();
    for block in text.split("\r\n\r\n").filter(|b| !b.is_empty()) {
        let mut lines = block.split("\r\n").map(fields);
        let title = lines.next().unwrap().concat();
        tables.push((title, lines.collect()));
    }
    tables
}

fn fields(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted, mut chars) =
        (Vec::new(), String::new(), false, line.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn table<'a>(tables: &'a [(String, Vec<Vec<String>>)], title: &str) -> &'a [Vec<String>] {
    let t = tables.iter().find(|t| t.0.starts_with(title));
    &t.unwrap_or_else(|| panic!("no table {title}")).1[1..]
}

/// The regulator report's figures are `Breakdown`'s answers, and the per-10,000 rate is
/// received over the denominators' customers.
async fn regulator_equals_breakdown(c: &mut AnalyticsServiceClient<Channel>, csv: &str) {
    let tables = csv_tables(csv);
    let (from, to) = ("2026-11-01", "2026-12-01");
    let mut want = breakdown(c, query(&["category", "cause"], &["received"], from, to)).await;
    let mut got = table(&tables, "按业务类别和投诉原因").to_vec();
    want.sort();
    got.sort();
    assert!(!want.is_empty());
    assert_eq!(got, want);
    let handling = [
        "decided",
        "mean_decide_wdays",
        "p50_decide_hours",
        "p90_decide_hours",
        "p99_decide_hours",
        "on_time_rate",
    ];
    let want = breakdown(c, query(&[], &handling, from, to)).await;
    assert_eq!(table(&tables, "办理时效"), want);
    let want = breakdown(c, query(&["channel"], &["received"], from, to)).await;
    let mut got = table(&tables, "按渠道").to_vec();
    got.sort();
    let mut want = want;
    want.sort();
    assert_eq!(got, want);
    let rates = table(&tables, "投诉率");
    for (row, (start, end)) in rates.iter().zip([
        ("2026-11-01", "2026-12-01"),
        ("2026-10-01", "2026-11-01"),
        ("2025-11-01", "2025-12-01"),
    ]) {
        let b = breakdown(c, query(&[], &["received"], start, end)).await;
        let received = b.first().map_or("0".to_owned(), |r| r[1].clone());
        assert_eq!(row[1], &start[..7], "{row:?}");
        assert_eq!(row[2], received, "{row:?}");
        if let Ok(customers) = row[3].parse::<f64>() {
            let n: f64 = received.parse().unwrap();
            assert_eq!(row[4], number(n / customers * 10_000.0), "{row:?}");
        }
    }
    assert!(
        rates[0][4] != "n/a",
        "this month has a denominator: {rates:?}"
    );
}

fn check_layout(kind: &str, layout: &Value, csv: &str) {
    let charts = layout["charts"].as_array().unwrap();
    assert!(charts.len() >= 4, "{kind}: {layout}");
    for chart in charts {
        let f = |k: &str| chart[k].as_f64().unwrap();
        assert!(f("width") > 300.0 && f("height") > 100.0, "{kind}: {chart}");
        assert!(f("drawn") > 0.0, "{kind}: no mark drawn: {chart}");
        assert!(f("title_width") > 100.0, "{kind}: {chart}");
    }
    assert!(layout["cjk"].as_f64().unwrap() > 40.0, "{kind}: {layout}");
    assert!(layout["h1"].as_f64().unwrap() > 200.0, "{kind}: {layout}");
    // The browser shows the CSV's tables, cell for cell.
    let shown: Vec<Vec<Vec<String>>> = serde_json::from_value(layout["tables"].clone()).unwrap();
    let tables = csv_tables(csv);
    assert_eq!(shown.len(), tables.len(), "{kind}");
    for (shown, (title, rows)) in shown.iter().zip(&tables) {
        assert_eq!(shown, rows, "{kind}: {title}");
    }
}

fn tool_output(file: &Path, tool: &str) -> String {
    let out = std::process::Command::new(tool)
        .arg(file)
        .args(if tool == "pdftotext" {
            &["-"][..]
        } else {
            &[][..]
        })
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}; apt-get install poppler-utils"));
    assert!(out.status.success(), "{tool}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_render_in_headless_chromium_and_print_to_pdf() {
    for program in [
        "chromium",
        "chromedriver",
        "pdftotext",
        "pdffonts",
        "fc-match",
    ] {
        require(program);
    }
    // The font the report names is the one the browser gets (not a fallback with boxes).
    let font = tool_output(Path::new("Noto Sans CJK SC"), "fc-match");
    assert!(font.contains("NotoSansCJK"), "{font}: {}", pdf::INSTALL);
    let env = TestEnv::new().await;
    let shutdown = CancellationToken::new();
    let config = Config {
        runtime: env.runtime_config(),
        analytics: AnalyticsConfig::default(),
        command: None,
    };
    let Exit::Serving(running) = run(config, shutdown.clone()).await.unwrap() else {
        panic!("serves");
    };
    let mut client = AnalyticsServiceClient::new(
        grpc_channel(&format!("http://{}", running.endpoints.grpc)).await,
    );

    // A year and a month of complaints (the heat map's twelve months, 同比 and 环比), more in
    // the report's month; written through the service's batch path into its own schema.
    let shanghai = |y, m, d| {
        chrono_tz::Asia::Shanghai
            .with_ymd_and_hms(y, m, d, 0, 0, 0)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    let mut raw = generate(21, 500, shanghai(2025, 11, 1), 395);
    raw.extend(generate(22, 250, shanghai(2026, 11, 1), 29));
    let events: Vec<_> = raw
        .iter()
        .map(envelope)
        .filter_map(|e| redress_analytics::events::from_event(&e))
        .collect();
    let live = env.pool("analytics").await;
    let ctx = redress_analytics::context("cn-nfra").unwrap();
    let mut tx = live.begin().await.unwrap();
    redress_analytics::rebuild::apply_new(&mut tx, &ctx, "generated", &events)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let dir = std::env::temp_dir().join(format!("redress-browser-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let driver = Driver::start().await;
    for kind in [ReportKind::Management, ReportKind::Regulator] {
        let name = kind.as_str_name().to_lowercase();
        let html = report(&mut client, kind, ReportFormat::Html).await;
        let csv = report(&mut client, kind, ReportFormat::Csv).await;
        if kind == ReportKind::Regulator {
            regulator_equals_breakdown(&mut client, &csv).await;
        }
        let file = dir.join(format!("{name}.html"));
        std::fs::write(&file, &html).unwrap();
        let layout = driver.open(&file).await;
        check_layout(&name, &layout, &csv);

        let printed = dir.join(format!("{name}.pdf"));
        pdf::print(&file, &printed).await.unwrap();
        let text = tool_output(&printed, "pdftotext");
        for words in ["按业务类别", "按渠道", "Complaints by channel"] {
            assert!(
                text.contains(words),
                "{name}: {words} not in the PDF:\n{text}"
            );
        }
        // Chromium embeds its glyphs as unnamed Type 3 fonts: embedded, and (above) mapped
        // back to the Chinese text.
        let fonts = tool_output(&printed, "pdffonts");
        assert!(
            fonts.lines().skip(2).any(|l| l.contains(" yes ")),
            "{name}: no embedded font: {fonts}"
        );
    }
    driver.quit().await;
    let _ = std::fs::remove_dir_all(&dir);

    shutdown.cancel();
    let _ = running.stopped().await;
    live.close().await;
    env.cleanup().await;
}
