//! `{{ params.NAME }}` in `command` elements, `env` values, an `http` request's URL, headers
//! and body, and a `prompt`'s messages. Pure: text in, text out.
//!
//! Substitution never splits or quotes: a `command` element stays one argv element whatever
//! the value holds (spaces, quotes, newlines, `$(...)`), and no shell ever sees it. Where a
//! value lands inside a syntax, it is escaped for it (`render_with`): percent-encoded in a
//! URL, JSON-escaped in a JSON body. `run` scripts get parameters only as `JOBS_PARAM_NAME`
//! variables.

use std::collections::BTreeMap;

/// A placeholder as written: where it starts (a byte offset) and the parameter it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placeholder {
    pub offset: usize,
    pub len: usize,
    pub name: String,
}

/// Why a text's placeholders cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
}

/// The placeholders in `text`.
///
/// # Errors
///
/// The first `{{` that is not `{{ params.NAME }}`.
pub fn placeholders(text: &str) -> Result<Vec<Placeholder>, TemplateError> {
    let mut found = Vec::new();
    let mut rest = 0;
    while let Some(open) = text[rest..].find("{{").map(|i| rest + i) {
        let Some(close) = text[open..].find("}}").map(|i| open + i) else {
            return Err(TemplateError {
                offset: open,
                message: "`{{` is not closed by `}}`".into(),
            });
        };
        let inner = text[open + 2..close].trim();
        let Some(name) = inner.strip_prefix("params.") else {
            return Err(TemplateError {
                offset: open,
                message: format!(
                    "`{{{{ {inner} }}}}` is not a placeholder; only `{{{{ params.NAME }}}}` is substituted"
                ),
            });
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(TemplateError {
                offset: open,
                message: format!("`{name}` is not a parameter name"),
            });
        }
        found.push(Placeholder {
            offset: open,
            len: close + 2 - open,
            name: name.to_string(),
        });
        rest = close + 2;
    }
    Ok(found)
}

/// `text` with each placeholder replaced by its parameter's value (empty when it has none).
/// Text that does not parse is returned unchanged (validation refuses it before a run).
pub fn render(text: &str, values: &BTreeMap<String, String>) -> String {
    render_with(text, values, str::to_string)
}

/// [`render`], each value passed through `escape` (for a URL, a JSON string).
pub fn render_with(
    text: &str,
    values: &BTreeMap<String, String>,
    escape: impl Fn(&str) -> String,
) -> String {
    let Ok(found) = placeholders(text) else {
        return text.to_string();
    };
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for p in found {
        out.push_str(&text[at..p.offset]);
        out.push_str(&escape(values.get(&p.name).map_or("", String::as_str)));
        at = p.offset + p.len;
    }
    out.push_str(&text[at..]);
    out
}

/// The environment variable that carries parameter `name` to a process: `JOBS_PARAM_` and the
/// name in upper case, anything but ASCII letters and digits as `_` (`target` →
/// `JOBS_PARAM_TARGET`). Runs and `on_failure`/`on_success` scripts both use it.
pub fn param_env_var(name: &str) -> String {
    let mut var = String::with_capacity("JOBS_PARAM_".len() + name.len());
    var.push_str("JOBS_PARAM_");
    var.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        }
    }));
    var
}

/// `value` percent-encoded for any part of a URL: everything but RFC 3986's unreserved
/// characters (so a value never adds a `/`, `?`, `&` or `#` of its own).
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `value` escaped to sit inside a JSON string's quotes (serde_json's escaping, without the
/// quotes).
pub fn json_escape(value: &str) -> String {
    let quoted = serde_json::to_string(value).unwrap_or_default();
    quoted[1..quoted.len().saturating_sub(1).max(1)].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_found_and_substituted_verbatim() {
        let values = BTreeMap::from([
            (
                "branch".to_string(),
                "main; rm -rf / $(id) \"x\"\n'y'".to_string(),
            ),
            ("env".to_string(), "staging".to_string()),
        ]);
        let cases = [
            ("{{ params.branch }}", "main; rm -rf / $(id) \"x\"\n'y'"),
            ("--env={{params.env}}", "--env=staging"),
            ("{{ params.env }}/{{ params.env }}", "staging/staging"),
            ("no placeholders", "no placeholders"),
            ("{{ params.missing }}!", "!"),
            ("a } b }} c", "a } b }} c"),
        ];
        for (text, want) in cases {
            assert_eq!(render(text, &values), want, "{text}");
        }
    }

    #[test]
    fn parameters_become_upper_case_variables() {
        for (name, want) in [
            ("target", "JOBS_PARAM_TARGET"),
            ("dry_run2", "JOBS_PARAM_DRY_RUN2"),
            ("a-b.c", "JOBS_PARAM_A_B_C"),
            ("café", "JOBS_PARAM_CAF_"),
        ] {
            assert_eq!(param_env_var(name), want, "{name}");
        }
    }

    #[test]
    fn malformed_placeholders_are_refused_with_their_offset() {
        let cases = [
            ("x {{ params.a", 2, "not closed"),
            ("{{ env.HOME }}", 0, "only `{{ params.NAME }}`"),
            ("ab{{ params. }}", 2, "is not a parameter name"),
            ("{{ params.a-b }}", 0, "is not a parameter name"),
        ];
        for (text, offset, message) in cases {
            let e = placeholders(text).unwrap_err();
            assert_eq!(e.offset, offset, "{text}");
            assert!(e.message.contains(message), "{text}: {}", e.message);
        }
        let ok = placeholders("{{ params.a }} and {{params.b}}").unwrap();
        let names: Vec<&str> = ok.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn values_are_escaped_for_where_they_land() {
        let values = BTreeMap::from([("q".to_string(), "a b/&\"é\n".to_string())]);
        let url = render_with("https://x/?q={{ params.q }}", &values, percent_encode);
        assert_eq!(url, "https://x/?q=a%20b%2F%26%22%C3%A9%0A");
        let json = render_with("{\"q\": \"{{ params.q }}\"}", &values, json_escape);
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed["q"], "a b/&\"é\n");
    }
}
