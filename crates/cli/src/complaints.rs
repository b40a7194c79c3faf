//! `redress complaints get | list`: the redacted view of registered complaints (intake).

use redress_proto::{
    common::v1::PageRequest,
    intake::v1::{
        GetComplaintRequest, ListComplaintsRequest, intake_service_client::IntakeServiceClient,
    },
};

use crate::grpc::{Target, failure, print_json};

/// Where intake listens by default (`redress dev`: the first port).
const DEFAULT_ADDR: &str = "http://127.0.0.1:50051";

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(clap::Subcommand)]
enum Verb {
    /// One complaint, by id or reference number (RD-…).
    Get { id: String },
    /// The newest complaints.
    List {
        #[arg(long, default_value_t = 20)]
        page_size: u32,
    },
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let addr = crate::grpc::default_addr("REDRESS_INTAKE_ADDR", DEFAULT_ADDR);
    let mut client = IntakeServiceClient::new(args.target.channel(&addr).await?);
    match args.verb {
        Verb::Get { id } => {
            let request = args.target.request(GetComplaintRequest { id })?;
            print_json(
                &client
                    .get_complaint(request)
                    .await
                    .map_err(failure)?
                    .into_inner(),
            )
        }
        Verb::List { page_size } => {
            let request = ListComplaintsRequest {
                page: Some(PageRequest {
                    page_size,
                    page_token: String::new(),
                }),
                ..Default::default()
            };
            let list = client
                .list_complaints(args.target.request(request)?)
                .await
                .map_err(failure)?
                .into_inner();
            for c in &list.complaints {
                println!("{}  complaint {}  {}", c.reference, c.complaint_id, c.title);
            }
            Ok(())
        }
    }
}
