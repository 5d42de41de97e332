//! Reading `jobs.d/`: which files are job files, and their bytes.
//!
//! This edge walks the folder (following symlinks, reporting loops and dangling links), skips
//! what is not a job file (hidden files and folders, editor leftovers, other extensions) and
//! reads each job file up to [`MAX_FILE_BYTES`]. It does not parse anything: `spec` does.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::diag::Diagnostic;

/// A job file larger than this is refused rather than read: no job needs a megabyte of YAML,
/// and a stray log file named `*.yaml` must not stall the daemon.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// One job file as read from disk.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// The path shown to users: the jobs folder as given, joined with the file's relative path.
    pub display: String,
    /// The path relative to the jobs folder, with `/` separators (recorded in the ledger).
    pub relative: String,
    pub bytes: Vec<u8>,
}

/// What a walk of the jobs folder found: the files it could read, and a diagnostic for each
/// file or folder it could not.
#[derive(Clone, Debug, Default)]
pub struct Scan {
    pub files: Vec<SourceFile>,
    pub problems: Vec<Diagnostic>,
}

impl Scan {
    /// The files as the catalog takes them.
    pub fn inputs(&self) -> Vec<crate::catalog::FileInput<'_>> {
        self.files
            .iter()
            .map(|f| crate::catalog::FileInput {
                display: &f.display,
                relative: &f.relative,
                bytes: &f.bytes,
            })
            .collect()
    }
}

/// Whether a file name is a job file (by extension, and not an editor leftover or hidden file).
pub fn is_job_file_name(name: &str) -> bool {
    if name.starts_with('.') || name.starts_with('#') || name.ends_with('~') || name.ends_with('#')
    {
        return false;
    }
    matches!(
        Path::new(name).extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "toml")
    )
}

/// Job files found by [`list`]: each path and its path relative to the jobs folder.
pub type Found = Vec<(PathBuf, String)>;

/// Lists the job files under `dir`, sorted by relative path, without reading them.
///
/// # Errors
///
/// When `dir` itself is missing or not a folder; problems with single entries are returned in
/// [`Scan::problems`] instead.
pub fn list(dir: &Path) -> Result<(Found, Vec<Diagnostic>), Diagnostic> {
    let shown = dir.display().to_string();
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(Diagnostic::error(shown, "the jobs folder is not a folder")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Diagnostic::error(shown, "the jobs folder does not exist")
                .help("create it with `jobctl init`, or point at another one with `--dir`"));
        }
        Err(e) => {
            return Err(Diagnostic::error(
                shown,
                format!("cannot open the jobs folder: {e}"),
            ));
        }
    }
    let mut found = Vec::new();
    let mut problems = Vec::new();
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walker {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                let path = e
                    .path()
                    .map_or_else(|| shown.clone(), |p| p.display().to_string());
                let message = if e.loop_ancestor().is_some() {
                    "symlink loop: this link points back to a folder that contains it".to_string()
                } else if let Some(io) = e.io_error() {
                    if io.kind() == std::io::ErrorKind::NotFound {
                        "dangling symlink: its target does not exist".to_string()
                    } else {
                        format!("cannot read: {io}")
                    }
                } else {
                    format!("cannot read: {e}")
                };
                // A broken entry only matters if it would have been a job file or a folder.
                let name = e
                    .path()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy());
                if e.loop_ancestor().is_some() || name.as_deref().is_none_or(is_job_file_name) {
                    problems.push(Diagnostic::error(path, message));
                }
                continue;
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy();
        if !is_job_file_name(&name) {
            continue;
        }
        let relative = entry
            .path()
            .strip_prefix(dir)
            .unwrap_or(entry.path())
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        found.push((entry.into_path(), relative));
    }
    Ok((found, problems))
}

/// Reads one job file, refusing files over [`MAX_FILE_BYTES`].
///
/// # Errors
///
/// A diagnostic naming the file and the reason.
pub fn read(path: &Path, relative: String) -> Result<SourceFile, Diagnostic> {
    let display = path.display().to_string();
    let file = File::open(path)
        .map_err(|e| Diagnostic::error(&display, format!("cannot open the file: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Diagnostic::error(&display, format!("cannot read the file: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Diagnostic::error(
            &display,
            format!(
                "the file is larger than {} bytes (1 MiB); a job file must be smaller",
                MAX_FILE_BYTES
            ),
        ));
    }
    Ok(SourceFile {
        display,
        relative,
        bytes,
    })
}

/// Lists and reads every job file under `dir`, in parallel.
///
/// # Errors
///
/// When `dir` itself cannot be read.
pub fn scan(dir: &Path) -> Result<Scan, Diagnostic> {
    use rayon::prelude::*;
    let (found, mut problems) = list(dir)?;
    let results: Vec<Result<SourceFile, Diagnostic>> = found
        .into_par_iter()
        .map(|(path, relative)| read(&path, relative))
        .collect();
    let mut files = Vec::with_capacity(results.len());
    for result in results {
        match result {
            Ok(file) => files.push(file),
            Err(d) => problems.push(d),
        }
    }
    Ok(Scan { files, problems })
}

/// Updates `previous` (a scan of `dir`) for the files at `changed` (paths relative to `dir`,
/// as a watcher reported them): re-reads those that exist, drops those that are gone. Returns
/// `None` when only a full [`scan`] can tell (a folder was added, removed or renamed).
pub fn rescan(dir: &Path, previous: &Scan, changed: &[String]) -> Option<Scan> {
    let mut scan = previous.clone();
    for relative in changed {
        let path = dir.join(relative);
        let hidden = relative
            .split('/')
            .any(|part| part.starts_with('.') && part != "." && part != "..");
        let name = relative.rsplit('/').next().unwrap_or(relative);
        let display = path.display().to_string();
        let known = scan.files.iter().any(|f| f.display == display)
            || scan.problems.iter().any(|d| d.file == display);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => return None,
            Err(_) if !known => {
                // Gone: a folder that held job files needs a walk; anything else (an editor's
                // or sed's temporary file) was never ours.
                let inside = format!("{display}/");
                if scan.files.iter().any(|f| f.display.starts_with(&inside))
                    || scan.problems.iter().any(|d| d.file.starts_with(&inside))
                {
                    return None;
                }
                continue;
            }
            _ => {}
        }
        if hidden || !is_job_file_name(name) {
            continue;
        }
        scan.files.retain(|f| f.display != display);
        scan.problems.retain(|d| d.file != display);
        if path.exists() {
            match read(&path, relative.clone()) {
                Ok(file) => scan.files.push(file),
                Err(d) => scan.problems.push(d),
            }
        }
    }
    scan.files.sort_by(|a, b| a.relative.cmp(&b.relative));
    Some(scan)
}

/// What [`rescan_with`] reads for a path: its bytes, `None` when it is gone, or why it cannot
/// be read.
pub type Fetched = Option<Result<Vec<u8>, String>>;

/// [`rescan`] with the changed files' bytes from `read` instead of the disk (a commit's blobs,
/// read from git before its tree is checked out): the same rules for which files count and
/// how large one may be. `display` names a file in diagnostics.
pub fn rescan_with(
    previous: Scan,
    changed: &[String],
    mut read: impl FnMut(&str) -> Fetched,
    display: impl Fn(&str) -> String,
) -> Scan {
    let mut scan = previous;
    for relative in changed {
        let hidden = relative
            .split('/')
            .any(|part| part.starts_with('.') && part != "." && part != "..");
        let name = relative.rsplit('/').next().unwrap_or(relative);
        if hidden || !is_job_file_name(name) {
            continue;
        }
        let shown = display(relative);
        scan.files.retain(|f| f.relative != *relative);
        scan.problems.retain(|d| d.file != shown);
        match read(relative) {
            None => {}
            Some(Err(e)) => scan.problems.push(Diagnostic::error(
                &shown,
                format!("cannot read the file: {e}"),
            )),
            Some(Ok(bytes)) if bytes.len() as u64 > MAX_FILE_BYTES => {
                scan.problems.push(Diagnostic::error(
                    &shown,
                    format!(
                        "the file is larger than {MAX_FILE_BYTES} bytes (1 MiB); a job file must be smaller"
                    ),
                ));
            }
            Some(Ok(bytes)) => scan.files.push(SourceFile {
                display: shown,
                relative: relative.clone(),
                bytes,
            }),
        }
    }
    scan.files.sort_by(|a, b| a.relative.cmp(&b.relative));
    scan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_job_files_are_read() {
        for (name, is_job) in [
            ("backup.yaml", true),
            ("backup.yml", true),
            ("backup.toml", true),
            ("backup.json", false),
            ("README.md", false),
            (".hidden.yaml", false),
            ("backup.yaml~", false),
            ("backup.yaml.swp", false),
            ("#backup.yaml#", false),
            (".#backup.yaml", false),
        ] {
            assert_eq!(is_job_file_name(name), is_job, "{name}");
        }
    }
}
