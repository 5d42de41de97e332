//! A job definition as the API receives it: its syntax from the `Content-Type` (JSON, YAML
//! or TOML), its text kept as sent so diagnostics point at the client's own lines, and RFC 7396
//! merge patches for `PATCH /v1/jobs/{name}`.

use axum::http::{HeaderMap, StatusCode};

use super::error::{ApiError, ApiResult};

/// The text of a definition body, JSON or YAML (JSON is YAML, so one parser reads both).
/// The syntax of a definition sent to the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Format {
    /// YAML, and JSON (which is YAML).
    Yaml,
    Toml,
}

impl Format {
    pub(super) fn extension(self) -> &'static str {
        match self {
            Format::Yaml => "yaml",
            Format::Toml => "toml",
        }
    }
}

/// A definition as sent: validated as a file of its format would be, so the positions of its
/// diagnostics are those of the client's file (`positions`: false for a merged document).
pub(super) struct Definition {
    pub(super) text: String,
    pub(super) format: Format,
    pub(super) positions: bool,
}

pub(super) fn definition_text(headers: &HeaderMap, body: &[u8]) -> ApiResult<Definition> {
    let format = match super::media_type(headers).as_deref() {
        Some(
            "application/json" | "application/yaml" | "application/x-yaml" | "text/yaml"
            | "text/x-yaml",
        ) => Format::Yaml,
        Some("application/toml" | "text/toml" | "text/x-toml") => Format::Toml,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "the body is `{other}`; send a job definition as `application/json`, `application/yaml` or `application/toml`"
                ),
            ));
        }
        None => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "a definition needs `Content-Type: application/json`, `application/yaml` or `application/toml`",
            ));
        }
    };
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("the body is not UTF-8 text"))?;
    Ok(Definition {
        text,
        format,
        positions: true,
    })
}

/// A definition's text as a JSON value (from JSON, YAML or TOML).
pub(super) fn definition_value(text: &str, format: Format) -> ApiResult<serde_json::Value> {
    match format {
        Format::Yaml => serde_saphyr::from_str::<serde_json::Value>(text)
            .map_err(|e| ApiError::bad_request(format!("the body is neither JSON nor YAML: {e}"))),
        Format::Toml => toml::from_str::<serde_json::Value>(text)
            .map_err(|e| ApiError::bad_request(format!("the body is not TOML: {e}"))),
    }
}

/// RFC 7396 JSON merge patch: objects merge key by key, `null` removes, anything else replaces.
pub(super) fn merge_patch(target: &mut serde_json::Value, patch: serde_json::Value) {
    match (target, patch) {
        (serde_json::Value::Object(t), serde_json::Value::Object(p)) => {
            for (key, value) in p {
                if value.is_null() {
                    t.remove(&key);
                } else {
                    merge_patch(t.entry(key).or_insert(serde_json::Value::Null), value);
                }
            }
        }
        (t, p) => *t = p,
    }
}
