use actix_web::{HttpResponse, web};
use parley_specs::groups_api::{
    Accepted, AckRequest, CreateGroupRequest, GroupDelivery, GroupInfoResponse, GroupList, GroupListQuery,
    GroupSummary, InboxPage, InboxQuery, LeftGroup, SubmitCommitRequest, SubmitMessageRequest,
};

use super::auth::AuthedDevice;
use super::no_content;
use crate::error::ApiError;
use crate::routes::parse_group_id;
use crate::state::AppState;
use crate::{hub, inbox};

/// Counts a refused submission by its reason before returning it.
fn counted<T>(state: &AppState, result: Result<T, ApiError>) -> Result<T, ApiError> {
    if let Err(e) = &result {
        state
            .metrics
            .messages_rejected
            .with_label_values(&[e.code.as_str()])
            .inc();
    }
    result
}

pub async fn create(
    state: web::Data<AppState>,
    who: AuthedDevice,
    body: web::Json<CreateGroupRequest>,
) -> Result<HttpResponse, ApiError> {
    let summary = hub::create_group(&state, &who.member(), body.into_inner()).await?;
    Ok(HttpResponse::Created().json(summary))
}

pub async fn list(
    state: web::Data<AppState>,
    who: AuthedDevice,
    query: web::Query<GroupListQuery>,
) -> Result<web::Json<GroupList>, ApiError> {
    Ok(web::Json(
        hub::list_groups(&state, &who.member(), query.into_inner()).await?,
    ))
}

pub async fn get(
    state: web::Data<AppState>,
    who: AuthedDevice,
    path: web::Path<String>,
) -> Result<web::Json<GroupSummary>, ApiError> {
    Ok(web::Json(
        hub::get_group(&state, &who.member(), parse_group_id(&path)?).await?,
    ))
}

pub async fn leave(
    state: web::Data<AppState>,
    who: AuthedDevice,
    path: web::Path<String>,
) -> Result<web::Json<LeftGroup>, ApiError> {
    Ok(web::Json(
        hub::leave::leave_group(&state, &who.member(), parse_group_id(&path)?).await?,
    ))
}

pub async fn commit(
    state: web::Data<AppState>,
    who: AuthedDevice,
    path: web::Path<String>,
    body: web::Json<SubmitCommitRequest>,
) -> Result<web::Json<Accepted>, ApiError> {
    let result = match parse_group_id(&path) {
        Ok(group) => hub::submit_commit(&state, &who.member(), group, body.into_inner()).await,
        Err(e) => Err(e),
    };
    counted(&state, result).map(web::Json)
}

pub async fn message(
    state: web::Data<AppState>,
    who: AuthedDevice,
    path: web::Path<String>,
    body: web::Json<SubmitMessageRequest>,
) -> Result<web::Json<Accepted>, ApiError> {
    let result = match parse_group_id(&path) {
        Ok(group) => hub::submit_message(&state, &who.member(), group, body.into_inner()).await,
        Err(e) => Err(e),
    };
    counted(&state, result).map(web::Json)
}

pub async fn delivery(
    state: web::Data<AppState>,
    who: AuthedDevice,
    path: web::Path<String>,
) -> Result<web::Json<GroupDelivery>, ApiError> {
    let group = parse_group_id(&path)?;
    Ok(web::Json(
        hub::delivery::for_member(&state, &who.member(), group).await?,
    ))
}

pub async fn group_info(
    state: web::Data<AppState>,
    who: AuthedDevice,
    path: web::Path<String>,
) -> Result<web::Json<GroupInfoResponse>, ApiError> {
    let group = parse_group_id(&path)?;
    Ok(web::Json(
        hub::group_info::for_device(&state, &who.member(), group).await?,
    ))
}

pub async fn read_inbox(
    state: web::Data<AppState>,
    who: AuthedDevice,
    query: web::Query<InboxQuery>,
) -> Result<web::Json<InboxPage>, ApiError> {
    Ok(web::Json(
        inbox::read(&state, &who.device_id, query.into_inner()).await?,
    ))
}

pub async fn ack_inbox(
    state: web::Data<AppState>,
    who: AuthedDevice,
    body: web::Json<AckRequest>,
) -> Result<HttpResponse, ApiError> {
    inbox::ack(&state, &who.member(), body.up_to).await?;
    Ok(no_content())
}
