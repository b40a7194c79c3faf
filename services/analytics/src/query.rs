//! The read path: a breakdown (dimensions × measures × period, filtered) summed from the
//! aggregates, with the derived measures (rates, means, percentiles) computed from the sums.
//! Percentiles come from histogram buckets, which add across cells and periods.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use redress_proto::analytics::v1::Grain;
use sqlx::PgPool;

use crate::cells::{DIMENSIONS, DURATIONS, HOUR_BUCKETS, bucket_names, confidence_name};

/// A validated breakdown.
#[derive(Debug, Clone, PartialEq)]
pub struct Breakdown {
    pub dimensions: Vec<String>,
    pub measures: Vec<String>,
    pub grain: Grain,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// (dimension, allowed values)
    pub filters: Vec<(String, Vec<String>)>,
}

/// One row of an answer: period ('' for the whole range), dimension values, measure values.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub period: String,
    pub dimensions: Vec<String>,
    pub values: Vec<f64>,
}

/// Measures kept in the aggregates, summed as they are.
pub fn stored_measures() -> Vec<String> {
    let mut names: Vec<String> = [
        "received",
        "registered",
        "rejected",
        "rejections_by_code",
        "duplicates",
        "withdrawn",
        "escalated_mediation",
        "escalated_regulator",
        "reopened",
        "reassigned",
        "reassignments",
        "extended",
        "classified",
        "overridden",
        "assigned",
        "assign_secs",
        "assign_wdays",
        "contacted",
        "contact_secs",
        "contact_wdays",
        "decided",
        "decide_secs",
        "decide_wdays",
        "on_time",
        "late",
        "upheld",
        "partly_upheld",
        "not_upheld",
        "remedies",
        "remedy_units",
        "reviewed",
        "overturned",
        "satisfied",
        "neutral",
        "dissatisfied",
        "no_answer",
        "root_cause",
        "notices_sent",
        "notices_failed",
        "alerts_raised",
        "alerts_resolved",
    ]
    .map(str::to_owned)
    .to_vec();
    names.extend((0..10).map(|k| confidence_name(k).to_owned()));
    for (name, ..) in DURATIONS {
        names.extend(bucket_names(name));
    }
    names
}

/// Computes a derived measure from a lookup of stored sums.
type Formula = Box<dyn Fn(&dyn Fn(&str) -> f64) -> f64 + Send + Sync>;

/// A measure computed from stored ones: the stored measures it reads and how.
struct Derived {
    reads: Vec<String>,
    compute: Formula,
}

fn ratio(num: &'static [&'static str], den: &'static [&'static str]) -> Derived {
    Derived {
        reads: num.iter().chain(den).map(|s| (*s).to_owned()).collect(),
        compute: Box::new(move |v| {
            let n: f64 = num.iter().map(|m| v(m)).sum();
            let d: f64 = den.iter().map(|m| v(m)).sum();
            if d > 0.0 { n / d } else { 0.0 }
        }),
    }
}

/// The `q` quantile (hours) of a duration's histogram: the upper bound of the bucket where
/// the cumulative count reaches `q` of the total (the open last bucket reads as its floor).
fn percentile(duration: &'static str, q: f64) -> Derived {
    let names = bucket_names(duration);
    Derived {
        reads: names.clone(),
        compute: Box::new(move |v| {
            let counts: Vec<f64> = names.iter().map(|n| v(n)).collect();
            let total: f64 = counts.iter().sum();
            if total <= 0.0 {
                return 0.0;
            }
            let mut seen = 0.0;
            for (k, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= q * total {
                    let last = HOUR_BUCKETS.last().copied().unwrap_or(0);
                    return HOUR_BUCKETS.get(k).copied().unwrap_or(last) as f64;
                }
            }
            0.0
        }),
    }
}

fn mean(sum: &'static str, count: &'static str, scale: f64) -> Derived {
    Derived {
        reads: vec![sum.to_owned(), count.to_owned()],
        compute: Box::new(move |v| {
            let c = v(count);
            if c > 0.0 { v(sum) / c / scale } else { 0.0 }
        }),
    }
}

fn derived(name: &str) -> Option<Derived> {
    const ANSWERED: &[&str] = &["satisfied", "neutral", "dissatisfied"];
    const ASKED: &[&str] = &["satisfied", "neutral", "dissatisfied", "no_answer"];
    Some(match name {
        "on_time_rate" => ratio(&["on_time"], &["on_time", "late"]),
        "extension_rate" => ratio(&["extended"], &["received"]),
        "reassignment_rate" => ratio(&["reassigned"], &["received"]),
        "override_rate" => ratio(&["overridden"], &["classified"]),
        "review_rate" => ratio(&["reviewed"], &["decided"]),
        "overturn_rate" => ratio(&["overturned"], &["reviewed"]),
        "uphold_rate" => ratio(&["upheld", "partly_upheld"], &["decided"]),
        "response_rate" => ratio(ANSWERED, ASKED),
        "satisfaction_rate" => ratio(&["satisfied"], ANSWERED),
        "duplicate_rate" => ratio(&["duplicates"], &["received"]),
        "mean_assign_hours" => mean("assign_secs", "assigned", 3600.0),
        "mean_contact_hours" => mean("contact_secs", "contacted", 3600.0),
        "mean_decide_hours" => mean("decide_secs", "decided", 3600.0),
        "mean_decide_days" => mean("decide_secs", "decided", 86400.0),
        "mean_assign_wdays" => mean("assign_wdays", "assigned", 1.0),
        "mean_contact_wdays" => mean("contact_wdays", "contacted", 1.0),
        "mean_decide_wdays" => mean("decide_wdays", "decided", 1.0),
        _ => {
            let (p, duration) = name.strip_suffix("_hours")?.split_once('_')?;
            let q = match p {
                "p50" => 0.5,
                "p90" => 0.9,
                "p99" => 0.99,
                _ => return None,
            };
            let duration = DURATIONS.iter().find(|d| d.0 == duration)?.0;
            percentile(duration, q)
        }
    })
}

/// Every measure a query may name: stored ones, then derived ones.
pub fn all_measures() -> Vec<String> {
    let mut names = stored_measures();
    for name in [
        "on_time_rate",
        "extension_rate",
        "reassignment_rate",
        "override_rate",
        "review_rate",
        "overturn_rate",
        "uphold_rate",
        "response_rate",
        "satisfaction_rate",
        "duplicate_rate",
        "mean_assign_hours",
        "mean_contact_hours",
        "mean_decide_hours",
        "mean_decide_days",
        "mean_assign_wdays",
        "mean_contact_wdays",
        "mean_decide_wdays",
    ] {
        names.push(name.to_owned());
    }
    for (d, ..) in DURATIONS {
        for p in ["p50", "p90", "p99"] {
            names.push(format!("{p}_{d}_hours"));
        }
    }
    names
}

/// The headline measures a query gets when it names none.
pub const DEFAULT_MEASURES: &[&str] = &[
    "received",
    "rejected",
    "duplicates",
    "decided",
    "on_time_rate",
    "mean_decide_wdays",
    "p50_decide_hours",
    "p90_decide_hours",
    "p99_decide_hours",
    "extension_rate",
    "reassignment_rate",
    "upheld",
    "review_rate",
    "overturn_rate",
    "response_rate",
    "satisfaction_rate",
    "override_rate",
];

pub fn is_measure(name: &str) -> bool {
    stored_measures().iter().any(|m| m == name) || derived(name).is_some()
}

pub fn is_dimension(name: &str) -> bool {
    DIMENSIONS.contains(&name)
}

/// The period a local day falls in, at `grain` (named by its first day).
pub fn period_of(grain: Grain, day: NaiveDate) -> String {
    let first = match grain {
        Grain::Day | Grain::Unspecified => day,
        Grain::Week => day - chrono::Days::new(u64::from(day.weekday().num_days_from_monday())),
        Grain::Month => day.with_day(1).unwrap_or(day),
        Grain::Quarter => {
            NaiveDate::from_ymd_opt(day.year(), (day.month0() / 3) * 3 + 1, 1).unwrap_or(day)
        }
        Grain::Year => NaiveDate::from_ymd_opt(day.year(), 1, 1).unwrap_or(day),
        Grain::All => return String::new(),
    };
    first.to_string()
}

fn month_aligned(day: NaiveDate) -> bool {
    day.day() == 1
}

impl Breakdown {
    /// The stored measures the answer needs.
    fn reads(&self) -> Vec<String> {
        let mut reads = Vec::new();
        for m in &self.measures {
            match derived(m) {
                Some(d) => reads.extend(d.reads),
                None => reads.push(m.clone()),
            }
        }
        reads.sort();
        reads.dedup();
        reads
    }

    /// Runs the query: rows ordered by period, then dimension values.
    pub async fn run(&self, pool: &PgPool) -> Result<Vec<Row>, sqlx::Error> {
        let coarse = matches!(
            self.grain,
            Grain::Month | Grain::Quarter | Grain::Year | Grain::All
        );
        let table = if coarse && month_aligned(self.from) && month_aligned(self.to) {
            "cube_month"
        } else {
            "cube_day"
        };
        let dims: Vec<String> = self
            .dimensions
            .iter()
            .map(|d| format!("{d}::text"))
            .collect();
        let reads = self.reads();
        let stored = stored_measures();
        if let Some(m) = reads.iter().find(|m| !stored.contains(m)) {
            return Err(sqlx::Error::Protocol(format!(
                "`{m}` is not a stored measure"
            )));
        }
        let sums: Vec<String> = reads.iter().map(|m| format!("sum({m})")).collect();
        let mut sql = format!(
            "SELECT period, ARRAY[{}]::text[] AS dims, ARRAY[{}]::float8[] \
             FROM {table} WHERE period >= $1 AND period < $2",
            dims.join(", "),
            sums.join(", ")
        );
        for (i, (dim, _)) in self.filters.iter().enumerate() {
            sql.push_str(&format!(" AND {dim}::text = ANY(${})", i + 3));
        }
        // A group only where one of the measures read is non-zero (as a cell of the long
        // format existed only for a measure counted).
        let nonzero: Vec<String> = sums.iter().map(|s| format!("{s} <> 0")).collect();
        sql.push_str(&format!(
            " GROUP BY period, dims HAVING {}",
            nonzero.join(" OR ")
        ));
        // Names in `sql` are checked dimension and stored measure names; values are bound.
        let mut query =
            sqlx::query_as::<_, (NaiveDate, Vec<String>, Vec<f64>)>(sqlx::AssertSqlSafe(sql))
                .bind(self.from)
                .bind(self.to);
        for (_, values) in &self.filters {
            query = query.bind(values);
        }
        let rows = query.fetch_all(pool).await?;
        let mut sums = Vec::with_capacity(rows.len() * reads.len());
        for (day, dims, values) in rows {
            for (measure, value) in reads.iter().zip(values) {
                sums.push((day, measure.clone(), dims.clone(), value));
            }
        }
        Ok(self.rows(sums))
    }

    fn rows(&self, sums: Vec<(NaiveDate, String, Vec<String>, f64)>) -> Vec<Row> {
        let mut groups: BTreeMap<(String, Vec<String>), BTreeMap<String, f64>> = BTreeMap::new();
        for (day, measure, dims, value) in sums {
            let group = groups
                .entry((period_of(self.grain, day), dims))
                .or_default();
            *group.entry(measure).or_insert(0.0) += value;
        }
        let formulas: Vec<Option<Derived>> = self.measures.iter().map(|m| derived(m)).collect();
        groups
            .into_iter()
            .map(|((period, dimensions), sums)| {
                let get = |m: &str| sums.get(m).copied().unwrap_or(0.0);
                let values = self
                    .measures
                    .iter()
                    .zip(&formulas)
                    .map(|(m, f)| match f {
                        Some(d) => (d.compute)(&get),
                        None => get(m),
                    })
                    .collect();
                Row {
                    period,
                    dimensions,
                    values,
                }
            })
            .collect()
    }
}
