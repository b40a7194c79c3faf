//! The monthly management report (管理层报告) and the regulator statistics report
//! (投诉数据报送): every figure is a [`Breakdown`] answer, rendered as HTML with SVG charts
//! and as CSV (every table). `redress report` asks for them over gRPC.

use chrono::{Datelike, Months, NaiveDate};
use redress_proto::{
    analytics::v1::{Grain, ReportKind},
    events::v1::FieldViolation,
    vocab::code,
};
use serde::Deserialize;
use sqlx::PgPool;

use crate::{
    csv,
    query::{Breakdown, Row},
    svg,
};

/// Denominators for complaint rates, as versioned data (`data/denominators-v1.toml`).
#[derive(Debug, Clone, Deserialize)]
pub struct Denominators {
    pub version: String,
    pub source: String,
    pub month: Vec<MonthDenominator>,
    /// Partners' business volume per month: the denominators of their complaint rates.
    #[serde(default)]
    pub partner: Vec<PartnerDenominator>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MonthDenominator {
    pub month: String,
    pub customers: u64,
}

/// One partner's business in one month: accounts (loans, policies) open through it.
#[derive(Debug, Clone, Deserialize)]
pub struct PartnerDenominator {
    pub month: String,
    pub partner: String,
    pub accounts: u64,
}

fn days_in_month(day: NaiveDate) -> u32 {
    let first = day.with_day(1).unwrap_or(day);
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(first);
    u32::try_from((next - first).num_days())
        .unwrap_or(30)
        .max(1)
}

pub const DENOMINATORS_V1: &str = include_str!("../data/denominators-v1.toml");

impl Denominators {
    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// A partner's volume over the local days `from..=to` in account-months (each day a
    /// share of its month's accounts); `None` when a month of it has no figure.
    pub fn partner_volume(&self, partner: &str, from: NaiveDate, to: NaiveDate) -> Option<f64> {
        let mut volume = 0.0;
        for day in from.iter_days().take_while(|d| *d <= to) {
            let key = day.format("%Y-%m").to_string();
            let accounts = self
                .partner
                .iter()
                .find(|p| p.partner == partner && p.month == key)?
                .accounts as f64;
            volume += accounts / f64::from(days_in_month(day));
        }
        Some(volume)
    }

    fn customers(&self, month: NaiveDate) -> Option<u64> {
        let key = month.format("%Y-%m").to_string();
        self.month
            .iter()
            .find(|m| m.month == key)
            .map(|m| m.customers)
    }
}

pub struct Reports {
    pub denominators: Denominators,
}

pub struct Table {
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

pub struct Rendered {
    pub name: &'static str,
    pub html: String,
    pub csv: String,
    pub tables: Vec<Table>,
}

/// `YYYY-MM` → the month's first day.
pub fn month(text: &str) -> Result<NaiveDate, FieldViolation> {
    NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d")
        .map_err(|_| FieldViolation::new("month", code::INVALID_FORMAT, "a month, YYYY-MM"))
}

/// The headline measures of the management report, with their Chinese and English labels.
pub const HEADLINE: &[(&str, &str)] = &[
    ("received", "受理投诉 Complaints received"),
    ("rejected", "不予受理 Submissions rejected"),
    ("duplicates", "疑似重复 Suspected duplicates"),
    ("decided", "办结 Decided"),
    ("on_time_rate", "按期办结率 On-time rate"),
    (
        "mean_decide_wdays",
        "平均办理工作日 Mean working days to decision",
    ),
    (
        "p50_decide_hours",
        "办理时长中位数(小时) Median hours to decision",
    ),
    (
        "p90_decide_hours",
        "办理时长P90(小时) P90 hours to decision",
    ),
    ("extension_rate", "延期率 Extension rate"),
    ("reassignment_rate", "转办率 Reassignment rate"),
    ("review_rate", "核查申请率 Review rate"),
    ("overturn_rate", "核查改变率 Overturn rate"),
    ("response_rate", "回访应答率 Follow-up response rate"),
    ("satisfaction_rate", "满意率 Satisfaction rate"),
];

fn fmt(v: f64) -> String {
    csv::number(v)
}

impl Reports {
    fn query(
        &self,
        dims: &[&str],
        measures: &[&str],
        grain: Grain,
        from: NaiveDate,
        to: NaiveDate,
        department: Option<&str>,
    ) -> Breakdown {
        Breakdown {
            dimensions: dims.iter().map(|d| (*d).to_owned()).collect(),
            measures: measures.iter().map(|m| (*m).to_owned()).collect(),
            grain,
            from,
            to,
            filters: department
                .map(|d| vec![("department".to_owned(), vec![d.to_owned()])])
                .unwrap_or_default(),
        }
    }

    /// Renders one report for the month starting `first`.
    pub async fn render(
        &self,
        pool: &PgPool,
        kind: ReportKind,
        first: NaiveDate,
        department: Option<&str>,
    ) -> Result<Rendered, sqlx::Error> {
        let next = first + Months::new(1);
        let year_ago = first - Months::new(11);
        let q = |dims: &[&str], measures: &[&str], grain, from, to| {
            self.query(dims, measures, grain, from, to, department)
        };
        let mut tables = Vec::new();
        let mut charts = Vec::new();
        let label = first.format("%Y-%m").to_string();
        let name = if kind == ReportKind::Regulator {
            "regulator-report"
        } else {
            "management-report"
        };
        let title = if kind == ReportKind::Regulator {
            format!("投诉数据报送 Complaint statistics report {label}")
        } else {
            format!("管理层报告 Management report {label}")
        };

        let measures: Vec<&str> = HEADLINE.iter().map(|h| h.0).collect();
        let head = q(&[], &measures, Grain::All, first, next).run(pool).await?;
        let values = head
            .first()
            .map(|r| r.values.clone())
            .unwrap_or_else(|| vec![0.0; measures.len()]);
        tables.push(Table {
            title: "核心指标 Headline figures".into(),
            header: vec!["measure".into(), "指标".into(), "value".into()],
            rows: HEADLINE
                .iter()
                .zip(&values)
                .map(|((m, l), v)| vec![(*m).to_owned(), (*l).to_owned(), fmt(*v)])
                .collect(),
        });
        let daily = q(&[], &["received"], Grain::Day, first, next)
            .run(pool)
            .await?;
        charts.push(svg::line(
            &format!("每日受理量 Complaints received per day, {label}"),
            &series(&daily),
        ));

        let by = |rows: &[Row]| -> Vec<(String, f64)> {
            let mut items: Vec<(String, f64)> = rows
                .iter()
                .map(|r| {
                    (
                        r.dimensions.join(" / "),
                        r.values.first().copied().unwrap_or(0.0),
                    )
                })
                .collect();
            items.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            items
        };
        let cat = q(
            &["category"],
            &["received", "decided", "on_time_rate", "mean_decide_wdays"],
            Grain::All,
            first,
            next,
        )
        .run(pool)
        .await?;
        charts.push(svg::bars(
            "按业务类别 Complaints by business category",
            &by(&cat),
        ));
        tables.push(table(
            "按业务类别 By business category",
            &["category"],
            &["received", "decided", "on_time_rate", "mean_decide_wdays"],
            &cat,
        ));

        let chan = q(&["channel"], &["received"], Grain::All, first, next)
            .run(pool)
            .await?;
        charts.push(svg::bars("按渠道 Complaints by channel", &by(&chan)));
        tables.push(table(
            "按渠道 By channel",
            &["channel"],
            &["received"],
            &chan,
        ));

        let heat = q(&["category"], &["received"], Grain::Month, year_ago, next)
            .run(pool)
            .await?;
        charts.push(heat_map(&heat, year_ago));
        tables.push(table(
            "按类别和月份 By category and month",
            &["category"],
            &["received"],
            &heat,
        ));

        if kind == ReportKind::Regulator {
            self.regulator(pool, first, department, &mut tables).await?;
        } else {
            let roots = q(&["detail"], &["root_cause"], Grain::All, first, next)
                .run(pool)
                .await?;
            let mut top = by(&roots);
            top.truncate(10);
            charts.push(svg::bars("溯源整改：根因排名 Root causes by count", &top));
            tables.push(table(
                "根因 Root causes",
                &["root_cause_tag"],
                &["root_cause"],
                &roots,
            ));
            let sat = [
                "satisfied",
                "neutral",
                "dissatisfied",
                "no_answer",
                "response_rate",
                "satisfaction_rate",
            ];
            let s = q(&[], &sat, Grain::All, first, next).run(pool).await?;
            tables.push(table("回访满意度 Satisfaction follow-up", &[], &sat, &s));
        }
        let html = html(&title, &charts, &tables);
        let csv = tables_csv(&tables);
        Ok(Rendered {
            name,
            html,
            csv,
            tables,
        })
    }

    async fn regulator(
        &self,
        pool: &PgPool,
        first: NaiveDate,
        department: Option<&str>,
        tables: &mut Vec<Table>,
    ) -> Result<(), sqlx::Error> {
        let next = first + Months::new(1);
        let q = |dims: &[&str], measures: &[&str], from, to| {
            self.query(dims, measures, Grain::All, from, to, department)
        };
        let cc = q(&["category", "cause"], &["received"], first, next)
            .run(pool)
            .await?;
        tables.push(table(
            "按业务类别和投诉原因 By business category and cause",
            &["category", "cause"],
            &["received"],
            &cc,
        ));
        let handling = [
            "decided",
            "mean_decide_wdays",
            "p50_decide_hours",
            "p90_decide_hours",
            "p99_decide_hours",
            "on_time_rate",
        ];
        let h = q(&[], &handling, first, next).run(pool).await?;
        tables.push(table(
            "办理时效 Handling time and on-time rate",
            &[],
            &handling,
            &h,
        ));
        let received = |rows: Vec<Row>| {
            rows.first()
                .and_then(|r| r.values.first().copied())
                .unwrap_or(0.0)
        };
        let mut rows = Vec::new();
        for (label, month) in [
            ("本月 this month", first),
            ("上月 previous month (环比)", first - Months::new(1)),
            (
                "去年同月 same month last year (同比)",
                first - Months::new(12),
            ),
        ] {
            let n = received(
                q(&[], &["received"], month, month + Months::new(1))
                    .run(pool)
                    .await?,
            );
            let customers = self.denominators.customers(month);
            let rate = customers.map_or(String::from("n/a"), |c| fmt(n / c as f64 * 10_000.0));
            rows.push(vec![
                label.to_owned(),
                month.format("%Y-%m").to_string(),
                fmt(n),
                customers.map_or("n/a".into(), |c| c.to_string()),
                rate,
                format!(
                    "{} ({})",
                    self.denominators.version, self.denominators.source
                ),
            ]);
        }
        tables.push(Table {
            title: "投诉率（每万名客户）Complaints per 10,000 customers".into(),
            header: [
                "period",
                "month",
                "received",
                "customers",
                "per_10000_customers",
                "denominator_source",
            ]
            .map(str::to_owned)
            .to_vec(),
            rows,
        });
        Ok(())
    }
}

fn series(rows: &[Row]) -> Vec<(String, f64)> {
    rows.iter()
        .map(|r| {
            (
                r.period.get(5..).unwrap_or_default().to_owned(),
                r.values.first().copied().unwrap_or(0.0),
            )
        })
        .collect()
}

fn heat_map(rows: &[Row], from: NaiveDate) -> String {
    let cols: Vec<String> = (0..12)
        .map(|i| (from + Months::new(i)).format("%y-%m").to_string())
        .collect();
    let mut cats: Vec<String> = rows
        .iter()
        .filter_map(|r| r.dimensions.first().cloned())
        .collect();
    cats.sort();
    cats.dedup();
    let value = |r: usize, c: usize| {
        let month = (from + Months::new(c as u32)).to_string();
        rows.iter()
            .find(|row| row.period == month && row.dimensions.first() == cats.get(r))
            .and_then(|row| row.values.first().copied())
            .unwrap_or(0.0)
    };
    let _ = from.year();
    svg::heat(
        "类别×月份热力图 Complaints by category and month",
        &cats,
        &cols,
        value,
    )
}

fn table(title: &str, dims: &[&str], measures: &[&str], rows: &[Row]) -> Table {
    let mut header = vec!["period".to_owned()];
    header.extend(dims.iter().map(|d| (*d).to_owned()));
    header.extend(measures.iter().map(|m| (*m).to_owned()));
    Table {
        title: title.to_owned(),
        header,
        rows: rows
            .iter()
            .map(|r| {
                let mut cells = vec![r.period.clone()];
                cells.extend(r.dimensions.iter().cloned());
                cells.extend(r.values.iter().map(|v| fmt(*v)));
                cells
            })
            .collect(),
    }
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn html(title: &str, charts: &[String], tables: &[Table]) -> String {
    let mut s = format!(
        "<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>body{{font-family:'Noto Sans CJK SC','Noto Sans SC',sans-serif;margin:24px}}\
         table{{border-collapse:collapse;margin:8px 0 24px}}td,th{{border:1px solid #bbb;padding:2px 8px;font-size:12px}}\
         td{{text-align:right}}@media print{{svg{{page-break-inside:avoid}}}}</style></head><body><h1>{}</h1>",
        esc(title),
        esc(title)
    );
    for chart in charts {
        s.push_str("<figure>");
        s.push_str(chart);
        s.push_str("</figure>");
    }
    for t in tables {
        s.push_str(&format!("<h2>{}</h2><table><tr>", esc(&t.title)));
        for h in &t.header {
            s.push_str(&format!("<th>{}</th>", esc(h)));
        }
        s.push_str("</tr>");
        for row in &t.rows {
            s.push_str("<tr>");
            for c in row {
                s.push_str(&format!("<td>{}</td>", esc(c)));
            }
            s.push_str("</tr>");
        }
        s.push_str("</table>");
    }
    s.push_str("</body></html>");
    s
}

/// Every table, one after another, each headed by its title on a line of its own.
pub fn tables_csv(tables: &[Table]) -> String {
    let mut out = String::new();
    for t in tables {
        out.push_str(&csv::line(std::slice::from_ref(&t.title)));
        out.push_str(&csv::line(&t.header));
        for row in &t.rows {
            out.push_str(&csv::line(row));
        }
        out.push_str("\r\n");
    }
    out
}
