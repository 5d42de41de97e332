//! The CLI's HTTP client for `--server URL`: ureq (blocking). An `https://` server is checked
//! against [`crate::tls::root_certs`]: the system's roots, `SSL_CERT_FILE`, and `--ca-cert`.
//! API errors come back as the server's own message with the status; a TLS failure as one line
//! saying what failed and where a private CA is given.

use std::io::BufRead;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::wire::ErrorBody;

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
    #[error("TLS with the server at {url} failed: {detail}")]
    Tls { url: String, detail: String },
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
    /// A client of the server at `base`; an `https://` one is trusted if its certificate
    /// chains to the system's roots, `SSL_CERT_FILE`'s, or `ca_cert`'s.
    ///
    /// # Errors
    ///
    /// `ca_cert` cannot be read or holds no certificate.
    pub fn new(base: &str, token: Option<String>, ca_cert: Option<&Path>) -> Result<Client> {
        let base = base.trim_end_matches('/').to_string();
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(std::time::Duration::from_secs(10)));
        // Only an https server needs the trust set (reading the system's roots takes
        // milliseconds); a CA file given anyway is still checked, so a typo is not silent.
        let https = base
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
        if https || ca_cert.is_some() {
            let roots = crate::tls::root_certs(ca_cert).map_err(|e| ClientError::Tls {
                url: base.clone(),
                detail: e.to_string(),
            })?;
            let roots: Vec<_> = roots
                .iter()
                .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
                .collect();
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .provider(ureq::tls::TlsProvider::Rustls)
                    .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(roots)))
                    .build(),
            );
        }
        Ok(Client {
            base,
            token,
            agent: config.build().new_agent(),
        })
    }

    /// A transport error as the user should read it: TLS failures say what failed.
    fn unreachable(&self, error: ureq::Error) -> ClientError {
        let tls = match &error {
            ureq::Error::Rustls(e) => Some(e),
            ureq::Error::Io(e) => e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()),
            _ => None,
        };
        match tls {
            Some(e) => ClientError::Tls {
                url: self.base.clone(),
                detail: describe_tls(e),
            },
            None => ClientError::Unreachable {
                url: self.base.clone(),
                detail: error.to_string(),
            },
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
        let mut response = self.agent.run(request).map_err(|e| self.unreachable(e))?;
        let status = response.status().as_u16();
        if status >= 400 {
            let text = response.body_mut().read_to_string().unwrap_or_default();
            return Err(match serde_json::from_str::<ErrorBody>(&text) {
                Ok(ErrorBody { error }) => ClientError::Api {
                    status,
                    code: error.code,
                    message: error.message,
                    diagnostics: error.diagnostics,
                },
                // Not the API's error shape (a proxy's page, say): its text is the message.
                Err(_) => ClientError::Api {
                    status,
                    code: String::new(),
                    message: text,
                    diagnostics: Vec::new(),
                },
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

/// Where a private CA is given, for every certificate problem.
const CA_HINT: &str =
    "if the server uses a private CA, pass --ca-cert FILE (or JOBS_CA_CERT, or SSL_CERT_FILE)";

/// One line for a TLS failure: what is wrong with the server's certificate, or the handshake.
fn describe_tls(error: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match error {
        rustls::Error::InvalidCertificate(cert) => {
            let what = match cert {
                C::UnknownIssuer => {
                    "the server's certificate is not signed by a certificate authority this machine trusts".to_string()
                }
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    "the server's certificate is not valid for this host name or address".to_string()
                }
                C::Expired | C::ExpiredContext { .. } => {
                    "the server's certificate has expired".to_string()
                }
                C::NotValidYet | C::NotValidYetContext { .. } => {
                    "the server's certificate is not valid yet (is this machine's clock right?)"
                        .to_string()
                }
                C::Revoked => "the server's certificate has been revoked".to_string(),
                other => format!("the server's certificate is not accepted ({other:?})"),
            };
            format!("{what}; {CA_HINT}")
        }
        rustls::Error::InvalidMessage(_) => format!(
            "the server did not answer in TLS ({error}); if it serves plain HTTP, use an http:// URL"
        ),
        other => other.to_string(),
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
