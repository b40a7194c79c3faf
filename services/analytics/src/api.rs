//! `redress.analytics.v1.AnalyticsService`: every RPC checks the caller's role; a department
//! head sees only their own department's figures.

use std::{pin::Pin, sync::Arc};

use chrono::NaiveDate;
use futures::Stream;
use redress_proto::{
    analytics::v1::{
        self as pb, BreakdownRequest, BreakdownResponse, CsvChunk, ExportCsvRequest,
        GetReportRequest, GetReportResponse, Grain, ListAlertsRequest, ListAlertsResponse,
        ReportFormat, ReportKind, TrendRequest, TrendResponse,
        analytics_service_server::AnalyticsService,
    },
    events::v1::FieldViolation,
    vocab::{Violations, code},
};
use redress_runtime::{
    Principal, Role,
    db::Database,
    grpc,
    paging::{Pager, page_size},
};
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    alerts, csv,
    query::{self, Breakdown, DEFAULT_MEASURES},
    report::{self, Reports},
};

/// Who may read figures (DESIGN §1: 数据分析师 and the roles that act on figures).
pub const READERS: &[Role] = &[
    Role::Analyst,
    Role::Specialist,
    Role::Compliance,
    Role::Product,
    Role::Admin,
    Role::DepartmentHead,
];

pub struct Api {
    pub db: Database,
    pub pager: Pager,
    pub reports: Arc<Reports>,
}

/// The caller's scope: `Some(department)` for a department head, `None` for the others.
fn scope<T>(request: &Request<T>) -> Result<Option<String>, Status> {
    let principal = Principal::of(request)?;
    let role = principal.require(READERS)?;
    // `require` names the first reader role held: a department head only without another.
    if role != Role::DepartmentHead {
        return Ok(None);
    }
    match principal.department.as_deref() {
        Some(d) if !d.is_empty() => Ok(Some(d.to_owned())),
        _ => Err(Status::permission_denied(
            "a department head's token must name the department",
        )),
    }
}

fn date(field: &str, text: &str) -> Result<NaiveDate, FieldViolation> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| FieldViolation::new(field, code::INVALID_FORMAT, "a local date, YYYY-MM-DD"))
}

/// Checks a query's fields; a department head's queries are limited to their department.
pub fn breakdown(q: &pb::Query, department: Option<&str>) -> Result<Breakdown, Status> {
    let mut violations = Vec::new();
    for (i, d) in q.dimensions.iter().enumerate() {
        if !query::is_dimension(d) {
            violations.push(FieldViolation::new(
                &format!("query.dimensions[{i}]"),
                code::INVALID_FORMAT,
                "not a dimension (services/analytics/README.md lists them)",
            ));
        }
    }
    for (i, m) in q.measures.iter().enumerate() {
        if !query::is_measure(m) {
            violations.push(FieldViolation::new(
                &format!("query.measures[{i}]"),
                code::INVALID_FORMAT,
                "not a measure (services/analytics/README.md lists them)",
            ));
        }
    }
    let mut filters = Vec::new();
    for (i, f) in q.filters.iter().enumerate() {
        if !query::is_dimension(&f.dimension) {
            violations.push(FieldViolation::new(
                &format!("query.filters[{i}].dimension"),
                code::INVALID_FORMAT,
                "not a dimension",
            ));
        } else if department.is_none() || f.dimension != "department" {
            filters.push((f.dimension.clone(), f.values.clone()));
        }
    }
    if let Some(d) = department {
        filters.push(("department".to_owned(), vec![d.to_owned()]));
    }
    let grain = match grpc::enum_value::<Grain>("query.grain", q.grain) {
        Ok(Some(Grain::Unspecified)) | Ok(None) => Grain::Month,
        Ok(Some(g)) => g,
        Err(v) => {
            violations.push(v);
            Grain::Month
        }
    };
    let from = date("query.from", &q.from)
        .map_err(|v| violations.push(v))
        .ok();
    let to = date("query.to", &q.to).map_err(|v| violations.push(v)).ok();
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        violations.push(FieldViolation::new(
            "query.to",
            code::OUT_OF_RANGE,
            "must be after `from`",
        ));
    }
    match (from, to, violations.is_empty()) {
        (Some(from), Some(to), true) => Ok(Breakdown {
            dimensions: q.dimensions.clone(),
            measures: if q.measures.is_empty() {
                DEFAULT_MEASURES.iter().map(|m| (*m).to_owned()).collect()
            } else {
                q.measures.clone()
            },
            grain,
            from,
            to,
            filters,
        }),
        _ => Err(grpc::invalid(Violations(violations))),
    }
}

/// A page token for a breakdown names the offset of the next row and the query it belongs
/// to (a hash as the token's id), so it cannot be carried to another query.
fn query_id(b: &Breakdown) -> Uuid {
    let digest = Sha256::digest(format!("{b:?}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

fn rows_pb(rows: Vec<query::Row>) -> Vec<pb::Row> {
    rows.into_iter()
        .map(|r| pb::Row {
            period: r.period,
            dimensions: r.dimensions,
            values: r.values,
        })
        .collect()
}

type CsvStream = Pin<Box<dyn Stream<Item = Result<CsvChunk, Status>> + Send>>;

#[tonic::async_trait]
impl AnalyticsService for Api {
    async fn breakdown(
        &self,
        request: Request<BreakdownRequest>,
    ) -> Result<Response<BreakdownResponse>, Status> {
        let department = scope(&request)?;
        let r = request.get_ref();
        let b = breakdown(&r.query.clone().unwrap_or_default(), department.as_deref())?;
        let page = r.page.clone().unwrap_or_default();
        let id = query_id(&b);
        let offset = match self.pager.decode(&page.page_token)? {
            None => 0,
            Some((at, token_id)) if token_id == id => at.timestamp_micros(),
            Some(_) => {
                return Err(Status::invalid_argument(
                    "page.pageToken: belongs to another query",
                ));
            }
        };
        let size = page_size(page.page_size);
        let rows = b
            .run(self.db.pool())
            .await
            .map_err(|e| grpc::database("breakdown", &e))?;
        let start = usize::try_from(offset).unwrap_or(0).min(rows.len());
        let end = start
            .saturating_add(usize::try_from(size).unwrap_or(0))
            .min(rows.len());
        let next_page_token = if end < rows.len() {
            let at = chrono::DateTime::from_timestamp_micros(end as i64).unwrap_or_default();
            self.pager.encode(at, id)
        } else {
            String::new()
        };
        let rows = rows_pb(rows.into_iter().skip(start).take(end - start).collect());
        Ok(Response::new(BreakdownResponse {
            dimensions: b.dimensions,
            measures: b.measures,
            rows,
            next_page_token,
        }))
    }

    async fn trend(
        &self,
        request: Request<TrendRequest>,
    ) -> Result<Response<TrendResponse>, Status> {
        let department = scope(&request)?;
        let r = request.get_ref();
        if r.measure.is_empty() {
            return Err(grpc::invalid(FieldViolation::new(
                "measure",
                code::REQUIRED,
                "name one",
            )));
        }
        let q = pb::Query {
            dimensions: if r.split_by.is_empty() {
                vec![]
            } else {
                vec![r.split_by.clone()]
            },
            measures: vec![r.measure.clone()],
            grain: r.grain,
            from: r.from.clone(),
            to: r.to.clone(),
            filters: r.filters.clone(),
        };
        let b = breakdown(&q, department.as_deref())?;
        let rows = b
            .run(self.db.pool())
            .await
            .map_err(|e| grpc::database("trend", &e))?;
        let mut series: std::collections::BTreeMap<String, Vec<pb::Point>> = Default::default();
        for row in rows {
            let key = row.dimensions.first().cloned().unwrap_or_default();
            series.entry(key).or_default().push(pb::Point {
                period: row.period,
                value: row.values.first().copied().unwrap_or(0.0),
            });
        }
        Ok(Response::new(TrendResponse {
            measure: r.measure.clone(),
            series: series
                .into_iter()
                .map(|(key, points)| pb::Series { key, points })
                .collect(),
        }))
    }

    async fn list_alerts(
        &self,
        request: Request<ListAlertsRequest>,
    ) -> Result<Response<ListAlertsResponse>, Status> {
        scope(&request)?;
        let r = request.get_ref();
        let page = r.page.clone().unwrap_or_default();
        let after = self.pager.decode(&page.page_token)?;
        let size = page_size(page.page_size);
        let rows = alerts::list(self.db.pool(), r.open_only, after, size + 1)
            .await
            .map_err(|e| grpc::database("alerts", &e))?;
        let page = self.pager.page(
            rows,
            size,
            |a| (a.raised_at, a.alert_id),
            alerts::Stored::into_pb,
        );
        Ok(Response::new(ListAlertsResponse {
            alerts: page.items,
            next_page_token: page.next_page_token,
        }))
    }

    async fn get_report(
        &self,
        request: Request<GetReportRequest>,
    ) -> Result<Response<GetReportResponse>, Status> {
        let department = scope(&request)?;
        let r = request.get_ref();
        let mut violations = Vec::new();
        let kind = match grpc::enum_value::<ReportKind>("kind", r.kind) {
            Ok(Some(ReportKind::Unspecified)) | Ok(None) => {
                violations.push(FieldViolation::new(
                    "kind",
                    code::REQUIRED,
                    "management or regulator",
                ));
                ReportKind::Management
            }
            Ok(Some(k)) => k,
            Err(v) => {
                violations.push(v);
                ReportKind::Management
            }
        };
        let format = match grpc::enum_value::<ReportFormat>("format", r.format) {
            Ok(Some(ReportFormat::Csv)) => ReportFormat::Csv,
            Ok(_) => ReportFormat::Html,
            Err(v) => {
                violations.push(v);
                ReportFormat::Html
            }
        };
        let month = report::month(&r.month).map_err(|v| violations.push(v)).ok();
        let Some(month) = month.filter(|_| violations.is_empty()) else {
            return Err(grpc::invalid(Violations(violations)));
        };
        let rendered = self
            .reports
            .render(self.db.pool(), kind, month, department.as_deref())
            .await
            .map_err(|e| grpc::database("report", &e))?;
        let (content_type, content, ext) = match format {
            ReportFormat::Csv => ("text/csv; charset=utf-8", rendered.csv, "csv"),
            _ => ("text/html; charset=utf-8", rendered.html, "html"),
        };
        Ok(Response::new(GetReportResponse {
            content_type: content_type.to_owned(),
            content: content.into_bytes(),
            file_name: format!("{}-{}.{ext}", rendered.name, r.month),
        }))
    }

    type ExportCsvStream = CsvStream;

    async fn export_csv(
        &self,
        request: Request<ExportCsvRequest>,
    ) -> Result<Response<Self::ExportCsvStream>, Status> {
        let department = scope(&request)?;
        let q = request.get_ref().query.clone().unwrap_or_default();
        let b = breakdown(&q, department.as_deref())?;
        let rows = b
            .run(self.db.pool())
            .await
            .map_err(|e| grpc::database("export", &e))?;
        let mut header = vec!["period".to_owned()];
        header.extend(b.dimensions.iter().cloned());
        header.extend(b.measures.iter().cloned());
        let mut chunks = vec![csv::line(&header)];
        // Chunks of about 500 rows: a client can write as they come.
        for block in rows.chunks(500) {
            let mut text = String::new();
            for row in block {
                let mut cells = vec![row.period.clone()];
                cells.extend(row.dimensions.iter().cloned());
                cells.extend(row.values.iter().map(|v| csv::number(*v)));
                text.push_str(&csv::line(&cells));
            }
            chunks.push(text);
        }
        let stream = futures::stream::iter(chunks.into_iter().map(|text| {
            Ok(CsvChunk {
                data: text.into_bytes(),
            })
        }));
        Ok(Response::new(Box::pin(stream)))
    }
}
