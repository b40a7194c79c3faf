//! Tally: counts the complaints received per channel and answers how many.

use redress_proto::{
    common::v1::Channel,
    events::v1::{ComplaintReceived, FieldViolation},
    example::v1::{
        CountReceivedRequest, CountReceivedResponse,
        tally_service_server::{TallyService, TallyServiceServer},
    },
    vocab::code,
};
use redress_runtime::{
    Consumer, EventHandler, HandleError, Incoming, Principal, Role, Running, RuntimeConfig,
    Service, ServiceConfig, StartError, db::Database, grpc,
};
use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

pub const SERVICE: &str = "tally";
static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, clap::Parser)]
pub struct Config {
    #[command(flatten)]
    pub runtime: RuntimeConfig,
}

impl ServiceConfig for Config {
    fn runtime(&self) -> &RuntimeConfig {
        &self.runtime
    }
}

pub async fn run(config: Config, shutdown: CancellationToken) -> Result<Running, StartError> {
    let mut service =
        Service::start(SERVICE, "tally", config.runtime, &MIGRATIONS, shutdown).await?;
    service.consume(Consumer::durable(SERVICE).on::<ComplaintReceived>(Count))?;
    let api = Api {
        db: service.db.clone(),
    };
    service.serve(TallyServiceServer::new(api)).await
}

/// Runs in the consumer's transaction, once per event id (the runtime's inbox).
struct Count;

impl EventHandler<ComplaintReceived> for Count {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        event: Incoming<ComplaintReceived>,
    ) -> Result<(), HandleError> {
        let channel = event.payload.complaint.map_or(0, |c| c.channel);
        sqlx::query(
            "INSERT INTO received (channel, count) VALUES ($1, 1)
             ON CONFLICT (channel) DO UPDATE SET count = received.count + 1",
        )
        .bind(channel)
        .execute(conn)
        .await?;
        Ok(())
    }
}

struct Api {
    db: Database,
}

#[tonic::async_trait]
impl TallyService for Api {
    async fn count_received(
        &self,
        request: Request<CountReceivedRequest>,
    ) -> Result<Response<CountReceivedResponse>, Status> {
        Principal::of(&request)?.require(&[Role::Analyst, Role::Admin])?;
        let channel = grpc::enum_value::<Channel>("channel", request.get_ref().channel)
            .and_then(|c| {
                c.ok_or_else(|| FieldViolation::new("channel", code::REQUIRED, "name one"))
            })
            .map_err(grpc::invalid)?;
        let count: Option<i64> =
            sqlx::query_scalar("SELECT count FROM received WHERE channel = $1")
                .bind(channel as i32)
                .fetch_optional(self.db.pool())
                .await
                .map_err(|e| grpc::database("count", &e))?;
        let received = u64::try_from(count.unwrap_or(0)).unwrap_or(0);
        Ok(Response::new(CountReceivedResponse { received }))
    }
}
