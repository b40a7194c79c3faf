//! gRPC `redress.intake.v1.IntakeService`.
//!
//! Who may call what is an explicit list per RPC (DESIGN §7): staff read the redacted view;
//! only specialists, compliance reviewers and the notification service read contact details;
//! a channel's own identity submits only for its channel. Every request field is checked
//! into INVALID_ARGUMENT naming the field.

use std::sync::Arc;

use prost::Message as _;
use redress_proto::{
    Violations,
    common::v1::Channel,
    events::v1::ComplaintSummary,
    intake::v1::{
        Contact, GetComplaintRequest, GetContactRequest, ListComplaintsRequest,
        ListComplaintsResponse, SubmissionReceipt, SubmissionRejected, SubmitComplaintRequest,
        intake_service_server::IntakeService,
    },
    vocab::TextKind,
};
use redress_runtime::{Principal, Role, ServiceId, grpc, paging::Pager};
use tonic::{Request, Response, Status};

use crate::{
    register::Outcome,
    registrar::{Registrar, Shared},
    store::{self, Filter, StoreError},
};

/// Who may read the redacted view of complaints.
const READERS: &[Role] = &[
    Role::Specialist,
    Role::Compliance,
    Role::Analyst,
    Role::Product,
    Role::Educator,
    Role::Admin,
    Role::Service(ServiceId::Notification),
    Role::Service(ServiceId::Audit),
];
/// Who may read decrypted contact details (DESIGN §7).
const CONTACT_READERS: &[Role] = &[
    Role::Specialist,
    Role::Compliance,
    Role::Service(ServiceId::Notification),
];
/// A purpose long enough to say why, short enough to log and publish.
const PURPOSE_CHARS: usize = 200;

pub struct Api {
    pub shared: Arc<Shared>,
    pub registrar: Registrar,
    pub pager: Pager,
}

#[tonic::async_trait]
impl IntakeService for Api {
    async fn submit_complaint(
        &self,
        request: Request<SubmitComplaintRequest>,
    ) -> Result<Response<SubmissionReceipt>, Status> {
        let principal = Principal::of(&request)?.clone();
        let Some(submission) = request.into_inner().submission else {
            return Err(grpc::invalid(Violations::one(
                "submission",
                "required",
                "required",
            )));
        };
        may_submit(&principal, submission.channel)?;
        let outcome = self
            .registrar
            .submit(submission.encode_to_vec().into())
            .await
            .ok_or_else(|| Status::unavailable("intake is shutting down; retry"))?
            .map_err(|e| grpc::database("registering a complaint", &e))?;
        match outcome {
            Outcome::Registered(receipt) | Outcome::Duplicate(receipt) => {
                Ok(Response::new(receipt))
            }
            Outcome::Rejected(violations) => {
                let message = Violations(violations.clone()).to_string();
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
    ) -> Result<Response<ComplaintSummary>, Status> {
        Principal::of(&request)?.require(READERS)?;
        let id = grpc::text("id", &request.get_ref().id, 64, TextKind::Line, true)
            .map_err(grpc::invalid)?;
        match store::get(self.shared.db.pool(), &id)
            .await
            .map_err(status)?
        {
            Some(complaint) => Ok(Response::new(complaint)),
            None => Err(Status::not_found(format!("no complaint `{id}`"))),
        }
    }

    async fn list_complaints(
        &self,
        request: Request<ListComplaintsRequest>,
    ) -> Result<Response<ListComplaintsResponse>, Status> {
        Principal::of(&request)?.require(READERS)?;
        let r = request.into_inner();
        let mut v = Violations::default();
        let channel = v
            .check(grpc::enum_value::<Channel>("channel", r.channel))
            .flatten();
        let consumer_ref = v
            .check(grpc::text(
                "consumerRef",
                &r.consumer_ref,
                128,
                TextKind::Line,
                false,
            ))
            .filter(|c| !c.is_empty());
        let received_after = v
            .check(grpc::time("receivedAfter", r.received_after.as_ref()))
            .flatten();
        let received_before = v
            .check(grpc::time("receivedBefore", r.received_before.as_ref()))
            .flatten();
        if !v.is_empty() {
            return Err(grpc::invalid(v));
        }
        let filter = Filter {
            channel,
            consumer_ref,
            received_after,
            received_before,
        };
        let page = r.page.unwrap_or_default();
        let page = store::list(
            self.shared.db.pool(),
            &self.pager,
            &filter,
            page.page_size,
            &page.page_token,
        )
        .await
        .map_err(status)?;
        Ok(Response::new(ListComplaintsResponse {
            complaints: page.items,
            next_page_token: page.next_page_token,
        }))
    }

    async fn get_contact(
        &self,
        request: Request<GetContactRequest>,
    ) -> Result<Response<Contact>, Status> {
        let principal = Principal::of(&request)?.clone();
        let role = principal.require(CONTACT_READERS)?;
        let r = request.into_inner();
        let mut v = Violations::default();
        let id = v.check(redress_proto::vocab::parse_id(
            "complaintId",
            &r.complaint_id,
        ));
        let purpose = v.check(grpc::text(
            "purpose",
            &r.purpose,
            PURPOSE_CHARS,
            TextKind::Line,
            true,
        ));
        let (Some(id), Some(purpose)) = (id, purpose) else {
            return Err(grpc::invalid(v));
        };
        let contact = store::read_contact(
            self.shared.db.pool(),
            &self.shared.vault,
            id,
            principal.actor(role),
            &purpose,
        )
        .await
        .map_err(status)?;
        contact
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("no complaint `{id}`")))
    }
}

/// A specialist may submit for any channel; a channel's own identity
/// (`service:channel-<channel>`) only for its channel.
fn may_submit(principal: &Principal, channel_value: i32) -> Result<(), Status> {
    let mut allowed = vec![Role::Specialist];
    if let Ok(channel) = Channel::try_from(channel_value)
        && channel != Channel::Unspecified
    {
        allowed.push(Role::Channel(channel));
    }
    principal.require(&allowed).map(|_| ())
}

fn status(error: StoreError) -> Status {
    match error {
        StoreError::Database(e) => grpc::database("intake store", &e),
        StoreError::PageToken(e) => e.into(),
        StoreError::Vault(_) | StoreError::Corrupt(_) => {
            tracing::error!(%error, "intake store");
            Status::internal("intake could not complete the call; it has been logged")
        }
    }
}
