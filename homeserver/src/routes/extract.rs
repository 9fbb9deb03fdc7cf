//! Extractor settings that turn malformed input into the API's error format.

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{HttpRequest, web};
use parley_specs::ErrorCode;

use crate::error::ApiError;

pub fn json_config(max_body_bytes: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(max_body_bytes)
        .content_type_required(false)
        .error_handler(move |err, _: &HttpRequest| json_error(err, max_body_bytes).into())
}

fn json_error(err: JsonPayloadError, limit: usize) -> ApiError {
    match err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the request body is larger than {limit} bytes"),
        ),
        JsonPayloadError::ContentType => ApiError::new(
            ErrorCode::BadJson,
            "the request body must be JSON (Content-Type: application/json)",
        ),
        JsonPayloadError::Deserialize(e) => ApiError::new(ErrorCode::BadJson, format!("invalid JSON body: {e}")),
        other => ApiError::new(ErrorCode::BadJson, format!("cannot read the request body: {other}")),
    }
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _| {
        ApiError::new(ErrorCode::InvalidParam, format!("invalid path parameter: {err}")).into()
    })
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err: QueryPayloadError, _| {
        ApiError::new(ErrorCode::InvalidParam, format!("invalid query parameter: {err}")).into()
    })
}
