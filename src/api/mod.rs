//! The HTTP API of `jobctl serve`: axum on the daemon's runtime.
//!
//! Reads go through a small pool of read-only ledger connections (WAL lets them run beside the
//! daemon's writes); writes (trigger, pause, cancel) through one connection of the API's own,
//! committed durably, after which the daemon is told through its [`Handle`]. Every handler is described
//! by `utoipa` and collected into the OpenAPI document at `GET /v1/openapi.json`; every error
//! is JSON (see [`error`]).

pub mod auth;
mod backfill;
pub mod conns;
mod definition;
pub mod error;
mod events;
mod fires;
mod history;
mod hooks;
mod jobs;
mod plan;
mod revisions;
mod runs;
mod scope;
mod server;
pub mod session;
mod system;
pub mod wire;

use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::de::DeserializeOwned;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::executor::Shared;
use crate::handle::{Command, Handle};
use crate::ledger::{Ledger, OpenOptions};
use crate::webhook::RateLimiter;
use auth::Tokens;
use error::{ApiError, ApiResult};
pub use server::{BindError, bind, serve};

/// What the daemon hands the API.
pub struct Options {
    pub ledger: crate::ledger::Location,
    /// How the API's connections open the ledger.
    pub open: OpenOptions,
    pub shared: Arc<Shared>,
    pub tokens: Tokens,
    /// No tokens needed at all (`--insecure` with none configured).
    pub insecure: bool,
    pub public_metrics: bool,
    /// Served over TLS: session cookies are `Secure`.
    pub tls: bool,
    /// `[server] public_url`: runs link to their dashboard pages under it.
    pub public_url: Option<String>,
    pub webhook_rate_limit: u32,
    pub body_limit: u64,
    pub request_timeout: StdDuration,
    /// What the API tells the daemon after its writes, and the problems it reads back.
    pub daemon: Handle,
    /// The followed repository's push webhook (`POST /v1/hooks/git`), when the daemon follows
    /// one.
    pub git: Option<GitHook>,
}

/// What the push webhook of a followed repository checks.
#[derive(Clone, Debug)]
pub struct GitHook {
    /// The branch followed: pushes to others are acknowledged and ignored.
    pub branch: String,
    /// Where the HMAC secret is; `None`: the webhook is off.
    pub secret: Option<crate::spec::WebhookSecret>,
}

/// Read-only connections kept open: enough to keep both cores busy, few enough that their
/// page caches stay small.
const READERS: usize = 4;

#[derive(Default)]
struct Readers {
    idle: Vec<Ledger>,
    open: usize,
}

/// The API's shared state.
pub struct Api {
    pub(crate) ledger: crate::ledger::Location,
    open: OpenOptions,
    pub(crate) shared: Arc<Shared>,
    pub(crate) tokens: Tokens,
    pub(crate) insecure: bool,
    pub(crate) public_metrics: bool,
    pub(crate) tls: bool,
    pub(crate) public_url: Option<String>,
    readers: Mutex<Readers>,
    reader_freed: std::sync::Condvar,
    /// One per pooled connection: a long read waits here, on the runtime, not on a blocking
    /// thread (those are shared with the executor's process reaping).
    reader_permits: tokio::sync::Semaphore,
    writer: Mutex<Option<Ledger>>,
    pub(crate) limiter: Mutex<RateLimiter>,
    pub(crate) daemon: Handle,
    pub(crate) git: Option<GitHook>,
}

impl Api {
    /// Runs `f` (a point read: microseconds) on this runtime thread's own read-only
    /// connection, in place: handing a short read to another thread costs more than the read.
    pub(crate) async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Ledger) -> crate::ledger::Result<T> + Send + 'static,
    ) -> ApiResult<T> {
        thread_local! {
            static READER: std::cell::RefCell<Option<(crate::ledger::Location, Ledger)>> =
                const { std::cell::RefCell::new(None) };
        }
        READER.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.as_ref().is_none_or(|(path, _)| *path != self.ledger) {
                let ledger = Ledger::open_read_only_at(&self.ledger, self.open)?
                    .ok_or_else(|| ApiError::unavailable("the ledger does not exist yet"))?;
                *slot = Some((self.ledger.clone(), ledger));
            }
            let (_, ledger) = slot.as_ref().expect("opened above");
            f(ledger).map_err(ApiError::from)
        })
    }

    /// Runs `f` (a read that may take long: all jobs, all run counts) on a read-only ledger
    /// connection, off the runtime's threads. At most [`READERS`] such connections are open;
    /// a request beyond waits for one.
    pub(crate) async fn read_blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Ledger) -> crate::ledger::Result<T> + Send + 'static,
    ) -> ApiResult<T> {
        let _permit = self
            .reader_permits
            .acquire()
            .await
            .map_err(|e| ApiError::internal("a ledger read", e))?;
        let api = self.clone();
        tokio::task::spawn_blocking(move || {
            let ledger = api.take_reader()?;
            let result = f(&ledger);
            let mut pool = api
                .readers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            pool.idle.push(ledger);
            drop(pool);
            api.reader_freed.notify_one();
            result.map_err(ApiError::from)
        })
        .await
        .map_err(|e| ApiError::internal("a ledger read", e))?
    }

    fn take_reader(&self) -> ApiResult<Ledger> {
        let mut pool = self
            .readers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if let Some(ledger) = pool.idle.pop() {
                return Ok(ledger);
            }
            if pool.open < READERS {
                pool.open += 1;
                drop(pool);
                let opened =
                    Ledger::open_read_only_at(&self.ledger, self.open).map_err(ApiError::from);
                let opened = opened.and_then(|l| {
                    l.ok_or_else(|| ApiError::unavailable("the ledger does not exist yet"))
                });
                if opened.is_err() {
                    self.readers
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .open -= 1;
                }
                return opened;
            }
            pool = self
                .reader_freed
                .wait(pool)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Runs `f` on the API's writing connection (durable commits), then tells the daemon
    /// that jobs changed.
    pub(crate) async fn write<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Ledger) -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        self.write_then(Command::JobsChanged, f).await
    }

    /// [`Api::write`] for a change to runs only (a trigger, a cancel).
    pub(crate) async fn write_runs<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Ledger) -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        self.write_then(Command::RunsChanged, f).await
    }

    async fn write_then<T: Send + 'static>(
        self: &Arc<Self>,
        changed: Command,
        f: impl FnOnce(&mut Ledger) -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        let api = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut slot = api
                .writer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if slot.is_none() {
                let ledger = Ledger::open_at(&api.ledger, api.open)?;
                ledger.set_durable()?;
                *slot = Some(ledger);
            }
            let ledger = slot.as_mut().expect("opened above");
            let result = f(ledger);
            drop(slot);
            if result.is_ok() {
                api.daemon.send(changed);
            }
            result
        })
        .await
        .map_err(|e| ApiError::internal("a ledger write", e))?
    }

    pub(crate) fn now(&self) -> jiff::Timestamp {
        self.shared.clock.now()
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "jobs",
        description = "The HTTP API of `jobctl serve`: jobs, runs, events, logs, triggers, webhooks and metrics. Every error is `{\"error\": {\"code\", \"message\"}}`.",
        license(name = "MIT OR Apache-2.0")
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "jobs", description = "Jobs and what an operator does to them"),
        (name = "runs", description = "Runs, their events and output"),
        (name = "webhooks", description = "Signed triggers from other systems"),
        (name = "system", description = "Health, readiness, metrics, this document")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every operation may answer 503 with `Retry-After`: the ledger is busy or cannot be written
/// (a full disk), or every connection is busy. Documented once here rather than on each path.
struct Unavailable;

impl utoipa::Modify for Unavailable {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let response = ResponseBuilder::new()
            .description("The ledger is busy or cannot be written now, or the server is at its connection cap; retry after `Retry-After` seconds")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                operation
                    .responses
                    .responses
                    .entry("503".to_string())
                    .or_insert_with(|| response.clone().into());
            }
        }
    }
}

/// The router and its OpenAPI document.
fn routes() -> (Router<Arc<Api>>, utoipa::openapi::OpenApi) {
    let (router, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(jobs::list, jobs::create))
        .routes(routes!(
            jobs::get,
            jobs::update,
            jobs::replace,
            jobs::delete
        ))
        .routes(routes!(jobs::trigger))
        .routes(routes!(backfill::backfill))
        .routes(routes!(jobs::pause))
        .routes(routes!(jobs::resume))
        .routes(routes!(jobs::graph))
        .routes(routes!(jobs::tags))
        .routes(routes!(events::events))
        .routes(routes!(history::logs))
        .routes(routes!(history::metrics))
        .routes(routes!(revisions::list))
        .routes(routes!(revisions::diff))
        .routes(routes!(fires::fires))
        .routes(routes!(fires::timeline))
        .routes(routes!(plan::plan))
        .routes(routes!(plan::apply))
        .routes(routes!(runs::list))
        .routes(routes!(runs::recent))
        .routes(routes!(runs::get))
        .routes(routes!(runs::events))
        .routes(routes!(runs::logs))
        .routes(routes!(runs::cancel))
        .routes(routes!(hooks::git_push))
        .routes(routes!(hooks::hook))
        .routes(routes!(session::login, session::whoami, session::logout))
        .routes(routes!(system::status))
        .routes(routes!(system::healthz))
        .routes(routes!(system::readyz))
        .routes(routes!(system::metrics))
        .routes(routes!(system::openapi))
        .split_for_parts();
    // After the routes: a document modifier runs before any path is added.
    utoipa::Modify::modify(&Unavailable, &mut openapi);
    (router, openapi)
}

/// The OpenAPI document, as served (built once).
pub fn openapi() -> &'static serde_json::Value {
    static DOC: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    DOC.get_or_init(|| serde_json::to_value(routes().1).unwrap_or_default())
}

/// Builds the API's router.
pub fn router(options: Options) -> Router {
    let api = Arc::new(Api {
        ledger: options.ledger,
        open: options.open,
        shared: options.shared,
        tokens: options.tokens,
        insecure: options.insecure,
        public_metrics: options.public_metrics,
        tls: options.tls,
        public_url: options.public_url,
        readers: Mutex::new(Readers::default()),
        reader_freed: std::sync::Condvar::new(),
        reader_permits: tokio::sync::Semaphore::new(READERS),
        writer: Mutex::new(None),
        limiter: Mutex::new(RateLimiter::new(options.webhook_rate_limit)),
        daemon: options.daemon,
        git: options.git,
    });
    let limit = usize::try_from(options.body_limit).unwrap_or(usize::MAX);
    routes()
        .0
        .merge(crate::ui::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(api)
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            options.request_timeout,
        ))
        .layer(axum::middleware::from_fn(error::json_errors))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "no such endpoint: {}; GET /v1/openapi.json lists them",
        uri.path()
    ))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not take {method}", uri.path()),
    )
}

/// A JSON request body that may be empty (then `T::default()`); anything else must be JSON.
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = media_type(req.headers());
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        match json.as_deref() {
            Some("application/json") => {}
            Some(other) => {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!("the body is `{other}`; send `application/json`"),
                ));
            }
            None => {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "a body needs `Content-Type: application/json`",
                ));
            }
        }
        parse_json(&bytes).map(OptionalJson)
    }
}

/// A request's media type (`application/json`), without parameters, in lower case.
pub(crate) fn media_type(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

/// Parses a JSON body: 400 for malformed JSON, 422 for JSON of the wrong shape.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("the body does not fit: {e}"),
            ),
            _ => ApiError::bad_request(format!("the body is not valid JSON: {e}")),
        }
    })
}

/// Query strings and paths: their rejections become 400s with the reason.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> axum::extract::FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> axum::extract::FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// `202 Accepted` with a JSON body.
pub(crate) fn accepted<T: serde::Serialize>(body: T) -> axum::response::Response {
    (StatusCode::ACCEPTED, axum::Json(body)).into_response()
}
