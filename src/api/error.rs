//! Every API error is `{"error": {"code", "message"}}` with its status: handlers return
//! [`ApiError`], extractors' rejections are turned into it, and [`json_errors`] rewrites the
//! few bodies axum and tower-http produce themselves (405, 408, 413) so no client ever sees a
//! plain-text or empty error.

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::wire::{ErrorBody, ErrorDetail};
use crate::ledger::LedgerError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// `Retry-After`, in seconds, for 429 and 503.
    pub retry_after: Option<u64>,
    /// See [`ErrorDetail::diagnostics`].
    pub diagnostics: Vec<crate::diag::Diagnostic>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code_of(status),
            message: message.into(),
            retry_after: None,
            diagnostics: Vec::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            retry_after: Some(1),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }

    /// A failure inside the server: logged in full, answered without internals.
    pub fn internal(what: &str, detail: impl std::fmt::Display) -> ApiError {
        tracing::error!("{what}: {detail}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{what} failed; the server's log says why"),
        )
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> ApiError {
        match e {
            // A busy ledger is transient: the client may retry.
            LedgerError::Locked { .. } => {
                ApiError::unavailable("the ledger is busy; retry in a moment")
            }
            LedgerError::NotFound { what, .. } => ApiError::not_found(format!("no {what}")),
            // Nothing is wrong with the request; the server cannot write now.
            e @ (LedgerError::DiskFull { .. } | LedgerError::ReadOnly { .. }) => {
                tracing::error!("{e}");
                ApiError::unavailable("the ledger cannot be written now (see /readyz); retry later")
            }
            LedgerError::Conflict { detail, .. } => ApiError::conflict(detail),
            other => ApiError::internal("reading or writing the ledger", other),
        }
    }
}

fn code_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        409 => "conflict",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "unprocessable_entity",
        429 => "too_many_requests",
        503 => "unavailable",
        _ => "internal",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                diagnostics: self.diagnostics,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"jobs\""),
            );
        }
        response
    }
}

/// Rewrites error responses that are not JSON (axum's 405, tower-http's 408 and 413) into the
/// API's error body, keeping their status and headers. (A 413 leaves the body it refused
/// unread: the server says `Connection: close` for it, as for any answer given before the
/// body was read, `conns::ReadBody`.)
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => "this path does not take that method".to_string(),
        StatusCode::REQUEST_TIMEOUT => "the request took too long".to_string(),
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is larger than the limit".to_string(),
        other => other
            .canonical_reason()
            .unwrap_or("the request failed")
            .to_string(),
    };
    let (parts, _) = response.into_parts();
    let mut rewritten = ApiError::new(status, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rewritten
}
