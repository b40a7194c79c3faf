//! gRPC `redress.intake.v1.IntakeService`.

use std::sync::Arc;

use prost::Message as _;
use redress_proto::{
    common::v1::Channel,
    intake::v1::{
        Complaint, Contact, GetComplaintRequest, GetContactRequest, ListComplaintsRequest,
        ListComplaintsResponse, SubmissionReceipt, SubmissionRejected, SubmitComplaintRequest,
        intake_service_server::IntakeService,
    },
};
use redress_runtime::{Principal, event::from_timestamp, require};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    domain::channel,
    register::Outcome,
    registrar::{Registrar, Shared},
    store::{self, Filter, StoreError},
};

/// Roles that may read the redacted view of complaints (service identities may too).
const READERS: &[&str] = &[
    "specialist",
    "compliance",
    "analyst",
    "product",
    "educator",
    "admin",
];
/// Roles that may read decrypted contact details (DESIGN §7).
const CONTACT_READERS: &[&str] = &["specialist", "compliance", "service:notification"];

pub struct Api {
    pub shared: Arc<Shared>,
    pub registrar: Registrar,
}

#[tonic::async_trait]
impl IntakeService for Api {
    async fn submit_complaint(
        &self,
        request: Request<SubmitComplaintRequest>,
    ) -> Result<Response<SubmissionReceipt>, Status> {
        let principal = principal(&request)?;
        let Some(submission) = request.into_inner().submission else {
            return Err(Status::invalid_argument("submission: required"));
        };
        may_submit(&principal, submission.channel)?;
        let outcome = self
            .registrar
            .submit(submission.encode_to_vec().into())
            .await
            .ok_or_else(|| Status::unavailable("intake is shutting down"))?
            .map_err(|e| Status::unavailable(format!("registration failed, retry: {e}")))?;
        match outcome {
            Outcome::Registered(receipt) | Outcome::Duplicate(receipt) => {
                Ok(Response::new(receipt))
            }
            Outcome::Rejected(violations) => {
                let message = violations
                    .iter()
                    .map(|v| {
                        format!(
                            "{}: {} ({})",
                            if v.field.is_empty() {
                                "submission"
                            } else {
                                &v.field
                            },
                            v.message,
                            v.code
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                let details = SubmissionRejected { violations }.encode_to_vec();
                Err(Status::with_details(
                    tonic::Code::InvalidArgument,
                    message,
                    details.into(),
                ))
            }
        }
    }

    async fn get_complaint(
        &self,
        request: Request<GetComplaintRequest>,
    ) -> Result<Response<Complaint>, Status> {
        may_read(&request)?;
        let id = request.into_inner().id;
        match store::get(self.shared.db.pool(), id.trim())
            .await
            .map_err(internal)?
        {
            Some(complaint) => Ok(Response::new(complaint)),
            None => Err(Status::not_found(format!("no complaint `{id}`"))),
        }
    }

    async fn list_complaints(
        &self,
        request: Request<ListComplaintsRequest>,
    ) -> Result<Response<ListComplaintsResponse>, Status> {
        may_read(&request)?;
        let r = request.into_inner();
        let channel = match r.channel {
            0 => None,
            n => Some(
                Channel::try_from(n)
                    .map_err(|_| Status::invalid_argument(format!("channel: unknown value {n}")))?,
            ),
        };
        let time = |field: &str, t: Option<&redress_proto::types::Timestamp>| {
            t.map(|t| {
                from_timestamp(t).ok_or_else(|| {
                    Status::invalid_argument(format!("{field}: not a valid timestamp"))
                })
            })
            .transpose()
        };
        let filter = Filter {
            channel,
            consumer_ref: Some(r.consumer_ref).filter(|c| !c.is_empty()),
            received_after: time("receivedAfter", r.received_after.as_ref())?,
            received_before: time("receivedBefore", r.received_before.as_ref())?,
        };
        let page = r.page.unwrap_or_default();
        let (complaints, next_page_token) = store::list(
            self.shared.db.pool(),
            &filter,
            page.page_size,
            &page.page_token,
        )
        .await
        .map_err(|e| match e {
            StoreError::PageToken => {
                Status::invalid_argument("page.pageToken: not a token this service issued")
            }
            other => internal(other),
        })?;
        Ok(Response::new(ListComplaintsResponse {
            complaints,
            next_page_token,
        }))
    }

    async fn get_contact(
        &self,
        request: Request<GetContactRequest>,
    ) -> Result<Response<Contact>, Status> {
        let (principal, role) = require(&request, CONTACT_READERS)?;
        let r = request.into_inner();
        let id = Uuid::parse_str(r.complaint_id.trim())
            .map_err(|_| Status::invalid_argument("complaintId: not a complaint id"))?;
        if r.purpose.trim().is_empty() {
            return Err(Status::invalid_argument(
                "purpose: required — every read of contact details is audited with its purpose",
            ));
        }
        let contact = store::read_contact(
            self.shared.db.pool(),
            &self.shared.vault,
            id,
            principal.actor(&role),
            r.purpose.trim(),
        )
        .await
        .map_err(internal)?;
        contact
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("no complaint `{id}`")))
    }
}

fn principal<T>(request: &Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no authenticated caller"))
}

/// A specialist may submit for any channel; a channel's service identity
/// (`service:channel-<channel>`) only for its own.
fn may_submit(principal: &Principal, channel_value: i32) -> Result<(), Status> {
    if principal.has_role("specialist") {
        return Ok(());
    }
    let own = Channel::try_from(channel_value)
        .map(|c| format!("service:channel-{}", channel::token(c)))
        .unwrap_or_default();
    if principal.has_role(&own) {
        return Ok(());
    }
    Err(Status::permission_denied(format!(
        "submitting needs the role specialist or {}",
        if own.is_empty() {
            "service:channel-<channel>".to_owned()
        } else {
            own
        }
    )))
}

fn may_read<T>(request: &Request<T>) -> Result<(), Status> {
    let principal = principal(request)?;
    if principal.roles.iter().any(|r| r.starts_with("service:")) {
        return Ok(());
    }
    require(request, READERS).map(|_| ())
}

fn internal(error: StoreError) -> Status {
    tracing::error!(%error, "intake store");
    Status::internal("intake could not complete the call; it has been logged")
}
