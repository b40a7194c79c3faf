//! `redress load`: submits realistic complaints as channels do and measures how long each takes
//! to get its receipt, its case, and its department.
//!
//! Complaints are Chinese and English, from templates with varied products, amounts and
//! channels; a share are invalid (refused with violations) and a share resend an earlier
//! `channelRef` (answered as duplicates). It runs closed-loop (`--in-flight N` at once) or at a
//! fixed rate (`--rate R` per second), for `--count` submissions or a `--duration`, prints a
//! progress line each second, then the latency table (HdrHistogram) and the counts — or JSON.
//! Latencies are from the request's publish to: intake's receipt; the `case.created` event;
//! the `case.assigned` event (a case held in triage for a specialist's review has no
//! `assigned`, and is counted as such).

use std::{
    collections::HashMap,
    io::Write as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use async_nats::HeaderMap;
use futures::StreamExt;
use hdrhistogram::Histogram;
use prost::Message as _;
use redress_proto::{
    bus,
    common::v1::Channel,
    events::v1::{Event, event::Payload},
    intake::v1::{
        ComplaintSubmission, Consumer, SubmissionReply, submission_reply::Outcome as Reply,
    },
};
use redress_runtime::{Bus, bus::headers, config::parse_duration};
use tokio::sync::Semaphore;

use crate::submit::BusArgs;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    bus: BusArgs,
    /// Submissions per second (open loop); without it, as fast as --in-flight allows.
    #[arg(long)]
    rate: Option<u32>,
    /// Submissions awaiting their receipt at once (with --rate: the most at once).
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Stop after this many submissions (default 1000 unless --duration is given).
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this long, e.g. 60s or 5m.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Share of submissions that are invalid (0–1).
    #[arg(long, default_value_t = 0.02)]
    invalid: f64,
    /// Share of submissions that resend an earlier channelRef (0–1).
    #[arg(long, default_value_t = 0.05)]
    resend: f64,
    /// How long to wait for receipts.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    timeout: Duration,
    /// After the last receipt, how long to wait for the cases.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    settle: Duration,
    /// Print the result as JSON (the progress line still goes to stderr).
    #[arg(long)]
    json: bool,
    /// Seed of the generated mix, so two runs submit the same complaints.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// After the last case event, how long without another before the run counts the rest as held.
const QUIET: Duration = Duration::from_secs(3);

/// What each submission is, decided up front from the seed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    New,
    Resend(u64),
    Invalid,
}

#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    registered: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    unexpected: AtomicU64,
    failed: AtomicU64,
    created: AtomicU64,
    assigned: AtomicU64,
}

/// Times by complaint id: when its submission was published, and case events that came
/// before the receipt did.
#[derive(Default)]
struct Pending {
    sent: HashMap<String, Instant>,
    early: HashMap<(String, &'static str), Instant>,
}

struct Shared {
    started: Instant,
    /// Microseconds from the start to the latest `assigned` seen.
    last_assigned: AtomicU64,
    counts: Counts,
    pending: Mutex<Pending>,
    receipt: Mutex<Histogram<u64>>,
    created: Mutex<Histogram<u64>>,
    assigned: Mutex<Histogram<u64>>,
    /// New submissions whose receipt has come back: the only ones a resend may repeat, so a
    /// resend never races its original (that is intake's test, not the load's).
    answered: Mutex<Vec<u64>>,
}

impl Shared {
    fn new() -> anyhow::Result<Self> {
        let histogram = || Histogram::new_with_bounds(1, 3_600_000_000, 3);
        Ok(Self {
            started: Instant::now(),
            last_assigned: AtomicU64::new(0),
            counts: Counts::default(),
            pending: Mutex::new(Pending::default()),
            receipt: Mutex::new(histogram()?),
            created: Mutex::new(histogram()?),
            assigned: Mutex::new(histogram()?),
            answered: Mutex::new(Vec::new()),
        })
    }

    fn record(histogram: &Mutex<Histogram<u64>>, elapsed: Duration) {
        if let Ok(mut h) = histogram.lock() {
            h.saturating_record(elapsed.as_micros().max(1) as u64);
        }
    }

    fn histogram(&self, kind: &str) -> &Mutex<Histogram<u64>> {
        if kind == "created" {
            &self.created
        } else {
            &self.assigned
        }
    }

    /// A case event for a complaint: timed against its publish, or kept until the receipt.
    fn case_event(&self, complaint_id: String, kind: &'static str, at: Instant) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        match pending.sent.get(&complaint_id) {
            Some(sent) => {
                let elapsed = at.duration_since(*sent);
                drop(pending);
                Self::record(self.histogram(kind), elapsed);
                self.count(kind).fetch_add(1, Relaxed);
            }
            None => {
                pending.early.insert((complaint_id, kind), at);
            }
        }
    }

    fn registered(&self, complaint_id: String, sent: Instant) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        let early: Vec<_> = ["created", "assigned"]
            .into_iter()
            .filter_map(|kind| {
                let at = pending.early.remove(&(complaint_id.clone(), kind))?;
                Some((kind, at))
            })
            .collect();
        pending.sent.insert(complaint_id, sent);
        drop(pending);
        for (kind, at) in early {
            Self::record(self.histogram(kind), at.duration_since(sent));
            self.count(kind).fetch_add(1, Relaxed);
        }
    }

    fn count(&self, kind: &str) -> &AtomicU64 {
        if kind == "assigned" {
            let at = self.started.elapsed().as_micros() as u64;
            self.last_assigned.fetch_max(at, Relaxed);
        }
        if kind == "created" {
            &self.counts.created
        } else {
            &self.counts.assigned
        }
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    for (flag, share) in [("--invalid", args.invalid), ("--resend", args.resend)] {
        if !(0.0..=1.0).contains(&share) {
            bail!("{flag} is a share between 0 and 1, not {share}");
        }
    }
    if args.in_flight == 0 || args.rate == Some(0) {
        bail!("--in-flight and --rate must be at least 1");
    }
    let count = match (args.count, args.duration) {
        (Some(n), _) => n,
        (None, Some(_)) => u64::MAX,
        (None, None) => 1000,
    };
    let bus = args.bus.connect().await?;
    let shared = Arc::new(Shared::new()?);
    watch_cases(&bus, shared.clone()).await?;
    let progress = tokio::spawn(progress(shared.clone()));

    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(args.in_flight));
    let mut tick = args
        .rate
        .map(|r| tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(r))));
    let mut tasks = tokio::task::JoinSet::new();
    let mut mix = Mix::new(args.seed, args.invalid, args.resend);
    for n in 0..count {
        if args.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        if let Some(tick) = tick.as_mut() {
            tick.tick().await;
        }
        let permit = permits.clone().acquire_owned().await?;
        let (bus, shared) = (bus.clone(), shared.clone());
        let kind = match shared.answered.lock() {
            Ok(answered) => mix.next(&answered),
            Err(_) => mix.next(&[]),
        };
        let timeout = args.timeout;
        tasks.spawn(async move {
            submit(&bus, &shared, n, kind, timeout).await;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let sending = started.elapsed();

    // Every registered complaint's case, then its routing: a case held in triage for review
    // never gets `assigned`, so stop once case events have stopped coming for a while.
    let settle_until = Instant::now() + args.settle;
    let mut last = (0, Instant::now());
    while Instant::now() < settle_until {
        let c = &shared.counts;
        let (registered, created) = (c.registered.load(Relaxed), c.created.load(Relaxed));
        let seen = created + c.assigned.load(Relaxed);
        if seen != last.0 {
            last = (seen, Instant::now());
        }
        let quiet = last.1.elapsed() > QUIET;
        if created >= registered && (c.assigned.load(Relaxed) >= registered || quiet) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    progress.abort();
    eprintln!();
    report(&shared, sending, args.json)
}

/// Subscribes (core NATS, from now on) to every case's `created` and `assigned`.
async fn watch_cases(bus: &Bus, shared: Arc<Shared>) -> anyhow::Result<()> {
    let mut events = bus
        .client()
        .subscribe(bus.subject("redress.case.v1.*.*"))
        .await
        .context("subscribing to the case events")?;
    tokio::spawn(async move {
        while let Some(message) = events.next().await {
            let at = Instant::now();
            let kind = match message
                .headers
                .as_ref()
                .and_then(|h| h.get(headers::EVENT_TYPE))
            {
                Some(t) if t.as_str() == "case_created" => "created",
                Some(t) if t.as_str() == "case_assigned" => "assigned",
                _ => continue,
            };
            let header = match Event::decode(message.payload.as_ref()).map(|e| e.payload) {
                Ok(Some(Payload::CaseCreated(e))) => e.header,
                Ok(Some(Payload::CaseAssigned(e))) => e.header,
                _ => None,
            };
            if let Some(h) = header {
                shared.case_event(h.complaint_id, kind, at);
            }
        }
    });
    Ok(())
}

async fn submit(bus: &Bus, shared: &Shared, n: u64, kind: Kind, timeout: Duration) {
    let (channel, submission) = complaint(n, kind);
    let mut h = HeaderMap::new();
    h.insert(headers::CONTENT_TYPE, headers::PROTOBUF);
    let msg_id = format!("{}:{}", channel.token(), submission.channel_ref);
    h.insert(headers::MSG_ID, msg_id.as_str());
    let request = async_nats::Request::new()
        .headers(h)
        .payload(submission.encode_to_vec().into())
        .timeout(Some(timeout));
    let subject = bus.subject(&bus::submit_subject(channel));
    let counts = &shared.counts;
    counts.sent.fetch_add(1, Relaxed);
    let sent = Instant::now();
    let reply = bus.client().send_request(subject, request).await;
    let elapsed = sent.elapsed();
    let Ok(reply) = reply else {
        counts.failed.fetch_add(1, Relaxed);
        return;
    };
    Shared::record(&shared.receipt, elapsed);
    let outcome = SubmissionReply::decode(reply.payload.as_ref())
        .ok()
        .and_then(|r| r.outcome);
    match (outcome, kind) {
        (Some(Reply::Receipt(r)), Kind::New) if !r.duplicate => {
            counts.registered.fetch_add(1, Relaxed);
            shared.registered(r.complaint_id, sent);
            if let Ok(mut answered) = shared.answered.lock() {
                answered.push(n);
            }
        }
        (Some(Reply::Receipt(r)), Kind::Resend(_)) if r.duplicate => {
            counts.duplicates.fetch_add(1, Relaxed);
        }
        (Some(Reply::Rejected(_)), Kind::Invalid) => {
            counts.rejected.fetch_add(1, Relaxed);
        }
        _ => {
            counts.unexpected.fetch_add(1, Relaxed);
        }
    }
}

/// A deterministic mix of new, invalid and resent submissions (xorshift from the seed); a
/// resend repeats one of the new submissions already answered.
struct Mix {
    state: u64,
    invalid: f64,
    resend: f64,
}

impl Mix {
    fn new(seed: u64, invalid: f64, resend: f64) -> Self {
        Self {
            state: seed.max(1),
            invalid,
            resend,
        }
    }

    fn uniform(&mut self) -> f64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        (self.state >> 11) as f64 / (1u64 << 53) as f64
    }

    fn next(&mut self, answered: &[u64]) -> Kind {
        let roll = self.uniform();
        if roll < self.invalid {
            return Kind::Invalid;
        }
        if roll < self.invalid + self.resend && !answered.is_empty() {
            let pick = (self.uniform() * answered.len() as f64) as usize;
            return Kind::Resend(answered[pick.min(answered.len() - 1)]);
        }
        Kind::New
    }
}

const CHANNELS: [Channel; 5] = [
    Channel::App,
    Channel::Web,
    Channel::Hotline,
    Channel::Wechat,
    Channel::Email,
];
const PRODUCTS_ZH: [&str; 5] = ["消费贷", "信用卡", "理财产品", "账户安全险", "联合贷-B银行"];
const PRODUCTS_EN: [&str; 4] = [
    "personal loan",
    "credit card",
    "checking account",
    "mortgage",
];
const ZH: [&str; 5] = [
    "我在{date}提前还清了{product}，但是{date}又被扣了{amount}元，客服一直说在处理，要求退还多扣的钱。",
    "{product}的催收人员每天打电话到我单位，还威胁要告诉我家人，我并没有逾期，请停止骚扰。",
    "我的账户在{date}被盗刷{amount}元，我从来没有授权过这笔交易，申请冻结并赔偿。",
    "购买{product}时销售人员承诺保本，现在亏损{amount}元，当时没有做风险测评，要求赔偿。",
    "我的征信报告显示{product}有逾期记录，但我每期都按时还款，请更正征信记录。",
];
const EN: [&str; 4] = [
    "I paid off my {product} early on {date} but was charged ${amount} again; I want the extra payment refunded.",
    "A debt collector for my {product} calls me at work every day about a debt I do not owe.",
    "Someone made unauthorized transfers of ${amount} from my account on {date} and the bank will not reimburse me.",
    "My credit report shows a late payment on my {product} that I paid on time; please correct it.",
];

/// Submission `n` of its kind: its own channelRef unless it resends an earlier one.
fn complaint(n: u64, kind: Kind) -> (Channel, ComplaintSubmission) {
    let source = match kind {
        Kind::Resend(earlier) => earlier,
        _ => n,
    };
    let channel = CHANNELS[(source % CHANNELS.len() as u64) as usize];
    let i = source as usize;
    let english = i % 4 == 3;
    let (template, product) = if english {
        (EN[i % EN.len()], PRODUCTS_EN[(i / 7) % PRODUCTS_EN.len()])
    } else {
        (ZH[i % ZH.len()], PRODUCTS_ZH[(i / 7) % PRODUCTS_ZH.len()])
    };
    let description = template
        .replace("{product}", product)
        .replace("{amount}", &format!("{}", 100 + (i * 37) % 9_900))
        .replace("{date}", &format!("2026-11-{:02}", 1 + i % 28));
    let mut submission = ComplaintSubmission {
        channel: channel as i32,
        channel_ref: format!("load-{}-{source}", std::process::id()),
        product: product.to_owned(),
        description,
        locale: if english { "en-US" } else { "zh-CN" }.into(),
        consumer: Some(Consumer {
            name: if english { "Pat Lee" } else { "张三" }.into(),
            phone: format!("138{:08}", source % 100_000_000),
            ..Default::default()
        }),
        ..Default::default()
    };
    if kind == Kind::Invalid {
        submission.description.clear();
    }
    (channel, submission)
}

async fn progress(shared: Arc<Shared>) {
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let c = &shared.counts;
        let sent = c.sent.load(Relaxed);
        let secs = started.elapsed().as_secs_f64().max(0.001);
        eprint!(
            "\r{:>6.0}s  sent {sent}  registered {}  cases {}  assigned {}  failed {}  ({:.0}/s)   ",
            secs,
            c.registered.load(Relaxed),
            c.created.load(Relaxed),
            c.assigned.load(Relaxed),
            c.failed.load(Relaxed),
            sent as f64 / secs,
        );
        let _ = std::io::stderr().flush();
    }
}

fn report(shared: &Shared, sending: Duration, json: bool) -> anyhow::Result<()> {
    let c = &shared.counts;
    let load = |a: &AtomicU64| a.load(Relaxed);
    let counts = serde_json::json!({
        "sent": load(&c.sent),
        "registered": load(&c.registered),
        "duplicates": load(&c.duplicates),
        "rejected": load(&c.rejected),
        "unexpected": load(&c.unexpected),
        "failed": load(&c.failed),
        "cases": load(&c.created),
        "assigned": load(&c.assigned),
        "held_in_triage": load(&c.created).saturating_sub(load(&c.assigned)),
    });
    let rate = load(&c.sent) as f64 / sending.as_secs_f64().max(0.001);
    let mut latencies = serde_json::Map::new();
    for (name, histogram) in [
        ("submit_to_receipt", &shared.receipt),
        ("submit_to_case_created", &shared.created),
        ("submit_to_case_assigned", &shared.assigned),
    ] {
        let h = histogram
            .lock()
            .map_err(|_| anyhow::anyhow!("a latency recorder failed"))?;
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        latencies.insert(
            name.into(),
            serde_json::json!({
                "count": h.len(), "p50_ms": ms(0.5), "p90_ms": ms(0.9), "p99_ms": ms(0.99),
                "p999_ms": ms(0.999), "max_ms": h.max() as f64 / 1000.0,
            }),
        );
    }
    let last_assigned = load(&shared.last_assigned) as f64 / 1e6;
    let result = serde_json::json!({
        "seconds": sending.as_secs_f64(),
        "seconds_to_last_assigned": last_assigned,
        "assigned_per_second": load(&c.assigned) as f64 / last_assigned.max(0.001),
        "submissions_per_second": rate,
        "counts": counts,
        "latency": latencies,
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(());
    }
    println!(
        "{} submissions in {:.1} s ({rate:.0}/s); {} cases assigned by {:.1} s ({:.0}/s)\n",
        load(&c.sent),
        sending.as_secs_f64(),
        load(&c.assigned),
        last_assigned,
        load(&c.assigned) as f64 / last_assigned.max(0.001),
    );
    println!(
        "{:<26} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
    );
    for name in [
        "submit_to_receipt",
        "submit_to_case_created",
        "submit_to_case_assigned",
    ] {
        let l = &latencies[name];
        let f = |k: &str| l[k].as_f64().unwrap_or(0.0);
        println!(
            "{name:<26} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            l["count"].as_u64().unwrap_or(0),
            f("p50_ms"),
            f("p90_ms"),
            f("p99_ms"),
            f("p999_ms"),
            f("max_ms")
        );
    }
    println!();
    if let Some(counts) = counts.as_object() {
        for (name, value) in counts {
            println!("{name:<16} {value}");
        }
    }
    Ok(())
}
