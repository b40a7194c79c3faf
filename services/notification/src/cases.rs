//! Case-coordination's `CaseService`, called as `service:notification`: a survey answer (回访)
//! becomes `RecordSatisfaction` on the case. Like `contact`, errors are split into "try again
//! later" and "retrying will not help", so the due work that calls it knows which it is.

use std::{path::Path, sync::Arc};

use redress_proto::{
    cases::v1::{
        Case, GetCaseRequest, RecordSatisfactionRequest, case_service_client::CaseServiceClient,
    },
    events::v1::Satisfaction,
};
use redress_runtime::{ServiceId, auth::ServiceTokens};
use tonic::{Code, transport::Channel};

#[derive(Debug, thiserror::Error)]
pub enum CasesError {
    /// Case-coordination is unreachable or busy: try again later.
    #[error("case-coordination: {0}")]
    Unavailable(String),
    /// The case changed between our read and our write: read it again.
    #[error("case-coordination: the case changed meanwhile: {0}")]
    Stale(String),
    /// Case-coordination refused (no such case, wrong state, not allowed): retrying will
    /// not help.
    #[error("case-coordination refused: {0}")]
    Refused(String),
}

#[derive(Clone)]
pub struct Cases {
    client: CaseServiceClient<Channel>,
    tokens: Arc<ServiceTokens>,
}

impl Cases {
    pub fn new(cases_url: &str, service_key: &Path) -> Result<Self, String> {
        let tokens = ServiceTokens::from_file(ServiceId::Notification, service_key)
            .map_err(|e| e.to_string())?;
        // Lazy: case-coordination may start after us, or be down; the due work retries.
        let channel = Channel::from_shared(cases_url.to_owned())
            .map_err(|e| format!("{cases_url}: {e}"))?
            // A stuck call must not hold the job's transaction for long.
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(10))
            .connect_lazy();
        Ok(Self {
            client: CaseServiceClient::new(channel),
            tokens: Arc::new(tokens),
        })
    }

    fn request<T>(&self, message: T) -> Result<tonic::Request<T>, CasesError> {
        let token = self
            .tokens
            .token()
            .map_err(|e| CasesError::Refused(e.to_string()))?;
        let bearer = format!("Bearer {token}")
            .parse()
            .map_err(|_| CasesError::Refused("token is not a header value".into()))?;
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert("authorization", bearer);
        Ok(request)
    }

    pub async fn get(&self, case_id: &str) -> Result<Case, CasesError> {
        let request = self.request(GetCaseRequest {
            case_id: case_id.to_owned(),
        })?;
        self.client
            .clone()
            .get_case(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(classify)
    }

    pub async fn record_satisfaction(
        &self,
        case_id: &str,
        expected_version: u64,
        satisfaction: Satisfaction,
        comment: &str,
    ) -> Result<Case, CasesError> {
        let request = self.request(RecordSatisfactionRequest {
            case_id: case_id.to_owned(),
            expected_version,
            satisfaction: satisfaction.into(),
            comment: comment.to_owned(),
        })?;
        self.client
            .clone()
            .record_satisfaction(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(classify)
    }
}

fn classify(status: tonic::Status) -> CasesError {
    let text = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        Code::Aborted => CasesError::Stale(text),
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::ResourceExhausted
        | Code::Cancelled
        | Code::Internal
        | Code::Unknown => CasesError::Unavailable(text),
        _ => CasesError::Refused(text),
    }
}
