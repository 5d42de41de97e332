//! What a notification says: the headline, subject, plain text and Slack text of an
//! [`Outcome`], and the tail of the run's output.

use super::*;

/// The state in words: `failed`, `timed out`, ….
pub(super) fn state_words(state: &str) -> String {
    match state {
        "timed_out" => "timed out".to_string(),
        "cancelled" => "was cancelled".to_string(),
        other => other.replace('_', " "),
    }
}

/// `backup failed on web-1 (exit 2)`: what a mail's subject and a Slack message open with.
pub fn headline(outcome: &Outcome) -> String {
    let mut line = format!(
        "{} {} on {}",
        outcome.job,
        state_words(&outcome.state),
        outcome.host
    );
    if let Some(code) = outcome.exit_code.filter(|&c| c != 0) {
        line.push_str(&format!(" (exit {code})"));
    }
    line
}

/// A mail's subject: `[jobctl] backup failed on web-1 (exit 2)`.
pub fn subject(outcome: &Outcome) -> String {
    format!("[jobctl] {}", headline(outcome))
}

/// A run's duration for people: `850ms`, `5s`, `1h 2m 3s`.
pub(super) fn shown_duration(ms: i64) -> String {
    if ms < 1000 {
        format!("{}ms", ms.max(0))
    } else {
        crate::duration::Duration::from_secs((ms + 500) / 1000).to_string()
    }
}

/// The fields a message lists, in order: `(label, value)`.
pub(super) fn fields(outcome: &Outcome) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("Job", outcome.job.clone()),
        (
            "Run",
            format!(
                "{} (attempt {}, trigger {})",
                outcome.run_id, outcome.attempt, outcome.trigger
            ),
        ),
        ("State", outcome.state.clone()),
    ];
    if let Some(code) = outcome.exit_code {
        fields.push(("Exit code", code.to_string()));
    }
    if let Some(error) = &outcome.error {
        fields.push(("Error", error.clone()));
    }
    if let Some(ms) = outcome.duration_ms {
        fields.push(("Duration", shown_duration(ms)));
    }
    if let Some(started) = &outcome.started_at {
        fields.push(("Started", started.clone()));
    }
    fields.push(("Finished", outcome.finished_at.clone()));
    fields.push(("Host", outcome.host.clone()));
    if outcome.failure_streak > 1 {
        fields.push((
            "Streak",
            format!("{} consecutive failures", outcome.failure_streak),
        ));
    }
    if let Some(url) = &outcome.url {
        fields.push(("Link", url.clone()));
    }
    fields
}

/// A mail's plain-text body: the headline, the fields, the output's last lines.
pub fn text(outcome: &Outcome) -> String {
    let mut text = format!("{}.\n\n", headline(outcome));
    for (label, value) in fields(outcome) {
        text.push_str(&format!("{:<10} {value}\n", format!("{label}:")));
    }
    if outcome.output_tail.is_empty() {
        text.push_str("\nThe run wrote no output.\n");
    } else {
        text.push_str("\nLast lines of output:\n\n");
        for line in outcome.output_tail.lines() {
            text.push_str("    ");
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}

/// A Slack message (`mrkdwn`): the headline in bold, the fields, the output in a code block.
pub fn slack_text(outcome: &Outcome) -> String {
    // Slack reads `&`, `<` and `>` as markup; these three are all it asks to escape.
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut text = format!("*{}*\n", escape(&headline(outcome)));
    for (label, value) in fields(outcome) {
        let value = match label {
            "Link" => format!("<{value}|run {}>", outcome.run_id),
            _ => escape(&value),
        };
        text.push_str(&format!("{label}: {value}\n"));
    }
    if !outcome.output_tail.is_empty() {
        // A code block ends at the first ```: keep the output from closing it early.
        let tail = escape(&outcome.output_tail).replace("```", "`\u{200b}``");
        text.push_str(&format!("```\n{tail}\n```\n"));
    }
    text
}

/// The last [`TAIL_LINES`] of `lines`, at most [`TAIL_BYTES`] in all (a longer last line
/// keeps its end), joined by newlines.
pub fn tail<'a>(lines: impl IntoIterator<Item = &'a str>) -> String {
    let mut kept: std::collections::VecDeque<&str> = std::collections::VecDeque::new();
    for line in lines {
        if kept.len() == TAIL_LINES {
            kept.pop_front();
        }
        kept.push_back(line);
    }
    let mut bytes = 0;
    let mut out: Vec<&str> = Vec::new();
    for line in kept.iter().rev() {
        let room = TAIL_BYTES.saturating_sub(bytes);
        if line.len() + 1 > room {
            if out.is_empty() {
                let mut start = line.len() - room.min(line.len());
                while !line.is_char_boundary(start) {
                    start += 1;
                }
                out.push(&line[start..]);
            }
            break;
        }
        bytes += line.len() + 1;
        out.push(line);
    }
    out.reverse();
    out.join("\n")
}
