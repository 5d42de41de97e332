//! The CLI's HTTP client for `--server URL`: ureq (blocking, no TLS; put a TLS proxy in front
//! of a server reached over an untrusted network). API errors come back as the server's own
//! message with the status.

use std::io::BufRead;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A server and the token to present.
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the server at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("the server answered {status}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        /// A definition's problems, with positions in the body as sent.
        diagnostics: Vec<crate::diag::Diagnostic>,
    },
    #[error("the server's answer is not what this version of jobs expects: {0}")]
    Unexpected(String),
}

pub type Result<T> = std::result::Result<T, ClientError>;

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(std::time::Duration::from_secs(10)))
            .build()
            .new_agent();
        Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            agent,
        }
    }

    /// `GET path` (with its query string), decoded as `T`.
    ///
    /// # Errors
    ///
    /// See [`ClientError`].
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send("GET", path, None::<&()>)
    }

    /// `POST path` with a JSON body (or none), decoded as `T`.
    ///
    /// # Errors
    ///
    /// See [`ClientError`].
    pub fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T> {
        self.send("POST", path, body)
    }

    /// `method path` with a body of the given content type (a YAML definition), decoded as `T`.
    ///
    /// # Errors
    ///
    /// See [`ClientError`].
    pub fn send_body<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> Result<T> {
        let response = self.request_with(method, path, Some((content_type, body)))?;
        Self::decode(response)
    }

    /// `DELETE path`, decoded as `T`.
    ///
    /// # Errors
    ///
    /// See [`ClientError`].
    pub fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        Self::decode(self.request_with("DELETE", path, None)?)
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        self.request_with(method, path, body.map(|b| ("application/json", b)))
    }

    fn request_with(
        &self,
        method: &str,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let url = format!("{}{path}", self.base);
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Accept", "application/json");
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let bytes = match body {
            Some((content_type, bytes)) => {
                request = request.header("Content-Type", content_type);
                bytes
            }
            None => Vec::new(),
        };
        let request = request.body(bytes).map_err(|e| ClientError::Unreachable {
            url: url.clone(),
            detail: e.to_string(),
        })?;
        let mut response = self
            .agent
            .run(request)
            .map_err(|e| ClientError::Unreachable {
                url: self.base.clone(),
                detail: e.to_string(),
            })?;
        let status = response.status().as_u16();
        if status >= 400 {
            let text = response.body_mut().read_to_string().unwrap_or_default();
            let (code, message, diagnostics) =
                match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(v) => (
                        v["error"]["code"].as_str().unwrap_or("").to_string(),
                        v["error"]["message"].as_str().unwrap_or(&text).to_string(),
                        serde_json::from_value(v["error"]["diagnostics"].clone())
                            .unwrap_or_default(),
                    ),
                    Err(_) => (String::new(), text, Vec::new()),
                };
            return Err(ClientError::Api {
                status,
                code,
                message,
                diagnostics,
            });
        }
        Ok(response)
    }

    fn send<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| ClientError::Unexpected(e.to_string()))?;
        Self::decode(self.request(method, path, body)?)
    }

    fn decode<T: DeserializeOwned>(mut response: ureq::http::Response<ureq::Body>) -> Result<T> {
        let text = response
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| ClientError::Unexpected(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| ClientError::Unexpected(format!("{e}: {text}")))
    }

    /// Follows a server-sent event stream, calling `on_event(kind, data)` for each event until
    /// the stream ends or `on_event` returns `false`.
    ///
    /// # Errors
    ///
    /// See [`ClientError`].
    pub fn events(&self, path: &str, mut on_event: impl FnMut(&str, &str) -> bool) -> Result<()> {
        let response = self.request("GET", path, None)?;
        let reader = std::io::BufReader::new(response.into_body().into_reader());
        let (mut kind, mut data) = (String::new(), String::new());
        for line in reader.lines() {
            let line = line.map_err(|e| ClientError::Unreachable {
                url: self.base.clone(),
                detail: e.to_string(),
            })?;
            if line.is_empty() {
                if !data.is_empty() && !on_event(&kind, &data) {
                    return Ok(());
                }
                kind.clear();
                data.clear();
            } else if let Some(k) = line.strip_prefix("event:") {
                kind = k.trim().to_string();
            } else if let Some(d) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(d.strip_prefix(' ').unwrap_or(d));
            }
        }
        Ok(())
    }
}

/// Percent-encodes a path segment or query value.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
