//! The job file as written: serde shapes that keep the position of every value.
//!
//! YAML (serde-saphyr) and TOML (toml) both deserialize into these types. [`Loc`] records where
//! a value was written by delegating to whichever format's `Spanned` is active for the current
//! parse ([`with_format`]); that keeps one `RawJob` for both formats instead of two copies.
//! Nothing here judges a value beyond its shape: `spec::build` does that.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

/// The syntax being deserialized, which decides how [`Loc`] finds positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Toml,
    /// Any other deserializer (JSON from the API, tests): values carry no position.
    Plain,
}

thread_local! {
    static FORMAT: Cell<Format> = const { Cell::new(Format::Plain) };
}

/// Runs `f` with [`Loc`] reading positions the way `format` provides them.
pub fn with_format<R>(format: Format, f: impl FnOnce() -> R) -> R {
    let previous = FORMAT.with(|c| c.replace(format));
    let result = f();
    FORMAT.with(|c| c.set(previous));
    result
}

/// Where a value was written: a line and column (YAML) or a byte offset (TOML).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum At {
    #[default]
    Unknown,
    LineColumn(u64, u64),
    Byte(usize),
}

/// A value and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loc<T> {
    pub value: T,
    pub at: At,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Loc<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match FORMAT.with(Cell::get) {
            Format::Yaml => {
                let spanned = serde_saphyr::Spanned::<T>::deserialize(deserializer)?;
                let l = spanned.referenced;
                let at = if l == serde_saphyr::Location::UNKNOWN {
                    At::Unknown
                } else {
                    At::LineColumn(l.line(), l.column())
                };
                Ok(Loc {
                    value: spanned.value,
                    at,
                })
            }
            Format::Toml => {
                let spanned = toml::Spanned::<T>::deserialize(deserializer)?;
                let at = At::Byte(spanned.span().start);
                Ok(Loc {
                    value: spanned.into_inner(),
                    at,
                })
            }
            Format::Plain => Ok(Loc {
                value: T::deserialize(deserializer)?,
                at: At::Unknown,
            }),
        }
    }
}

/// A map that keeps its keys' positions and its order (keys are unique: both parsers reject
/// duplicate keys before we see them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocMap<V>(pub Vec<(Loc<String>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for LocMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = LocMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(LocMap(entries))
            }
        }
        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

/// A job file as written. Every field is optional here; `build` decides what is required.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJob {
    pub name: Option<Loc<String>>,
    pub description: Option<Loc<String>>,
    pub enabled: Option<bool>,
    pub schedule: Option<Loc<RawSchedule>>,
    pub timezone: Option<Loc<String>>,
    pub jitter: Option<Loc<String>>,
    pub command: Option<Loc<RawCommand>>,
    pub run: Option<Loc<String>>,
    pub shell: Option<Loc<String>>,
    pub http: Option<Loc<RawHttp>>,
    pub prompt: Option<Loc<RawPrompt>>,
    pub env: Option<LocMap<Loc<String>>>,
    pub working_dir: Option<Loc<String>>,
    pub timeout: Option<Loc<String>>,
    pub retry: Option<Loc<RawRetry>>,
    pub concurrency: Option<Loc<String>>,
    pub missed: Option<Loc<String>>,
    pub starting_deadline: Option<Loc<String>>,
    pub depends_on: Option<Vec<Loc<String>>>,
    pub params: Option<LocMap<Loc<RawParam>>>,
    pub webhook: Option<Loc<RawWebhook>>,
    pub repeat: Option<Loc<RawRepeat>>,
    pub on_failure: Option<Vec<Loc<RawNotification>>>,
    pub on_success: Option<Vec<Loc<RawNotification>>>,
    pub history: Option<Loc<RawHistory>>,
    pub output_limit: Option<Loc<RawSize>>,
    pub tags: Option<Vec<Loc<String>>>,
    pub runs_on: Option<Vec<Loc<String>>>,
    pub success_when: Option<Loc<RawSuccessWhen>>,
}

/// `success_when:` as written: one of its two keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSuccessWhen {
    pub output_matches: Option<Loc<String>>,
    pub output_not_matches: Option<Loc<String>>,
}

/// `http:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub method: Option<Loc<String>>,
    pub url: Option<Loc<String>>,
    pub headers: Option<LocMap<Loc<RawHeader>>>,
    /// Text, or any structure (sent as JSON).
    pub body: Option<Loc<serde_json::Value>>,
    /// A status, a class (`2xx`), a range (`200-204`), or a list of them.
    pub expect: Option<Loc<serde_json::Value>>,
    pub timeout: Option<Loc<String>>,
}

/// A header's value as written: text, or where a secret is.
#[derive(Debug)]
pub enum RawHeader {
    Text(String),
    From(RawHeaderFrom),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaderFrom {
    pub env: Option<Loc<String>>,
    pub secret_file: Option<Loc<String>>,
    pub prefix: Option<Loc<String>>,
}

impl<'de> Deserialize<'de> for RawHeader {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeaderVisitor;
        impl<'de> Visitor<'de> for HeaderVisitor {
            type Value = RawHeader;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a header value, or a map with `env: VAR` or `secret_file: PATH`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawHeader::Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(RawHeader::Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(RawHeader::Text(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawHeaderFrom::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawHeader::From)
            }
        }
        deserializer.deserialize_any(HeaderVisitor)
    }
}

/// `prompt:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrompt {
    pub provider: Option<Loc<String>>,
    pub model: Option<Loc<String>>,
    pub system: Option<Loc<String>>,
    pub prompt: Option<Loc<String>>,
    pub max_tokens: Option<Loc<i64>>,
    pub temperature: Option<Loc<f64>>,
}

/// The field names of [`RawJob`], for suggestions.
pub const JOB_FIELDS: &[&str] = &[
    "name",
    "description",
    "enabled",
    "schedule",
    "timezone",
    "jitter",
    "command",
    "run",
    "shell",
    "http",
    "prompt",
    "env",
    "working_dir",
    "timeout",
    "retry",
    "concurrency",
    "missed",
    "starting_deadline",
    "depends_on",
    "params",
    "webhook",
    "repeat",
    "on_failure",
    "on_success",
    "history",
    "output_limit",
    "runs_on",
    "tags",
    "success_when",
];

/// `schedule:` is a cron string or a map. Hand-written rather than `#[serde(untagged)]`, which
/// would buffer the map and lose the positions inside it and the name of an unknown key.
#[derive(Debug)]
pub enum RawSchedule {
    Cron(String),
    Map(RawScheduleMap),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScheduleMap {
    pub cron: Option<Loc<String>>,
    pub every: Option<Loc<String>>,
    pub start_at: Option<Loc<RawTime>>,
    pub at: Option<Loc<RawTime>>,
    pub after: Option<Vec<Loc<String>>>,
}

pub const SCHEDULE_FIELDS: &[&str] = &["cron", "every", "start_at", "at", "after"];

impl<'de> Deserialize<'de> for RawSchedule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScheduleVisitor;
        impl<'de> Visitor<'de> for ScheduleVisitor {
            type Value = RawSchedule;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a cron expression such as \"0 2 * * *\", or a map with one of `cron`, `every`, `at`, `after`",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawSchedule::Cron(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawScheduleMap::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawSchedule::Map)
            }
        }
        deserializer.deserialize_any(ScheduleVisitor)
    }
}

/// A time as written: TOML has a native date-time type, YAML and JSON give a string.
#[derive(Debug)]
pub struct RawTime(pub String);

impl<'de> Deserialize<'de> for RawTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimeVisitor;
        impl<'de> Visitor<'de> for TimeVisitor {
            type Value = RawTime;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a date-time such as 2026-12-24T18:00:00+01:00 or 2026-12-24T18:00:00")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawTime(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                // toml hands a native date-time over as a one-entry map.
                let datetime =
                    toml::value::Datetime::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawTime(datetime.to_string()))
            }
        }
        deserializer.deserialize_any(TimeVisitor)
    }
}

/// `command:` should be a list; a string is accepted here so that `build` can explain the
/// difference between `command` and `run` instead of a bare type error.
#[derive(Debug)]
pub enum RawCommand {
    List(Vec<String>),
    String(String),
}

impl<'de> Deserialize<'de> for RawCommand {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CommandVisitor;
        impl<'de> Visitor<'de> for CommandVisitor {
            type Value = RawCommand;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of strings (the program and its arguments)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawCommand::String(v.to_string()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(RawCommand::List(items))
            }
        }
        deserializer.deserialize_any(CommandVisitor)
    }
}

/// A size: a string with a unit, or a number of bytes.
#[derive(Debug)]
pub enum RawSize {
    Text(String),
    Bytes(u64),
}

impl<'de> Deserialize<'de> for RawSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl<'de> Visitor<'de> for SizeVisitor {
            type Value = RawSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as \"1 MiB\" or a number of bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawSize::Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(RawSize::Bytes(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map(RawSize::Bytes)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub attempts: Option<Loc<u32>>,
    pub backoff: Option<Loc<String>>,
    pub max_backoff: Option<Loc<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawParam {
    pub default: Option<Loc<String>>,
    pub required: Option<bool>,
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub secret_env: Option<Loc<String>>,
    pub secret_file: Option<Loc<String>>,
    pub require_timestamp: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRepeat {
    pub times: Option<Loc<u32>>,
    pub until: Option<Loc<String>>,
}

/// One item of `on_failure` or `on_success`. `after` is accepted in both here; `build` explains
/// that it only applies to `on_failure`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotification {
    pub webhook: Option<Loc<String>>,
    pub slack: Option<Loc<String>>,
    pub email: Option<Loc<RawEmail>>,
    pub run: Option<Loc<String>>,
    pub after: Option<Loc<u32>>,
}

/// `email:` is one address or a list of them.
#[derive(Debug)]
pub enum RawEmail {
    One(String),
    List(Vec<Loc<String>>),
}

impl<'de> Deserialize<'de> for RawEmail {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EmailVisitor;
        impl<'de> Visitor<'de> for EmailVisitor {
            type Value = RawEmail;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an address such as ops@example.com, or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawEmail::One(v.to_string()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Loc<String>>()? {
                    items.push(item);
                }
                Ok(RawEmail::List(items))
            }
        }
        deserializer.deserialize_any(EmailVisitor)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHistory {
    pub keep_runs: Option<Loc<u32>>,
    pub max_age: Option<Loc<String>>,
}
