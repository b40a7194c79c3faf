//! `redress report`: the monthly management or regulator report from analytics' GetReport,
//! written as HTML, optionally printed to PDF by headless Chromium, and every table as CSV.

use std::path::{Path, PathBuf};

use anyhow::Context;
use redress_proto::analytics::v1::{
    GetReportRequest, ReportFormat, ReportKind, analytics_service_client::AnalyticsServiceClient,
};

use crate::grpc::{Target, failure};

/// Where analytics listens by default (`redress dev`: slot 4 after 50051).
const DEFAULT_ADDR: &str = "http://127.0.0.1:50055";

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Kind {
    /// 管理层报告: headline figures, trends, categories, root causes, satisfaction.
    Management,
    /// 投诉数据报送: the regulator statistics report.
    Regulator,
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// The month, YYYY-MM.
    #[arg(long)]
    month: String,
    #[arg(long, value_enum, default_value = "management")]
    kind: Kind,
    /// The HTML report.
    #[arg(long, default_value = "report.html")]
    out: PathBuf,
    /// Also print it to this PDF (needs chromium).
    #[arg(long)]
    pdf: Option<PathBuf>,
    /// Also write every table as CSV into this directory.
    #[arg(long)]
    csv_dir: Option<PathBuf>,
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    // Chromium is checked before asking the service, so a missing browser costs nothing.
    if args.pdf.is_some() {
        redress_analytics::pdf::chromium()?;
    }
    let addr = crate::grpc::default_addr("REDRESS_ANALYTICS_ADDR", DEFAULT_ADDR);
    let mut client = AnalyticsServiceClient::new(args.target.channel(&addr).await?);
    let kind = match args.kind {
        Kind::Management => ReportKind::Management,
        Kind::Regulator => ReportKind::Regulator,
    };
    let ask = |format: ReportFormat| GetReportRequest {
        kind: kind as i32,
        month: args.month.clone(),
        format: format as i32,
    };
    let html = client
        .get_report(args.target.request(ask(ReportFormat::Html))?)
        .await
        .map_err(failure)?
        .into_inner();
    write(&args.out, &html.content)?;
    println!("{}", args.out.display());
    if let Some(pdf) = &args.pdf {
        redress_analytics::pdf::print(&args.out, pdf).await?;
        println!("{}", pdf.display());
    }
    if let Some(dir) = &args.csv_dir {
        let csv = client
            .get_report(args.target.request(ask(ReportFormat::Csv))?)
            .await
            .map_err(failure)?
            .into_inner();
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        // The service names the file; only its last component is used.
        let name = Path::new(&csv.file_name)
            .file_name()
            .map_or_else(|| PathBuf::from("report.csv"), PathBuf::from);
        let path = dir.join(name);
        write(&path, &csv.content)?;
        println!("{}", path.display());
    }
    Ok(())
}
