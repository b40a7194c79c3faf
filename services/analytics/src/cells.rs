//! What a fact contributes to the aggregates: a list of cells (local day, dimensions, measure)
//! with a value. The aggregates are the sum of every fact's contribution, so a changed fact
//! retracts its old contribution and adds its new one — a commutative upsert of the
//! difference — and a late, out-of-order or reclassifying event moves figures between
//! periods and categories without counting anything twice.

use std::{collections::BTreeMap, sync::LazyLock};

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use redress_regime::Calendar;
use serde::Serialize;

use crate::{
    events::{Body, Ev},
    facts::Fact,
};

/// The dimensions every cell is keyed by ('' when unknown). `detail` refines a measure: the
/// violation code of a rejection, the currency of a remedy, a root-cause tag, the model's
/// class for model-health measures, the extension tier, a notice kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Dims {
    pub channel: String,
    pub kind: String,
    pub product: String,
    pub category: String,
    pub cause: String,
    pub severity: String,
    pub vulnerable: bool,
    pub partner: String,
    pub department: String,
    pub regime: String,
    pub detail: String,
}

/// The dimension names a query may group or filter by, as the columns are named.
pub const DIMENSIONS: &[&str] = &[
    "channel",
    "kind",
    "product",
    "category",
    "cause",
    "severity",
    "vulnerable",
    "partner",
    "department",
    "regime",
    "detail",
];

/// A row's key: its local day (or month) and dimensions. A row holds every measure.
pub type Key = (NaiveDate, Dims);

/// Cells of one contribution: the rows it touches, each with its measures and values.
pub type Rows = Vec<(Key, Vec<(&'static str, i64)>)>;

/// Upper bounds (hours) of the duration histogram buckets; the last bucket is open. Wide
/// enough for a 60-day limit; percentiles read from them are exact to a bucket (README).
pub const HOUR_BUCKETS: &[i64] = &[
    1, 2, 4, 8, 12, 24, 48, 72, 96, 120, 168, 240, 336, 480, 720, 1080, 1440,
];

/// The measure names of the histogram buckets of one duration, `hist_<name>_<k>`.
pub fn bucket_names(name: &str) -> Vec<String> {
    (0..=HOUR_BUCKETS.len())
        .map(|k| format!("hist_{name}_{k:02}"))
        .collect()
}

/// What a cell count needs to know besides the fact: local days and working days.
pub struct Context {
    pub tz: Tz,
    pub calendar: Calendar,
}

/// The durations measured: (name, count measure, seconds measure, working-days measure).
pub const DURATIONS: [(&str, &str, &str, &str); 3] = [
    ("assign", "assigned", "assign_secs", "assign_wdays"),
    ("contact", "contacted", "contact_secs", "contact_wdays"),
    ("decide", "decided", "decide_secs", "decide_wdays"),
];

static HISTOGRAMS: LazyLock<Vec<Vec<String>>> =
    LazyLock::new(|| DURATIONS.iter().map(|d| bucket_names(d.0)).collect());
static CONFIDENCE: LazyLock<Vec<String>> =
    LazyLock::new(|| (0..10).map(|k| format!("confidence_{k}")).collect());

/// The measure of confidence decile `k` (0–9).
pub fn confidence_name(k: usize) -> &'static str {
    CONFIDENCE
        .get(k.min(9))
        .map_or("confidence_0", String::as_str)
}

impl Context {
    pub fn new(tz: Tz, calendar: Calendar) -> Self {
        Self { tz, calendar }
    }

    pub fn day(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.tz).date_naive()
    }

    /// Working days after the day of `from` up to and including the day of `to`.
    pub fn working_days(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
        let (mut d, end) = (self.day(from), self.day(to));
        let mut n = 0;
        while d < end {
            let Some(next) = d.succ_opt() else { break };
            d = next;
            n += i64::from(self.calendar.is_working_day(d));
        }
        n
    }
}

/// The histogram bucket of a duration (index into [`DURATIONS`]) of `seconds`.
pub fn bucket(duration: usize, seconds: i64) -> &'static str {
    let hours_ceil = (seconds + 3599) / 3600;
    let k = HOUR_BUCKETS
        .iter()
        .position(|&b| hours_ceil <= b)
        .unwrap_or(HOUR_BUCKETS.len());
    HISTOGRAMS
        .get(duration)
        .and_then(|h| h.get(k))
        .map_or("hist_unknown", String::as_str)
}

/// The position of each stored measure in a row (`query::stored_measures`, the cube's
/// columns).
static MEASURE_INDEX: LazyLock<std::collections::HashMap<String, usize>> = LazyLock::new(|| {
    crate::query::stored_measures()
        .into_iter()
        .enumerate()
        .map(|(i, m)| (m, i))
        .collect()
});

/// A measure no column holds: a bug in the contribution, reported rather than dropped.
#[derive(Debug, thiserror::Error)]
#[error("measure `{0}` has no column in the cube")]
pub struct UnknownMeasure(pub &'static str);

/// Adds rows into a map of (day, dimensions) → one value per stored measure.
#[derive(Debug, Default)]
pub struct Cells(pub BTreeMap<Key, Vec<i64>>);

impl Cells {
    /// Adds `sign` × each of `rows`' values.
    pub fn add(&mut self, rows: Rows, sign: i64) -> Result<(), UnknownMeasure> {
        let width = MEASURE_INDEX.len();
        for (key, measures) in rows {
            let row = self.0.entry(key).or_insert_with(|| vec![0; width]);
            for (measure, value) in measures {
                let i = *MEASURE_INDEX.get(measure).ok_or(UnknownMeasure(measure))?;
                if let Some(slot) = row.get_mut(i) {
                    *slot += sign * value;
                }
            }
        }
        Ok(())
    }

    /// Adds `sign` × the contribution of `fact`.
    pub fn fact(&mut self, ctx: &Context, fact: &Fact, sign: i64) -> Result<(), UnknownMeasure> {
        self.add(contribution(ctx, fact), sign)
    }

    /// The rows with a non-zero value.
    pub fn nonzero(self) -> impl Iterator<Item = (Key, Vec<i64>)> {
        self.0
            .into_iter()
            .filter(|(_, v)| v.iter().any(|x| *x != 0))
    }
}

/// Collects a contribution's cells into rows, cloning dimensions once per row (a fact
/// touches a handful of rows: the days of receipt, assignment, contact and decision, and
/// the refining details).
#[derive(Default)]
struct Collect(Rows);

impl Collect {
    fn on(&mut self, day: NaiveDate, dims: &Dims, measure: &'static str, value: i64) {
        if value == 0 {
            return;
        }
        match self.0.iter_mut().find(|((d, k), _)| *d == day && k == dims) {
            Some((_, measures)) => measures.push((measure, value)),
            None => self.0.push(((day, dims.clone()), vec![(measure, value)])),
        }
    }
}

fn dims(fact: &Fact) -> Dims {
    Dims {
        channel: fact.channel.clone(),
        kind: fact.kind.clone(),
        product: fact.product().to_owned(),
        category: fact.category.clone(),
        cause: fact.cause.clone(),
        severity: fact.severity.clone(),
        vulnerable: fact.vulnerable,
        partner: fact.partner.clone(),
        department: fact.department.clone(),
        regime: fact.regime.clone(),
        detail: String::new(),
    }
}

/// Every cell one fact counts in. A complaint counts once it has been received: events that
/// arrive before its `received` wait in the fact and count when it comes.
pub fn contribution(ctx: &Context, fact: &Fact) -> Rows {
    let Some(received) = fact.received_at else {
        return Vec::new();
    };
    let base = dims(fact);
    let detail = |d: &str| Dims {
        detail: d.to_owned(),
        ..base.clone()
    };
    let mut out = Collect::default();
    let rday = ctx.day(received);
    let mut on = |day: NaiveDate, d: &Dims, m: &'static str, v: i64| out.on(day, d, m, v);
    on(rday, &base, "received", 1);
    if let Some(at) = fact.registered_at {
        on(ctx.day(at), &base, "registered", 1);
    }
    on(rday, &base, "duplicates", i64::from(fact.duplicate));
    on(rday, &base, "withdrawn", i64::from(fact.withdrawn));
    on(
        rday,
        &base,
        "escalated_mediation",
        i64::from(fact.escalated_mediation),
    );
    on(
        rday,
        &base,
        "escalated_regulator",
        i64::from(fact.escalated_regulator),
    );
    on(rday, &base, "reopened", i64::from(fact.reopened));
    on(rday, &base, "reassigned", i64::from(fact.assignments > 1));
    on(
        rday,
        &base,
        "reassignments",
        i64::from((fact.assignments - 1).max(0)),
    );
    if fact.extension_tier > 0 {
        on(
            rday,
            &detail(&format!("tier-{}", fact.extension_tier)),
            "extended",
            1,
        );
    }
    if !fact.model_v.is_empty() {
        let model = detail(&fact.model_category);
        on(rday, &model, "classified", 1);
        on(rday, &model, "overridden", i64::from(fact.overridden));
        let k = fact
            .confidence
            .map_or(0, |c| (c * 10.0).floor().clamp(0.0, 9.0) as usize);
        on(rday, &model, confidence_name(k), 1);
    }
    let times = [fact.assigned_at, fact.contact_at, fact.decided_at];
    for (i, ((_, counted, secs_name, wdays_name), at)) in DURATIONS.iter().zip(times).enumerate() {
        let Some(at) = at else { continue };
        let day = ctx.day(at);
        let secs = (at - received).num_seconds().max(0);
        on(day, &base, counted, 1);
        on(day, &base, secs_name, secs);
        on(day, &base, wdays_name, ctx.working_days(received, at));
        on(day, &base, bucket(i, secs), 1);
    }
    if let Some(decided) = fact.decided_at {
        decision(ctx, fact, decided, &base, &mut on);
    }
    out.0
}

fn decision(
    ctx: &Context,
    fact: &Fact,
    decided: DateTime<Utc>,
    base: &Dims,
    on: &mut impl FnMut(NaiveDate, &Dims, &'static str, i64),
) {
    let day = ctx.day(decided);
    let detail = |d: &str| Dims {
        detail: d.to_owned(),
        ..base.clone()
    };
    if let Some(due) = fact.due_at {
        on(
            day,
            base,
            if decided <= due { "on_time" } else { "late" },
            1,
        );
    }
    match fact.outcome.as_str() {
        "upheld" => on(day, base, "upheld", 1),
        "partly_upheld" => on(day, base, "partly_upheld", 1),
        "not_upheld" => on(day, base, "not_upheld", 1),
        _ => {}
    }
    if !fact.remedy_currency.is_empty() && fact.remedy_units != 0 {
        let currency = detail(&fact.remedy_currency);
        on(day, &currency, "remedies", 1);
        on(day, &currency, "remedy_units", fact.remedy_units);
    }
    on(day, base, "reviewed", i64::from(fact.review_requested));
    let overturned = !fact.review_outcome.is_empty() && fact.review_outcome != fact.outcome;
    on(day, base, "overturned", i64::from(overturned));
    match fact.satisfaction.as_str() {
        "satisfied" => on(day, base, "satisfied", 1),
        "neutral" => on(day, base, "neutral", 1),
        "dissatisfied" => on(day, base, "dissatisfied", 1),
        "no_answer" => on(day, base, "no_answer", 1),
        _ => {}
    }
    let mut tags: Vec<&String> = fact.root_causes.iter().collect();
    tags.sort();
    tags.dedup();
    for tag in tags {
        on(day, &detail(tag), "root_cause", 1);
    }
}

/// The cells of an event counted on its own (no complaint fact).
pub fn standalone(ctx: &Context, ev: &Ev) -> Rows {
    let day = ctx.day(ev.at);
    let mut out = Collect::default();
    match &ev.body {
        Body::Rejected { channel, codes } => {
            let mut codes: Vec<&String> = codes.iter().collect();
            codes.sort();
            codes.dedup();
            let base = Dims {
                channel: channel.clone(),
                ..Dims::default()
            };
            out.on(day, &base, "rejected", 1);
            for code in codes {
                let d = Dims {
                    detail: code.clone(),
                    ..base.clone()
                };
                out.on(day, &d, "rejections_by_code", 1);
            }
        }
        Body::Notice {
            kind,
            department,
            failed,
        } => {
            let d = Dims {
                department: department.clone(),
                detail: kind.clone(),
                ..Dims::default()
            };
            let measure = if *failed {
                "notices_failed"
            } else {
                "notices_sent"
            };
            out.on(day, &d, measure, 1);
        }
        Body::Complaint { .. } => {}
    }
    out.0
}
