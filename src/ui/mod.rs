//! The web dashboard: a page shell and its assets (`src/ui/assets`), served by `jobctl serve`
//! on the API's listener. An edge like the CLI: the pages get every fact from the public API
//! (`/v1/…`, with the session cookie of `POST /v1/session`), never from the ledger.
//!
//! Every page URL (`/`, `/timeline`, `/jobs/NAME`, `/runs/ID`, `/graph`, `/status`, `/login`)
//! answers the same shell; the script renders the page the URL names, so each can be shared
//! and bookmarked. The assets are embedded at build time by `memory-serve` (compressed, with
//! ETags) and linked by content-hashed URLs cached as `immutable`; the shell itself is never
//! cached. The shell's import map sends every module, ours and the vendored ones (see
//! `VENDOR.md`), to its hashed URL, so a new build is never mixed with an old cached module.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Where the assets are served.
const ASSETS: &str = "/assets";

/// The page URLs, each answered with the shell.
const PAGES: &[&str] = &[
    "/",
    "/login",
    "/timeline",
    "/jobs/{name}",
    "/runs/{id}",
    "/graph",
    "/status",
];

/// The shell every page URL answers, and its security policy.
struct Shell {
    html: axum::body::Bytes,
    policy: HeaderValue,
}

/// The dashboard's router: its pages and `/assets/…`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let assets = memory_serve::load!()
        .enable_hashed_routes(true)
        .enable_brotli(true)
        .enable_gzip(true)
        .index_file(None);
    let manifest = assets.manifest();
    let served = |route: &str| {
        let hashed = manifest.get(route).unwrap_or(route);
        format!("{ASSETS}{hashed}")
    };
    let mut modules: Vec<(String, String)> = manifest
        .iter()
        .filter(|(route, _)| route.ends_with(".js"))
        .map(|(route, _)| (format!("{ASSETS}{route}"), served(route)))
        .collect();
    modules.sort();
    let mut imports = serde_json::Map::new();
    for (name, route) in [
        ("preact", "/vendor/preact.js"),
        ("preact/hooks", "/vendor/preact-hooks.js"),
        ("htm", "/vendor/htm.js"),
        ("dagre", "/vendor/dagre.js"),
    ] {
        imports.insert(name.into(), served(route).into());
    }
    for (plain, hashed) in modules {
        imports.insert(plain, hashed.into());
    }
    let import_map = serde_json::json!({ "imports": imports }).to_string();
    let shell = Arc::new(Shell::new(
        &import_map,
        &served("/app.js"),
        &served("/style.css"),
        &served("/icon.svg"),
    ));
    let mut router = Router::new();
    for page in PAGES {
        let shell = shell.clone();
        router = router.route(page, get(move || async move { shell.response() }));
    }
    router.nest(ASSETS, assets.into_router())
}

impl Shell {
    fn new(import_map: &str, app: &str, css: &str, icon: &str) -> Shell {
        // The import map is the page's one inline script: allowed by its hash, nothing else.
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(import_map));
        let policy = format!(
            "default-src 'self'; script-src 'self' 'sha256-{hash}'; style-src 'self'; \
             img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
             form-action 'self'; frame-ancestors 'none'"
        );
        let html = format!(
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta name=\"color-scheme\" content=\"light dark\">\n<title>jobs</title>\n\
             <link rel=\"icon\" href=\"{icon}\" type=\"image/svg+xml\">\n\
             <link rel=\"stylesheet\" href=\"{css}\">\n\
             <script type=\"importmap\">{import_map}</script>\n\
             <script type=\"module\" src=\"{app}\"></script>\n</head>\n<body>\n\
             <div id=\"app\"></div>\n<noscript><p>The dashboard needs JavaScript. The API \
             (<code>/v1/openapi.json</code>) and the CLI (<code>jobctl --server</code>) do \
             not.</p></noscript>\n</body>\n</html>\n"
        );
        Shell {
            html: axum::body::Bytes::from(html),
            policy: HeaderValue::from_str(&policy).expect("the policy is ASCII"),
        }
    }

    fn response(&self) -> Response {
        (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                (header::CONTENT_SECURITY_POLICY, self.policy.clone()),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
                (
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("same-origin"),
                ),
            ],
            self.html.clone(),
        )
            .into_response()
    }
}
