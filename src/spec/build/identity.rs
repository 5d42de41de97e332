//! Who the job is: its name (the file's stem), its time zone, its tags.

use super::super::raw::Loc;
use super::*;

/// The job's name: the file's stem; `name:` may repeat it, and must then match.
pub(super) fn name(b: &mut Builder, written: Option<&Loc<String>>) -> Option<JobName> {
    let path = b.path;
    let file_name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    let stem = file_name
        .rsplit_once('.')
        .map_or(file_name, |(stem, _)| stem);
    let name = match JobName::parse(stem) {
        Ok(n) => Some(n),
        Err(e) => {
            b.push(
                Diagnostic::error(
                    path,
                    format!("the file name gives the job its name, and {e}"),
                )
                .help("rename the file"),
            );
            None
        }
    };
    if let Some(written) = written
        && written.value != stem
    {
        b.error(
            written.at,
            format!(
                "`name: {}` does not match the file's name `{stem}`",
                written.value
            ),
        )
        .help = Some(format!(
            "a job's name is its file's name: rename the file to `{}.{}` or remove `name:`",
            written.value,
            file_name.rsplit_once('.').map_or("yaml", |(_, e)| e)
        ));
    }
    name
}

/// The zone the job's times are read in: its own `timezone`, or the configuration's default.
/// It comes before the schedule: `at` and `start_at` are read in it.
pub(super) fn timezone(
    b: &mut Builder,
    written: Option<&Loc<String>>,
    defaults: &Defaults,
) -> Option<Zone> {
    match written {
        Some(tz) => match resolve_timezone(&tz.value) {
            Ok((name, tz_value)) => Some(Zone {
                name,
                tz: tz_value,
                explicit: true,
            }),
            Err(e) => {
                let help = e.suggestion.clone();
                b.error(tz.at, e.to_string()).help = help;
                None
            }
        },
        None => resolve_timezone(&defaults.timezone)
            .ok()
            .map(|(name, tz)| Zone {
                name,
                tz,
                explicit: false,
            }),
    }
}

/// `tags`: each non-empty, without spaces or commas; a repeated tag counts once.
pub(super) fn tags(b: &mut Builder, raw: Option<Vec<Loc<String>>>) -> Vec<String> {
    let mut tags = Vec::new();
    for tag in raw.unwrap_or_default() {
        if tag.value.is_empty() || tag.value.chars().any(|c| c.is_whitespace() || c == ',') {
            b.error(
                tag.at,
                format!(
                    "tag `{}` must be non-empty, without spaces or commas",
                    tag.value
                ),
            );
        } else if !tags.contains(&tag.value) {
            tags.push(tag.value);
        }
    }
    tags
}

/// `runs_on`: node labels (as `jobctl serve --labels` names them), none twice, in order.
pub(super) fn runs_on(b: &mut Builder, raw: Option<Vec<Loc<String>>>) -> Vec<String> {
    let mut labels: Vec<String> = Vec::new();
    for label in raw.unwrap_or_default() {
        if !crate::name::is_label(&label.value) {
            b.error(
                label.at,
                format!(
                    "runs_on: `{}` is not a node label; use 1 to 64 letters, digits, `.`, `_` or `-`",
                    label.value
                ),
            );
        } else if labels.contains(&label.value) {
            b.error(
                label.at,
                format!("`{}` is listed twice in runs_on", label.value),
            );
        } else {
            labels.push(label.value);
        }
    }
    labels
}
