//! Job names: the identity of a job, taken from its file's stem.
//!
//! A name matches `[a-z0-9][a-z0-9._-]{0,62}`: safe in a path, a URL segment, an environment
//! variable's value and a metrics label without escaping.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Whether `text` can name a node or be one of its labels (`jobctl serve --node`, `--labels`,
/// a job's `runs_on`): 1 to 64 ASCII letters, digits, `.`, `_` or `-`.
pub fn is_label(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobName(String);

impl JobName {
    /// # Errors
    ///
    /// A [`NameError`] that says which rule `text` breaks.
    pub fn parse(text: &str) -> Result<JobName, NameError> {
        let mut chars = text.chars();
        match chars.next() {
            None => return Err(NameError::Empty),
            Some(c) if !(c.is_ascii_lowercase() || c.is_ascii_digit()) => {
                return Err(NameError::Start(text.to_string(), c));
            }
            Some(_) => {}
        }
        if let Some(c) = chars.find(|&c| {
            !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        }) {
            return Err(NameError::Character(text.to_string(), c));
        }
        if text.len() > 63 {
            return Err(NameError::Length(text.to_string()));
        }
        Ok(JobName(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why `name` cannot be a new job's name, if it cannot: the command line would read it as
/// something else. Checked for files and API definitions (the catalog), not for revisions
/// already recorded, so a job applied before the rule keeps running.
pub fn reserved(name: &str) -> Option<&'static str> {
    if matches!(name, "get" | "events" | "cancel" | "help") {
        Some(
            "`jobctl run get|events|cancel|help` are subcommands, so `jobctl run NAME` could not run it",
        )
    } else if name.bytes().all(|b| b.is_ascii_digit()) {
        Some("a name of digits only reads as a run id (`jobctl logs 42`)")
    } else {
        None
    }
}

/// Which rule a text breaks to be no [`JobName`]; each message ends with the rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the job name is empty; {RULE}")]
    Empty,
    #[error("job name `{0}` starts with `{1}`; {RULE}")]
    Start(String, char),
    #[error("job name `{0}` contains `{1}`; {RULE}")]
    Character(String, char),
    #[error("job name `{0}` is {len} characters long; {RULE}", len = .0.len())]
    Length(String),
}

const RULE: &str = "a job name is 1 to 63 characters of `a-z`, `0-9`, `.`, `_` and `-`, starting with a letter or digit";

impl TryFrom<String> for JobName {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        JobName::parse(&value)
    }
}

impl From<JobName> for String {
    fn from(value: JobName) -> Self {
        value.0
    }
}

impl fmt::Display for JobName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for JobName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        for ok in [
            "a",
            "nightly-backup",
            "db.vacuum_2",
            "0day",
            &"a".repeat(63),
        ] {
            assert!(JobName::parse(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("Backup", "starts with `B`"),
            ("-x", "starts with `-`"),
            ("a b", "contains ` `"),
            ("ünï", "starts with `ü`"),
            (&"a".repeat(64), "64 characters"),
        ] {
            let err = JobName::parse(bad).unwrap_err();
            assert!(err.to_string().contains(why), "{bad}: {err}");
        }
    }
}
