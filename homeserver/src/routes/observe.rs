//! Per-request metrics and one structured log line per request.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

use crate::state::AppState;

pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req.app_data::<web::Data<AppState>>().map(|s| s.metrics.clone());
    let method = req.method().to_string();
    let response = next.call(req).await?;
    let elapsed = started.elapsed();
    // The route template, never the raw path: bounded label values, no ids in metrics.
    let route = match response.request().app_data::<super::RoutePattern>() {
        Some(pattern) => pattern.0.to_owned(),
        None => response.request().match_pattern().unwrap_or_else(|| "unmatched".into()),
    };
    let status = response.status().as_u16();
    if let Some(metrics) = metrics {
        metrics
            .http_requests
            .with_label_values(&[route.as_str(), method.as_str(), &status.to_string()])
            .inc();
        metrics
            .http_latency
            .with_label_values(&[route.as_str(), method.as_str()])
            .observe(elapsed.as_secs_f64());
    }
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    // Successes at debug: at thousands of requests a second an info line each would
    // cost more than the request.
    match status {
        500.. => tracing::warn!(%method, %route, status, latency_ms, "request failed"),
        400.. => tracing::info!(%method, %route, status, latency_ms, "request refused"),
        _ => tracing::debug!(%method, %route, status, latency_ms, "request"),
    }
    Ok(response)
}
