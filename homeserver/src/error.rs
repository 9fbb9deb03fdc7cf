//! The one error type of the client API. Domain code returns it; actix turns it into
//! `{"error": "<code>", "message": "..."}` with the status its code implies.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use parley_specs::{ErrorBody, ErrorCode};

/// What `503 database_unavailable` asks clients to wait: a failover takes seconds.
const DATABASE_RETRY_AFTER: Duration = Duration::from_secs(1);

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

    /// No writable database is reachable (e.g. during a failover): `503` with
    /// `Retry-After`, which the SDK honours for requests that are safe to repeat.
    pub fn database_unavailable() -> Self {
        Self {
            code: ErrorCode::DatabaseUnavailable,
            message:
                "no writable database is reachable right now (e.g. a failover is under way); retry after Retry-After"
                    .into(),
            retry_after: Some(DATABASE_RETRY_AFTER),
            current_epoch: None,
        }
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
        match err {
            // Every connection is busy: the server is overloaded, the database is fine.
            deadpool_postgres::PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => Self {
                retry_after: Some(DATABASE_RETRY_AFTER),
                ..Self::new(ErrorCode::Unavailable, "every database connection is busy; retry later")
            },
            _ => Self::database_unavailable(),
        }
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(err: tokio_postgres::Error) -> Self {
        if crate::db::is_unavailable(&err) {
            tracing::warn!(error = %err, "database connection failed");
            return Self::database_unavailable();
        }
        // The outer error only says "db error"; the server's own message says what failed.
        let detail = err.as_db_error().map_or_else(|| err.to_string(), ToString::to_string);
        Self::internal("database query failed", detail)
    }
}
