//! The catalog: every job file of a folder, parsed and checked against each other.
//!
//! `spec` judges one file; the catalog adds what needs them all: names unique across
//! subfolders, `depends_on` and `after` naming jobs that exist, and no cycles among them. It
//! parses files in parallel (each parse is independent and pure). It reads no files itself:
//! the caller passes their bytes.

use std::collections::{BTreeMap, HashMap};

use rayon::prelude::*;

use crate::diag::{Diagnostic, Severity};
use crate::name::JobName;
use crate::spec::{self, Context, JobSpec, Reference};

/// A job file's content, as read by the caller.
#[derive(Clone, Debug)]
pub struct FileInput<'a> {
    /// The path shown to users.
    pub display: &'a str,
    /// The path relative to the jobs folder, recorded with each revision.
    pub relative: &'a str,
    pub bytes: &'a [u8],
}

/// A valid job of the catalog.
#[derive(Clone, Debug)]
pub struct Entry {
    pub spec: JobSpec,
    pub file: String,
    pub relative: String,
    pub hash: String,
}

#[derive(Debug, Default)]
pub struct Catalog {
    /// Valid jobs, by name.
    pub entries: Vec<Entry>,
    /// Every problem, errors and warnings, in file order.
    pub diagnostics: Vec<Diagnostic>,
    pub n_files: usize,
}

impl Catalog {
    pub fn n_errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    pub fn n_warnings(&self) -> usize {
        self.diagnostics.len() - self.n_errors()
    }

    pub fn is_valid(&self) -> bool {
        self.n_errors() == 0
    }

    /// Drops the "`at` is in the past" warning of each `at` job that `fired(name, hash)` says
    /// has already fired under this very definition: a one-off that did its work is not a
    /// mistake, and would otherwise warn on every plan forever. A changed definition still
    /// warns, since its new past `at` will never fire.
    pub fn quiet_fired_at(&mut self, fired: impl Fn(&str, &str) -> bool) {
        let quiet: Vec<&str> = self
            .entries
            .iter()
            .filter(|e| matches!(e.spec.schedule, crate::schedule::Schedule::At(_)))
            .filter(|e| fired(e.spec.name.as_str(), &e.hash))
            .map(|e| e.file.as_str())
            .collect();
        self.diagnostics
            .retain(|d| !(spec::is_past_at_warning(d) && quiet.contains(&d.file.as_str())));
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.spec.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.entries[i])
    }
}

/// Parses and checks every file. `other_jobs` are names that exist outside the files (jobs
/// owned by the API) and may be depended on.
pub fn build(files: &[FileInput<'_>], context: Context<'_>, other_jobs: &[String]) -> Catalog {
    build_with(files, other_jobs, |f| {
        (spec::parse(f.display, f.bytes, context), None)
    })
}

/// [`build`] with the parse of one file supplied by the caller, with its content hash if known:
/// the daemon passes one that reuses the previous parse and hash of an unchanged file.
pub fn build_with(
    files: &[FileInput<'_>],
    other_jobs: &[String],
    parse: impl Fn(&FileInput<'_>) -> (spec::Parsed, Option<String>) + Sync,
) -> Catalog {
    let parsed: Vec<(usize, spec::Parsed, Option<String>)> = files
        .par_iter()
        .enumerate()
        .map(|(i, f)| {
            let (parsed, hash) = parse(f);
            let hash = hash.or_else(|| parsed.spec.as_ref().map(spec::normal::content_hash));
            (i, parsed, hash)
        })
        .collect();
    let mut diagnostics = Vec::new();
    let mut entries: Vec<Entry> = Vec::new();
    let mut references: Vec<(usize, Vec<Reference>)> = Vec::new();
    // Names from every file, valid or not, so a broken file still claims its name.
    let mut claimed: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, p, hash) in parsed {
        let f = &files[i];
        diagnostics.extend(p.diagnostics);
        let stem = f
            .display
            .rsplit(['/', '\\'])
            .next()
            .and_then(|n| n.rsplit_once('.').map(|(s, _)| s))
            .unwrap_or(f.display);
        claimed.entry(stem.to_string()).or_default().push(i);
        if let Some(spec) = p.spec {
            references.push((entries.len(), p.references));
            entries.push(Entry {
                hash: hash.unwrap_or_else(|| spec::normal::content_hash(&spec)),
                spec,
                file: f.display.to_string(),
                relative: f.relative.to_string(),
            });
        }
    }
    check_names(files, &claimed, other_jobs, &mut diagnostics);
    let mut keep: Vec<bool> = entries
        .iter()
        .map(|e| {
            claimed
                .get(e.spec.name.as_str())
                .is_some_and(|files| files.len() == 1)
                && !other_jobs.iter().any(|o| o == e.spec.name.as_str())
                && crate::name::reserved(e.spec.name.as_str()).is_none()
        })
        .collect();

    check_references(
        &entries,
        &references,
        &claimed,
        other_jobs,
        &mut keep,
        &mut diagnostics,
    );
    check_cycles(&entries, &references, &mut keep, &mut diagnostics);
    let valid = sorted_by_name(
        entries
            .into_iter()
            .zip(keep)
            .filter_map(|(e, k)| k.then_some(e))
            .collect(),
    );
    diagnostics.sort_by(|a, b| {
        (a.file.as_str(), a.position, a.severity == Severity::Warning).cmp(&(
            b.file.as_str(),
            b.position,
            b.severity == Severity::Warning,
        ))
    });
    Catalog {
        entries: valid,
        diagnostics,
        n_files: files.len(),
    }
}

/// Names claimed by more than one file, reserved by the command line, or taken by the API:
/// an error of each file that claims one.
fn check_names(
    files: &[FileInput<'_>],
    claimed: &BTreeMap<String, Vec<usize>>,
    other_jobs: &[String],
    diagnostics: &mut Vec<Diagnostic>,
) {
    for (name, indices) in claimed {
        if indices.len() > 1 {
            for &i in indices {
                let others: Vec<&str> = indices
                    .iter()
                    .filter(|&&j| j != i)
                    .map(|&j| files[j].display)
                    .collect();
                diagnostics.push(
                    Diagnostic::error(
                        files[i].display,
                        format!("job `{name}` is also defined in {}", others.join(", ")),
                    )
                    .help("job names are unique across subfolders; rename one of the files"),
                );
            }
        }
    }
    // Names the command line would read as something else: `jobctl run get 5` is the `get`
    // subcommand, `jobctl logs 2024` a run id.
    for (name, indices) in claimed {
        if let Some(why) = crate::name::reserved(name) {
            for &i in indices {
                diagnostics.push(
                    Diagnostic::error(
                        files[i].display,
                        format!("job name `{name}` is reserved: {why}"),
                    )
                    .help("rename the file"),
                );
            }
        }
    }
    // A name that exists outside the files (an API-owned job) is that file's error alone:
    // the file's job is not applied, everything else is.
    for (name, indices) in claimed {
        if other_jobs.iter().any(|o| o == name) {
            for &i in indices {
                diagnostics.push(
                    Diagnostic::error(
                        files[i].display,
                        format!(
                            "job `{name}` was created through the API; a file cannot take it over"
                        ),
                    )
                    .help(format!(
                        "rename this file, or delete the API's job first (`jobctl delete {name} --server URL`)"
                    )),
                );
            }
        }
    }
}

/// References (`depends_on`, `after`) must name a job that exists: as a file, valid or not,
/// or outside the files. A job with a dangling reference is not kept.
fn check_references(
    entries: &[Entry],
    references: &[(usize, Vec<Reference>)],
    claimed: &BTreeMap<String, Vec<usize>>,
    other_jobs: &[String],
    keep: &mut [bool],
    diagnostics: &mut Vec<Diagnostic>,
) {
    let exists = |name: &str| claimed.contains_key(name) || other_jobs.iter().any(|o| o == name);
    for (index, refs) in references {
        for r in refs {
            if !exists(r.target.as_str()) {
                let known = claimed.keys().map(String::as_str);
                let help = Some(
                    crate::diag::suggest(r.target.as_str(), known)
                        .map_or_else(|| format!(
                            "no job file defines `{}`; if it was removed on purpose, remove it from this list too",
                            r.target
                        ), |s| format!("did you mean `{s}`?")),
                );
                diagnostics.push(
                    Diagnostic::error(
                        entries[*index].file.as_str(),
                        format!("{} names `{}`, but there is no such job", r.field, r.target),
                    )
                    .at(r.position)
                    .maybe_help(help),
                );
                keep[*index] = false;
            }
        }
    }
}

/// Cycles across `depends_on` and `after`: an error at the first job of each, whose jobs are
/// not kept.
fn check_cycles(
    entries: &[Entry],
    references: &[(usize, Vec<Reference>)],
    keep: &mut [bool],
    diagnostics: &mut Vec<Diagnostic>,
) {
    let by_name: HashMap<&str, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.spec.name.as_str(), i))
        .collect();
    for cycle in find_cycles(entries, &by_name) {
        let first = cycle[0];
        let path: Vec<&str> = cycle
            .iter()
            .chain(std::iter::once(&first))
            .map(|&i| entries[i].spec.name.as_str())
            .collect();
        let position = references
            .iter()
            .find(|(i, _)| *i == first)
            .and_then(|(_, refs)| {
                refs.iter()
                    .find(|r| r.target.as_str() == path[1])
                    .and_then(|r| r.position)
            });
        diagnostics.push(
            Diagnostic::error(
                entries[first].file.as_str(),
                format!("dependency cycle: {}", path.join(" -> ")),
            )
            .at(position)
            .help("a job cannot wait, directly or not, for itself; remove one of the links"),
        );
        for i in cycle {
            keep[i] = false;
        }
    }
}

/// `entries` by job name. Sorted through their indices: an `Entry` is large, and a merge
/// sort moving 10,000 of them cost more than its comparisons (a tenth of a `plan`).
fn sorted_by_name(entries: Vec<Entry>) -> Vec<Entry> {
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by(|&a, &b| entries[a].spec.name.cmp(&entries[b].spec.name));
    let mut slots: Vec<Option<Entry>> = entries.into_iter().map(Some).collect();
    order
        .into_iter()
        .map(|i| slots[i].take().expect("each index once"))
        .collect()
}

fn edges(spec: &JobSpec) -> impl Iterator<Item = &JobName> {
    let after = match &spec.schedule {
        crate::schedule::Schedule::After(jobs) => jobs.as_slice(),
        _ => &[],
    };
    spec.depends_on.iter().chain(after)
}

/// Each cycle once, as the indices along it, found by depth-first search.
fn find_cycles(entries: &[Entry], by_name: &HashMap<&str, usize>) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    let mut marks = vec![Mark::New; entries.len()];
    let mut cycles = Vec::new();
    for root in 0..entries.len() {
        if marks[root] != Mark::New {
            continue;
        }
        // Iterative DFS: (node, next edge index); `stack` mirrors the current path.
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        marks[root] = Mark::OnStack;
        while let Some(&mut (node, ref mut edge)) = stack.last_mut() {
            let next = edges(&entries[node].spec).nth(*edge);
            *edge += 1;
            // An edge to an unknown job was already reported; it cannot be part of a cycle.
            match next.map(|n| by_name.get(n.as_str()).copied()) {
                None => {
                    marks[node] = Mark::Done;
                    stack.pop();
                }
                Some(None) => {}
                Some(Some(target)) => match marks[target] {
                    Mark::New => {
                        marks[target] = Mark::OnStack;
                        stack.push((target, 0));
                    }
                    Mark::OnStack => {
                        let start = stack
                            .iter()
                            .position(|&(n, _)| n == target)
                            .expect("on the stack");
                        cycles.push(stack[start..].iter().map(|&(n, _)| n).collect());
                    }
                    Mark::Done => {}
                },
            }
        }
    }
    cycles
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::spec::Defaults;

    /// The catalog of `files` (path under `jobs.d/`, text) with `api` jobs outside the files:
    /// its valid jobs and each diagnostic as one line (`error: FILE[:L:C]: MESSAGE`, no help).
    fn check(files: &[(&str, &str)], api: &[&str], entries: &[&str], diagnostics: &[&str]) {
        let catalog = catalog(files, api);
        let names: Vec<&str> = catalog
            .entries
            .iter()
            .map(|e| e.spec.name.as_str())
            .collect();
        let found: Vec<String> = catalog
            .diagnostics
            .iter()
            .map(|d| d.clone().maybe_help(None).to_string())
            .collect();
        assert_eq!(names, entries, "{files:?}");
        assert_eq!(found, diagnostics, "{files:?}");
        assert_eq!(catalog.n_files, files.len());
        assert_eq!(catalog.is_valid(), catalog.n_errors() == 0);
    }

    /// The catalog of `files` (path under `jobs.d/`, text) at 2026-03-20T12:00:00Z; `api` names
    /// jobs the API owns. Also what `plan`'s tests build on.
    pub(crate) fn catalog(files: &[(&str, &str)], api: &[&str]) -> Catalog {
        let displays: Vec<String> = files.iter().map(|(p, _)| format!("jobs.d/{p}")).collect();
        let inputs: Vec<FileInput> = files
            .iter()
            .zip(&displays)
            .map(|((path, text), display)| FileInput {
                display,
                relative: path,
                bytes: text.as_bytes(),
            })
            .collect();
        let defaults = Defaults::default();
        let context = Context {
            defaults: &defaults,
            now: "2026-03-20T12:00:00Z".parse().unwrap(),
        };
        let api: Vec<String> = api.iter().map(ToString::to_string).collect();
        build(&inputs, context, &api)
    }

    const JOB: &str = "command: [x]\n";

    #[test]
    fn names_are_unique_across_subfolders_and_free_of_the_api_and_the_command_line() {
        check(
            &[
                ("a.yaml", JOB),
                ("b.yaml", JOB),
                ("sub/a.toml", "command = [\"x\"]\n"),
            ],
            &[],
            &["b"],
            &[
                "error: jobs.d/a.yaml: job `a` is also defined in jobs.d/sub/a.toml",
                "error: jobs.d/sub/a.toml: job `a` is also defined in jobs.d/a.yaml",
            ],
        );
        check(
            &[("get.yaml", JOB), ("42.yaml", JOB), ("ok.yaml", JOB)],
            &[],
            &["ok"],
            &[
                "error: jobs.d/42.yaml: job name `42` is reserved: a name of digits only reads as a run id (`jobctl logs 42`)",
                "error: jobs.d/get.yaml: job name `get` is reserved: `jobctl run get|events|cancel|help` are subcommands, so `jobctl run NAME` could not run it",
            ],
        );
        check(
            &[("a.yaml", JOB), ("b.yaml", JOB)],
            &["a"],
            &["b"],
            &[
                "error: jobs.d/a.yaml: job `a` was created through the API; a file cannot take it over",
            ],
        );
    }

    #[test]
    fn references_must_name_a_job_that_exists() {
        check(
            &[
                ("a.yaml", "command: [x]\ndepends_on: [bakup]\n"),
                ("backup.yaml", JOB),
            ],
            &[],
            &["backup"],
            &["error: jobs.d/a.yaml:2:14: depends_on names `bakup`, but there is no such job"],
        );
        check(
            &[("a.yaml", "command: [x]\nschedule: {after: [gone]}\n")],
            &[],
            &[],
            &["error: jobs.d/a.yaml:2:20: after names `gone`, but there is no such job"],
        );
        // An API-owned job may be depended on; a broken file still claims its name.
        check(
            &[
                ("a.yaml", "command: [x]\ndepends_on: [from-api, broken]\n"),
                ("broken.yaml", "command: x\n"),
            ],
            &["from-api"],
            &["a"],
            &["error: jobs.d/broken.yaml:1:10: `command` is a list of arguments, not a string"],
        );
    }

    #[test]
    fn cycles_across_depends_on_and_after_are_refused() {
        check(
            &[
                ("a.yaml", "command: [x]\ndepends_on: [b]\n"),
                ("b.yaml", "command: [x]\nschedule: {after: [a]}\n"),
                ("c.yaml", "command: [x]\ndepends_on: [a]\n"),
            ],
            &[],
            &["c"],
            &["error: jobs.d/a.yaml:2:14: dependency cycle: a -> b -> a"],
        );
        check(
            &[
                ("a.yaml", "command: [x]\ndepends_on: [b]\n"),
                ("b.yaml", "command: [x]\n"),
            ],
            &[],
            &["a", "b"],
            &[],
        );
    }

    #[test]
    fn a_fired_one_off_is_not_warned_about_unless_its_definition_changed() {
        let past = "command: [x]\nschedule: {at: '2026-01-01T00:00:00Z'}\n";
        let files = [("once.yaml", past), ("other.yaml", past)];
        let mut catalog = catalog(&files, &[]);
        assert_eq!(catalog.n_warnings(), 2);
        let hash = catalog.get("once").unwrap().hash.clone();
        catalog.quiet_fired_at(|name, h| name == "once" && h == hash);
        assert_eq!(catalog.n_warnings(), 1);
        assert_eq!(catalog.diagnostics[0].file, "jobs.d/other.yaml");
        catalog.quiet_fired_at(|_, h| h == "another definition");
        assert_eq!(catalog.n_warnings(), 1);
        assert!(catalog.is_valid());
    }
}
