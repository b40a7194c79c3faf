//! GetCase and ListCases.

use redress_proto::vocab::TextKind;
use redress_proto::{Violations, cases::v1 as api, common::v1::Severity, events::v1::CaseState};
use redress_runtime::grpc;
use tonic::{Request, Response, Status};

use super::{Api, Caller, READERS, may_see, respond, status};
use crate::{
    domain::{CaseError, State},
    store,
};

pub(super) async fn get_case(
    api: &Api,
    request: Request<api::GetCaseRequest>,
) -> Result<Response<api::Case>, Status> {
    let caller = Caller::of(&request, READERS)?;
    let result = async {
        let id = redress_proto::vocab::parse_id("caseId", &request.get_ref().case_id)?;
        let mut conn = api.shared.db.pool().acquire().await?;
        let case = store::load(&mut conn, id, false)
            .await?
            .ok_or_else(|| CaseError::NotFound(id.to_string()))?;
        may_see(&mut conn, &caller, &case, true).await?;
        store::view(&mut conn, &api.shared.clocks, &case, true).await
    }
    .await;
    respond(result)
}

pub(super) async fn list_cases(
    api: &Api,
    request: Request<api::ListCasesRequest>,
) -> Result<Response<api::ListCasesResponse>, Status> {
    let caller = Caller::of(&request, READERS)?;
    let r = request.into_inner();
    let mut v = Violations::default();
    let department = v
        .check(grpc::slug("department", &r.department, false))
        .filter(|d| !d.is_empty());
    let state = v
        .check(grpc::enum_value::<CaseState>("state", r.state))
        .flatten()
        .and_then(State::from_proto);
    let severity = v
        .check(grpc::enum_value::<Severity>("severity", r.severity))
        .flatten();
    let due_before = v
        .check(grpc::time("dueBefore", r.due_before.as_ref()))
        .flatten();
    let complaint = v
        .check(grpc::text(
            "complaint",
            &r.complaint,
            64,
            TextKind::Line,
            false,
        ))
        .filter(|c| !c.is_empty());
    if !v.is_empty() {
        return Err(grpc::invalid(v));
    }
    let department = if caller.department_scoped() {
        let own = caller.department().to_owned();
        if department.as_ref().is_some_and(|d| *d != own) {
            return Err(Status::permission_denied(format!(
                "a handler lists only its own department's cases ({own})"
            )));
        }
        Some(own)
    } else {
        department
    };
    let filter = store::Filter {
        department,
        state,
        severity,
        due_before,
        breached: r.breached,
        complaint,
    };
    let page = r.page.unwrap_or_default();
    let result = async {
        let mut conn = api.shared.db.pool().acquire().await?;
        store::list(
            &mut conn,
            &api.shared.clocks,
            &api.pager,
            &filter,
            page.page_size,
            &page.page_token,
        )
        .await
    }
    .await;
    let page = result.map_err(status)?;
    Ok(Response::new(api::ListCasesResponse {
        cases: page.items,
        next_page_token: page.next_page_token,
    }))
}
