//! `POST /v1/hooks/{name}`: a signed trigger. The job must have a `webhook` block; its secret
//! is read from the environment variable or file the block names, at each request.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse as _, Response};

use super::error::{ApiError, ApiResult};
use super::jobs::{active_job, queue_run};
use super::wire::{self, ErrorBody, ParamValue};
use super::{Api, Path, accepted};
use crate::run::Trigger;
use crate::spec::WebhookSecret;
use crate::webhook::{self, Scheme, Signed};

/// Triggers the job from a signed request. The raw body is signed with HMAC-SHA256 and the
/// job's secret: `X-Hub-Signature-256: sha256=HEX` (GitHub's header) or `X-Jobs-Signature`.
/// With `X-Jobs-Timestamp: UNIX_SECONDS`, the signed text is `TIMESTAMP.BODY` and requests
/// more than 5 minutes old are refused; a job with `require_timestamp: true` refuses requests
/// without that header. A JSON body's `params` object fills declared parameters. No bearer
/// token: the signature is the authentication. To a caller without a read token, an unknown
/// job and a job without a webhook answer the same 404.
#[utoipa::path(post, path = "/v1/hooks/{name}", tag = "webhooks", security(()),
    params(("name" = String, Path, description = "The job's name"),
        ("X-Hub-Signature-256" = Option<String>, Header, description = "sha256=HEX of the body"),
        ("X-Jobs-Signature" = Option<String>, Header, description = "sha256=HEX of the body (or of TIMESTAMP.BODY)"),
        ("X-Jobs-Timestamp" = Option<String>, Header, description = "Seconds since 1970, signed with the body")),
    request_body(content = String, description = "Any body; a JSON object may carry `params`"),
    responses((status = 202, body = wire::Run),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn hook(
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    // A caller who may not read jobs learns nothing from a 404: an unknown job and a job
    // without a webhook answer alike (the detail is for token holders).
    let hidden = || ApiError::not_found("there is no webhook at this address");
    let found = active_job(&api, &name).await;
    let (row, spec) = match found {
        Err(e) if e.status == StatusCode::NOT_FOUND && !sees(&api, &headers, &name).await => {
            return Err(hidden());
        }
        other => other?,
    };
    let Some(webhook) = &spec.webhook else {
        if !sees(&api, &headers, &name).await {
            return Err(hidden());
        }
        return Err(ApiError::not_found(format!(
            "job `{name}` has no webhook; add a `webhook:` block to its file"
        )));
    };
    let secret = read_secret(&webhook.secret).map_err(|why| {
        tracing::error!(job = %name, "webhook secret: {why}");
        ApiError::unavailable(format!(
            "job `{name}`'s webhook secret is not available on the server; its log says why"
        ))
    })?;
    let scheme = if webhook.require_timestamp {
        Scheme::Timestamped
    } else {
        Scheme::Any
    };
    verify(&api, &headers, &secret, &body, scheme)?;
    if !spec.enabled {
        return Err(ApiError::conflict(format!(
            "job `{name}` is disabled (`enabled: false`); webhooks do not fire it"
        )));
    }
    let allowed = api
        .limiter
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take(&name, api.now());
    if let Err(wait) = allowed {
        return Err(ApiError {
            retry_after: Some(wait),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "job `{name}` takes a limited number of webhook calls a minute; retry in {wait} s"
                ),
            )
        });
    }
    let params = params_of(&body)?;
    let run = queue_run(&api, (row, spec), params, Trigger::Webhook, None).await?;
    Ok(accepted(run))
}

/// The push webhook of the repository the daemon follows (`[git] secret_env`/`secret_file`):
/// a push to the followed branch, signed like a job's webhook (GitHub's
/// `X-Hub-Signature-256`), makes the daemon fetch and apply at once instead of at its next
/// interval. GitHub's `ping` is answered 200; a push to another branch is acknowledged and
/// ignored. When the daemon follows no repository, a job named `git` gets its own webhook
/// here.
#[utoipa::path(post, path = "/v1/hooks/git", tag = "webhooks", security(()),
    params(("X-Hub-Signature-256" = Option<String>, Header, description = "sha256=HEX of the body"),
        ("X-Jobs-Signature" = Option<String>, Header, description = "sha256=HEX of the body (or of TIMESTAMP.BODY)"),
        ("X-GitHub-Event" = Option<String>, Header, description = "`push` or `ping`; other events are ignored")),
    request_body(content = String, description = "GitHub's push event: its `ref` names the branch pushed"),
    responses((status = 200, body = wire::GitPushResult, description = "A ping, or an event that is not a push to the followed branch"),
        (status = 202, body = wire::GitPushResult, description = "The daemon fetches now"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn git_push(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let Some(git) = api.git.clone() else {
        return hook(State(api), Path("git".to_string()), headers, body).await;
    };
    let Some(secret) = &git.secret else {
        return Err(ApiError::not_found(
            "the daemon follows a repository but has no push webhook; set `secret_env` or `secret_file` in `[git]`",
        ));
    };
    let secret = read_secret(secret).map_err(|why| {
        tracing::error!("the git push webhook's secret: {why}");
        ApiError::unavailable(
            "the push webhook's secret is not available on the server; its log says why",
        )
    })?;
    verify(&api, &headers, &secret, &body, Scheme::Any)?;
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let allowed = api
        .limiter
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take("\0git", api.now());
    if let Err(wait) = allowed {
        return Err(ApiError {
            retry_after: Some(wait),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "the push webhook takes a limited number of calls a minute; retry in {wait} s"
                ),
            )
        });
    }
    let answer = |status: StatusCode, fetching: bool, message: String| {
        let body = wire::GitPushResult { fetching, message };
        (status, axum::Json(body)).into_response()
    };
    match header("x-github-event") {
        Some("ping") => {
            return Ok(answer(
                StatusCode::OK,
                false,
                "pong: pushes to this repository's branch are fetched at once".to_string(),
            ));
        }
        Some("push") | None => {}
        Some(other) => {
            return Ok(answer(
                StatusCode::OK,
                false,
                format!("a `{other}` event is ignored; only pushes are fetched"),
            ));
        }
    }
    let wanted = format!("refs/heads/{}", git.branch);
    let pushed = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("ref").and_then(|r| r.as_str()).map(str::to_string));
    if let Some(pushed) = pushed
        && pushed != wanted
    {
        return Ok(answer(
            StatusCode::OK,
            false,
            format!("a push to {pushed} is ignored; {wanted} is followed"),
        ));
    }
    api.daemon.send(crate::handle::Command::GitPushed);
    Ok(answer(
        StatusCode::ACCEPTED,
        true,
        format!("fetching {wanted} now"),
    ))
}

/// Checks a request's signature headers against the secret; 401 saying why not.
fn verify(
    api: &Api,
    headers: &HeaderMap,
    secret: &[u8],
    body: &[u8],
    scheme: Scheme,
) -> ApiResult<()> {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let signed = Signed {
        hub: header("x-hub-signature-256"),
        jobs: header("x-jobs-signature"),
        timestamp: header("x-jobs-timestamp"),
    };
    webhook::verify(secret, body, signed, scheme, api.now())
        .map_err(|refusal| ApiError::new(StatusCode::UNAUTHORIZED, refusal.to_string()))
}

/// `params` from a JSON object body; other bodies (a GitHub push event, a form) carry none.
fn params_of(body: &[u8]) -> ApiResult<BTreeMap<String, String>> {
    let Ok(serde_json::Value::Object(mut object)) = serde_json::from_slice(body) else {
        return Ok(BTreeMap::new());
    };
    let Some(params) = object.remove("params") else {
        return Ok(BTreeMap::new());
    };
    let params: BTreeMap<String, ParamValue> = serde_json::from_value(params).map_err(|_| {
        ApiError::bad_request("`params` must be an object of names to strings, numbers or booleans")
    })?;
    Ok(params
        .into_iter()
        .map(|(k, v)| (k, v.into_text()))
        .collect())
}

/// Why a webhook's secret cannot be used: logged for the operator, never sent to the caller.
#[derive(Debug, thiserror::Error)]
enum SecretError {
    #[error("the environment variable {var} is not set")]
    Unset { var: String },
    #[error("cannot read {path}: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("the secret is empty")]
    Empty,
}

fn read_secret(source: &WebhookSecret) -> Result<Vec<u8>, SecretError> {
    let secret = match source {
        WebhookSecret::SecretEnv(var) => {
            std::env::var(var).map_err(|_| SecretError::Unset { var: var.clone() })?
        }
        WebhookSecret::SecretFile(path) => std::fs::read_to_string(path)
            .map_err(|source| SecretError::Unreadable {
                path: path.clone(),
                source,
            })?
            .trim_end_matches(['\n', '\r'])
            .to_string(),
    };
    if secret.is_empty() {
        return Err(SecretError::Empty);
    }
    Ok(secret.into_bytes())
}

/// Whether the caller may be told why job `name` has no webhook: it holds a token that reads
/// and, scoped, sees the job.
async fn sees(api: &Arc<Api>, headers: &HeaderMap, name: &str) -> bool {
    match super::auth::caller(&axum::http::Method::GET, headers, api) {
        Ok(who) => api.sees_job(&who, name).await.unwrap_or(false),
        Err(_) => false,
    }
}
