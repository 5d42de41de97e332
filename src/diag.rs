//! Diagnostics: what is wrong with a job file, where, and what to do about it.
//!
//! Every problem the core finds becomes a [`Diagnostic`] that names the file and, where known,
//! the line and column (1-based), says what was wrong and what was expected, and may carry a
//! `help` (a suggestion for a near miss). Rendering draws the offending line with a caret using
//! `annotate-snippets`. This module does not read files: the caller passes the source text.

use std::fmt;
use std::ops::Range;

use annotate_snippets::renderer::DecorStyle;
use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A position in a file: 1-based line and column (in characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The file as the user named it (relative to the working directory when possible).
    pub file: String,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(file: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            file: file.into(),
            position: None,
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(file: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(file, message)
        }
    }

    pub fn at(mut self, position: Option<Position>) -> Diagnostic {
        self.position = position;
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn maybe_help(mut self, help: Option<String>) -> Diagnostic {
        self.help = help;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    /// One line: `error: FILE:LINE:COL: MESSAGE (help: ...)`, the form for logs and tests.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}", self.file)?;
        if let Some(p) = self.position {
            write!(f, ":{}:{}", p.line, p.column)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, " (help: {help})")?;
        }
        Ok(())
    }
}

/// Returns the closest candidate to `input` when it is a plausible typo of it.
pub fn suggest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let input_lower = input.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::jaro_winkler(&input_lower, &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Byte offset of a 1-based line and character column in `source`.
pub fn offset_of(source: &str, position: Position) -> Option<usize> {
    let line_start = if position.line <= 1 {
        0
    } else {
        source
            .match_indices('\n')
            .nth(position.line - 2)
            .map(|(i, _)| i + 1)?
    };
    let line = &source[line_start..];
    let line = &line[..line.find('\n').unwrap_or(line.len())];
    let column = position.column.max(1) - 1;
    let within = line
        .char_indices()
        .nth(column)
        .map(|(i, _)| i)
        .unwrap_or(line.len());
    Some(line_start + within)
}

/// 1-based line and character column of a byte offset in `source`.
pub fn position_of(source: &str, offset: usize) -> Position {
    let offset = offset.min(source.len());
    let offset = (0..=offset)
        .rev()
        .find(|&i| source.is_char_boundary(i))
        .unwrap_or(0);
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = source[line_start..offset].chars().count() + 1;
    Position { line, column }
}

/// The span to underline: from the position to the end of the token there.
fn token_span(source: &str, position: Position) -> Option<Range<usize>> {
    let start = offset_of(source, position)?;
    let rest = &source[start..];
    let len = rest
        .find(|c: char| c.is_whitespace() || c == ':' || c == ',' || c == '=')
        .unwrap_or(rest.len());
    let end = if len == 0 {
        rest.chars().next().map_or(start, |c| start + c.len_utf8())
    } else {
        start + len
    };
    Some(start..end)
}

/// Renders diagnostics for a terminal: each with its source line and a caret when the source is
/// known. `source_of` returns a file's text by its displayed name.
pub fn render<'a>(
    diagnostics: &[Diagnostic],
    source_of: impl Fn(&str) -> Option<&'a str>,
    color: bool,
) -> String {
    let renderer = if color {
        Renderer::styled()
    } else {
        Renderer::plain()
    }
    .decor_style(DecorStyle::Ascii);
    let mut out = String::new();
    for d in diagnostics {
        let level = match d.severity {
            Severity::Error => Level::ERROR,
            Severity::Warning => Level::WARNING,
        };
        let source = source_of(&d.file).filter(|s| !s.is_empty());
        let span = match (source, d.position) {
            (Some(source), Some(p)) => token_span(source, p),
            _ => None,
        };
        let title = level.primary_title(d.message.as_str());
        let mut report: Vec<Group> = Vec::new();
        match (source, span) {
            (Some(source), Some(span)) => {
                report.push(
                    title.element(
                        Snippet::source(source)
                            .path(d.file.as_str())
                            .fold(true)
                            .annotation(AnnotationKind::Primary.span(span)),
                    ),
                );
            }
            _ => {
                let origin = match d.position {
                    Some(p) => format!("{}:{}:{}", d.file, p.line, p.column),
                    None => d.file.clone(),
                };
                report.push(title.element(annotate_snippets::Origin::path(origin)));
            }
        }
        if let Some(help) = &d.help {
            report.push(Group::with_title(
                Level::HELP.secondary_title(help.as_str()),
            ));
        }
        out.push_str(&renderer.render(&report));
        out.push_str("\n\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_offsets_round_trip() {
        let source = "a: 1\nbé: 2\n\nlast";
        for offset in [0, 3, 5, 9, 11, 12] {
            let p = position_of(source, offset);
            assert_eq!(
                offset_of(source, p),
                Some(offset),
                "offset {offset} -> {p:?}"
            );
        }
        assert_eq!(position_of(source, 9), Position { line: 2, column: 4 });
    }

    #[test]
    fn suggestions_catch_near_misses_only() {
        let fields = ["schedule", "timezone", "command"];
        assert_eq!(suggest("schedul", fields), Some("schedule"));
        assert_eq!(suggest("time_zone", fields), Some("timezone"));
        assert_eq!(suggest("banana", fields), None);
    }

    #[test]
    fn rendering_points_at_the_token() {
        let d = Diagnostic::error("jobs.d/a.yaml", "unknown field `schedul`")
            .at(Some(Position { line: 2, column: 1 }))
            .help("did you mean `schedule`?");
        let text = render(&[d], |_| Some("run: x\nschedul: '@daily'\n"), false);
        assert!(text.contains("jobs.d/a.yaml:2:1"), "{text}");
        assert!(text.contains("^^^^^^^"), "{text}");
        assert!(text.contains("help: did you mean `schedule`?"), "{text}");
    }
}
