//! Contact details, read from intake's `GetContact` at send time as `service:notification`
//! with the purpose recorded there, held in memory for one send and never stored here.

use std::{path::Path, sync::Arc};

use redress_proto::intake::v1::{
    Contact, GetContactRequest, intake_service_client::IntakeServiceClient,
};
use redress_runtime::{ServiceId, auth::ServiceTokens};
use tonic::{Code, transport::Channel};

#[derive(Debug, thiserror::Error)]
pub enum ContactError {
    /// Intake is unreachable or busy: try again later.
    #[error("intake GetContact: {0}")]
    Unavailable(String),
    /// Intake refused or has no such complaint: retrying will not help.
    #[error("intake GetContact refused: {0}")]
    Refused(String),
}

#[derive(Clone)]
pub struct Contacts {
    client: IntakeServiceClient<Channel>,
    tokens: Arc<ServiceTokens>,
}

impl Contacts {
    pub fn new(intake_url: &str, service_key: &Path) -> Result<Self, String> {
        let tokens = ServiceTokens::from_file(ServiceId::Notification, service_key)
            .map_err(|e| e.to_string())?;
        let channel = Channel::from_shared(intake_url.to_owned())
            .map_err(|e| format!("{intake_url}: {e}"))?
            .connect_lazy();
        Ok(Self {
            client: IntakeServiceClient::new(channel),
            tokens: Arc::new(tokens),
        })
    }

    /// The consumer's contact details for `complaint_id`, read for `purpose`.
    pub async fn get(&self, complaint_id: &str, purpose: &str) -> Result<Contact, ContactError> {
        let token = self
            .tokens
            .token()
            .map_err(|e| ContactError::Refused(e.to_string()))?;
        let mut request = tonic::Request::new(GetContactRequest {
            complaint_id: complaint_id.to_owned(),
            purpose: purpose.to_owned(),
        });
        let bearer = format!("Bearer {token}")
            .parse()
            .map_err(|_| ContactError::Refused("token is not a header value".into()))?;
        request.metadata_mut().insert("authorization", bearer);
        match self.client.clone().get_contact(request).await {
            Ok(reply) => Ok(reply.into_inner()),
            Err(status) => {
                let text = format!("{:?}: {}", status.code(), status.message());
                match status.code() {
                    Code::Unavailable
                    | Code::DeadlineExceeded
                    | Code::ResourceExhausted
                    | Code::Aborted
                    | Code::Internal
                    | Code::Unknown => Err(ContactError::Unavailable(text)),
                    _ => Err(ContactError::Refused(text)),
                }
            }
        }
    }
}
