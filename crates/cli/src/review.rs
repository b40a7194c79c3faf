//! `redress classification review | reclassify`: the specialists' review queue.

use redress_proto::{
    classification::v1::{
        ListReviewQueueRequest, ReclassifyRequest,
        classification_service_client::ClassificationServiceClient,
    },
    common::v1::{PageRequest, Severity},
};

use crate::grpc::{Target, failure, print_json};

/// Where classification listens by default (`redress dev`: the second port).
const DEFAULT_ADDR: &str = "http://127.0.0.1:50052";

#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    target: Target,
    #[arg(long, default_value_t = 20)]
    page_size: u32,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct ReclassifyArgs {
    #[command(flatten)]
    target: Target,
    /// The complaint id.
    complaint: String,
    /// Business category code (`GetTaxonomy` lists them); left as it is when not given.
    #[arg(long, default_value = "")]
    category: String,
    /// Cause code.
    #[arg(long, default_value = "")]
    cause: String,
    /// low, medium, high or critical.
    #[arg(long, value_parser = severity)]
    severity: Option<Severity>,
    /// Why (kept with the labelled example).
    #[arg(long)]
    note: String,
}

fn severity(name: &str) -> Result<Severity, String> {
    Severity::from_name(name).ok_or_else(|| format!("`{name}`: low, medium, high or critical"))
}

async fn client(
    target: &Target,
) -> anyhow::Result<ClassificationServiceClient<tonic::transport::Channel>> {
    let addr = crate::grpc::default_addr("REDRESS_CLASSIFICATION_ADDR", DEFAULT_ADDR);
    Ok(ClassificationServiceClient::new(
        target.channel(&addr).await?,
    ))
}

pub async fn list(args: ListArgs) -> anyhow::Result<()> {
    let mut client = client(&args.target).await?;
    let request = ListReviewQueueRequest {
        page: Some(PageRequest {
            page_size: args.page_size,
            page_token: String::new(),
        }),
    };
    let queue = client
        .list_review_queue(args.target.request(request)?)
        .await
        .map_err(failure)?
        .into_inner();
    if args.json {
        return print_json(&queue);
    }
    for item in &queue.items {
        let c = item.classification.clone().unwrap_or_default();
        let label = |l: &Option<redress_proto::events::v1::TaxonomyLabel>| {
            l.as_ref()
                .map(|l| format!("{} {} ({:.2})", l.code, l.name_zh, l.confidence))
                .unwrap_or_default()
        };
        println!(
            "{}  complaint {}  category {}  cause {}  confidence {:.2}",
            item.reference,
            item.complaint_id,
            label(&c.category),
            label(&c.cause),
            c.confidence
        );
    }
    Ok(())
}

pub async fn reclassify(args: ReclassifyArgs) -> anyhow::Result<()> {
    let mut client = client(&args.target).await?;
    let request = ReclassifyRequest {
        complaint_id: args.complaint,
        category_code: args.category,
        cause_code: args.cause,
        severity: args.severity.map(|s| s as i32).unwrap_or_default(),
        note: args.note,
    };
    let result = client
        .reclassify(args.target.request(request)?)
        .await
        .map_err(failure)?
        .into_inner();
    print_json(&result)
}
