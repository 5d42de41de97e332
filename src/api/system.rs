//! Health, readiness, metrics and the OpenAPI document.

use std::sync::Arc;

use super::Api;
use super::auth::Reader;
use super::error::ApiResult;
use super::wire::{ErrorBody, Health, Ready, StatusView};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Whether the server is up: no ledger access, no token.
#[utoipa::path(get, path = "/healthz", tag = "system", security(()),
    responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Whether the daemon can serve and fire: the ledger answers and its last write landed, and
/// the scheduler is alive. 503 otherwise, with what is wrong. Errors in the jobs folder are
/// reported here (and by `/v1/status` and the `jobs_definition_errors` metric) but do not make
/// it unready: one broken file must not take a whole daemon out of a load balancer.
#[utoipa::path(get, path = "/readyz", tag = "system", security(()),
    responses((status = 200, body = Ready), (status = 503, body = Ready)))]
pub async fn readyz(State(api): State<Arc<Api>>) -> Response {
    let health = api.shared.health.problems();
    let ledger = match api.read(|l| l.data_version()).await {
        Ok(_) => health
            .ledger
            .map_or_else(|| "ok".to_string(), |e| format!("cannot be written: {e}")),
        Err(e) => e.message,
    };
    let scheduler = health.scheduler.unwrap_or_else(|| "ok".to_string());
    let jobs_dir = api
        .daemon
        .problems()
        .map_or_else(|| "ok".to_string(), |p| p.rendered);
    let ready = ledger == "ok" && scheduler == "ok";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Ready {
        status: if ready { "ready" } else { "not_ready" }.into(),
        ledger,
        scheduler,
        jobs_dir,
    };
    (status, Json(body)).into_response()
}

/// Prometheus metrics, in the text format. Needs a token unless `server.public_metrics`.
#[utoipa::path(get, path = "/metrics", tag = "system", security((), ("bearer" = [])),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn metrics(State(api): State<Arc<Api>>, headers: HeaderMap) -> ApiResult<Response> {
    if !api.public_metrics {
        let who = check_reader(&api, headers).await?;
        if who.scope.is_some() {
            // Its series are labelled with every job's name.
            return Err(super::scope::unscoped_only("/metrics"));
        }
    }
    let metrics = &api.shared.metrics;
    let (pending, running, jobs) = api
        .read(|l| {
            Ok((
                l.count_runs_in(crate::run::RunState::Pending)?,
                l.count_runs_in(crate::run::RunState::Running)?,
                l.count_active_jobs()?,
            ))
        })
        .await?;
    metrics.pending_runs.set(pending);
    metrics.active_runs.set(running);
    metrics.jobs.set(jobs);
    let errors = api.daemon.problems().map_or(0, |p| p.count);
    metrics
        .definition_errors
        .set(i64::try_from(errors).unwrap_or(i64::MAX));
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.encode(),
    )
        .into_response())
}

async fn check_reader(api: &Arc<Api>, headers: HeaderMap) -> ApiResult<super::auth::Principal> {
    use axum::extract::FromRequestParts;
    let (mut parts, ()) = axum::http::Request::new(()).into_parts();
    parts.headers = headers;
    Reader::from_request_parts(&mut parts, api)
        .await
        .map(|r| r.0)
}

/// The daemon, errors in the jobs folder, active runs and the next fires: `jobctl status`.
#[utoipa::path(get, path = "/v1/status", tag = "system",
    responses((status = 200, body = StatusView), (status = 401, body = ErrorBody)))]
pub async fn status(
    State(api): State<Arc<Api>>,
    Reader(who): Reader,
) -> ApiResult<Json<StatusView>> {
    let now = api.now();
    let path = api.ledger.clone();
    api.read_blocking(move |l| {
        crate::views::status(l, &path, now, crate::runner::is_alive, who.scope.as_ref())
    })
    .await
    .map(Json)
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "system", security(()),
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json")))]
pub async fn openapi() -> Json<&'static serde_json::Value> {
    Json(super::openapi())
}
