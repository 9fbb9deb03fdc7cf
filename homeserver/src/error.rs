//! The one error type of the client API. Domain code returns it; actix turns it into
//! `{"error": "<code>", "message": "..."}` with the status its code implies.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use parley_specs::{ErrorBody, ErrorCode};

#[derive(Clone, Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after: Option<Duration>,
    pub current_epoch: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
            current_epoch: None,
        }
    }

    pub fn rate_limited(retry_after: Duration) -> Self {
        Self {
            code: ErrorCode::RateLimited,
            message: format!("too many attempts; retry in {} s", retry_after.as_secs().max(1)),
            retry_after: Some(retry_after),
            current_epoch: None,
        }
    }

    /// A server-side fault. The cause is logged here, never sent to the client.
    pub fn internal(context: &str, cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "{context}");
        Self::new(
            ErrorCode::Internal,
            "internal server error; the server logged the cause",
        )
    }

    pub fn wrong_epoch(sent: u64, current: u64) -> Self {
        Self {
            current_epoch: Some(current),
            ..Self::new(
                ErrorCode::WrongEpoch,
                format!("the message is for epoch {sent}; the group is at epoch {current}"),
            )
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Some(wait) = self.retry_after {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            if let Ok(value) = HeaderValue::from_str(&secs.max(1).to_string()) {
                response.insert_header((header::RETRY_AFTER, value));
            }
        }
        response.json(ErrorBody {
            error: self.code,
            message: self.message.clone(),
            retry_after_ms: self.retry_after.map(|d| d.as_millis().try_into().unwrap_or(u64::MAX)),
            current_epoch: self.current_epoch,
        })
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        tracing::warn!(error = %err, "no database connection");
        Self::new(ErrorCode::Unavailable, "the database is unavailable; retry later")
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(err: tokio_postgres::Error) -> Self {
        if err.is_closed() || err.as_db_error().is_none() && err.code().is_none() {
            tracing::warn!(error = %err, "database connection failed");
            return Self::new(ErrorCode::Unavailable, "the database is unavailable; retry later");
        }
        // The outer error only says "db error"; the server's own message says what failed.
        let detail = err.as_db_error().map_or_else(|| err.to_string(), ToString::to_string);
        Self::internal("database query failed", detail)
    }
}
