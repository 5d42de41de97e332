//! A git repository that `jobctl serve` follows (`[git]`): a bare mirror of one branch, and
//! two work trees the commits are checked out into, one live and one staged.
//!
//! Like [`super::describe`], this edge runs the `git` program: it speaks every transport
//! (`https://`, `ssh://`, `git@host:path`, a local path), honours the machine's git
//! configuration, and a fetch is one short command. Credentials never come from job files:
//! an SSH key file (given to `ssh` through `GIT_SSH_COMMAND`) or a token file (read at each
//! fetch and sent as an `Authorization` header through `GIT_CONFIG_*` variables, so it is in
//! no command line). Nothing here prompts: a fetch that needs a password fails.
//!
//! The layout under the work directory:
//!
//! ```text
//! mirror.git/        bare; origin = the URL, one branch fetched into refs/remotes/origin/BRANCH
//! trees/a, trees/b   work trees of mirror.git (`git worktree`), detached at commits
//! current -> trees/a the tree of the applied commit: the daemon's jobs folder is current/PATH
//! ```
//!
//! A new commit is checked out into the tree that is not `current` (only the files that
//! differ are written), read and validated there, and `current` is switched to it (a symlink
//! replaced by `rename`) once its jobs are applied. Runs whose `working_dir` is inside the
//! repository see the applied commit's files.

use std::ffi::OsString;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Where to fetch from, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    pub url: String,
    pub branch: String,
    /// The jobs folder inside the repository, `/`-separated, without leading `/` (`.` for
    /// the root).
    pub path: String,
    pub credentials: Credentials,
}

/// How the fetch authenticates: at most one of an SSH key and a token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    /// A private key for `ssh://` and `user@host:path` URLs.
    pub ssh_key_file: Option<PathBuf>,
    /// `known_hosts` for SSH; without it, hosts are trusted on first use and remembered in
    /// the work directory.
    pub known_hosts: Option<PathBuf>,
    /// A file holding a token for `https://` URLs (GitHub, GitLab and Gitea take it as the
    /// password of HTTP basic authentication).
    pub token_file: Option<PathBuf>,
    /// The user name sent with the token.
    pub token_user: String,
}

/// Why a git command failed. Messages never carry a URL's password or the token.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git: {0} (is git installed?)")]
    Spawn(std::io::Error),
    #[error("`git {command}` failed: {message}")]
    Failed { command: String, message: String },
    #[error("`git {command}` did not finish within {} s and was stopped", .after.as_secs())]
    TimedOut { command: String, after: Duration },
    #[error("cannot read the token file {path}: {source}")]
    Token {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(String),
}

/// One of the two work trees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tree {
    A,
    B,
}

impl Tree {
    fn name(self) -> &'static str {
        match self {
            Tree::A => "a",
            Tree::B => "b",
        }
    }

    #[must_use]
    pub fn other(self) -> Tree {
        match self {
            Tree::A => Tree::B,
            Tree::B => Tree::A,
        }
    }
}

/// The mirror of a [`Remote`] in a work directory.
#[derive(Debug)]
pub struct Mirror {
    remote: Remote,
    workdir: PathBuf,
    git_dir: PathBuf,
    /// How long one fetch may take before it is stopped.
    pub fetch_timeout: Duration,
}

/// A local command's limit (checkout, rev-parse): generous, they touch only the disk.
const LOCAL_TIMEOUT: Duration = Duration::from_secs(300);

impl Mirror {
    /// The mirror in `workdir`, created (a bare repository) if missing, its `origin` set to
    /// the remote's URL.
    ///
    /// # Errors
    ///
    /// When the directory cannot be made or git cannot run.
    pub fn open(remote: Remote, workdir: &Path) -> Result<Mirror, GitError> {
        std::fs::create_dir_all(workdir.join("trees"))
            .map_err(|e| GitError::Io(format!("cannot create {}: {e}", workdir.display())))?;
        let workdir = std::path::absolute(workdir).unwrap_or_else(|_| workdir.to_path_buf());
        let git_dir = workdir.join("mirror.git");
        let mirror = Mirror {
            remote,
            git_dir,
            workdir,
            fetch_timeout: Duration::from_secs(120),
        };
        if !mirror.git_dir.join("HEAD").exists() {
            mirror.git(&["init", "--quiet", "--bare"], LOCAL_TIMEOUT, None)?;
        }
        let url = mirror.remote.url.clone();
        match mirror.git(&["remote", "get-url", "origin"], LOCAL_TIMEOUT, None) {
            Ok(old) if old.trim() == url => {}
            // The URL changed in the settings: the mirror follows it.
            Ok(_) => {
                mirror.git(&["remote", "set-url", "origin", &url], LOCAL_TIMEOUT, None)?;
            }
            Err(_) => {
                mirror.git(&["remote", "add", "origin", &url], LOCAL_TIMEOUT, None)?;
            }
        }
        Ok(mirror)
    }

    #[must_use]
    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    /// The stable path of the applied commit's tree (a symlink switched between the trees).
    #[must_use]
    pub fn current_link(&self) -> PathBuf {
        self.workdir.join("current")
    }

    /// The jobs folder inside `root` (a tree, or [`Mirror::current_link`]).
    #[must_use]
    pub fn jobs_dir(&self, root: &Path) -> PathBuf {
        if self.remote.path == "." || self.remote.path.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&self.remote.path)
        }
    }

    /// Fetches the branch; its commit.
    ///
    /// # Errors
    ///
    /// When the remote cannot be reached, refuses the credentials, or has no such branch.
    pub fn fetch(&self) -> Result<String, GitError> {
        let branch = &self.remote.branch;
        let refspec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
        let env = self.credential_env()?;
        self.git(
            &[
                "fetch",
                "--quiet",
                "--no-tags",
                "--prune",
                "origin",
                &refspec,
            ],
            self.fetch_timeout,
            Some(&env),
        )?;
        self.resolve(&format!("refs/remotes/origin/{branch}"))
    }

    /// The commit `rev` names.
    fn resolve(&self, rev: &str) -> Result<String, GitError> {
        let spec = format!("{rev}^{{commit}}");
        Ok(self
            .git(
                &["rev-parse", "--verify", "--quiet", &spec],
                LOCAL_TIMEOUT,
                None,
            )?
            .trim()
            .to_string())
    }

    /// Whether `old` is an ancestor of `new` (a fast-forward); false when `old` is no longer
    /// known (history rewritten and pruned).
    #[must_use]
    pub fn is_ancestor(&self, old: &str, new: &str) -> bool {
        self.git(
            &["merge-base", "--is-ancestor", old, new],
            LOCAL_TIMEOUT,
            None,
        )
        .is_ok()
    }

    /// The files under the jobs folder that differ between two commits, relative to it;
    /// `None` when git cannot tell (a commit unknown) or a symbolic link changed (its target
    /// is read from the checked-out tree, not from the link's blob).
    #[must_use]
    pub fn changed(&self, old: &str, new: &str) -> Option<Vec<String>> {
        let path = self.remote.path.as_str();
        let out = self
            .git(
                &["diff", "--raw", "--no-renames", "-z", old, new, "--", path],
                LOCAL_TIMEOUT,
                None,
            )
            .ok()?;
        let prefix = if path == "." || path.is_empty() {
            String::new()
        } else {
            format!("{}/", path.trim_end_matches('/'))
        };
        // `:OLDMODE NEWMODE OLDOID NEWOID STATUS` NUL `PATH` NUL, per file.
        let mut parts = out.split('\0').filter(|p| !p.is_empty());
        let mut changed = Vec::new();
        while let Some(meta) = parts.next() {
            let file = parts.next()?;
            let mut modes = meta.trim_start_matches(':').split(' ');
            if modes.by_ref().take(2).any(|mode| mode == "120000") {
                return None;
            }
            changed.push(file.strip_prefix(&prefix).unwrap_or(file).to_string());
        }
        Some(changed)
    }

    /// The contents of files of the jobs folder at `commit` (paths relative to the folder),
    /// read from the mirror's objects with one `git cat-file --batch`: `None` for a path the
    /// commit does not have (deleted), or a path that is not a file.
    ///
    /// # Errors
    ///
    /// When git cannot run or stops answering.
    pub fn read_files(
        &self,
        commit: &str,
        paths: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, GitError> {
        use std::io::{BufRead as _, Write as _};
        let prefix = if self.remote.path == "." {
            String::new()
        } else {
            format!("{}/", self.remote.path)
        };
        let mut child = Command::new("git")
            .arg("--git-dir")
            .arg(&self.git_dir)
            .args(["cat-file", "--batch"])
            .env_remove("GIT_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(GitError::Spawn)?;
        let mut stdin = child.stdin.take().expect("piped");
        let input: String = paths
            .iter()
            .map(|p| format!("{commit}:{prefix}{p}\n"))
            .collect();
        // Written from a thread: git answers while it reads, and a pipe holds 64 KiB.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let mut out = std::io::BufReader::new(child.stdout.take().expect("piped"));
        let mut files = Vec::with_capacity(paths.len());
        for _ in paths {
            let mut header = String::new();
            if out
                .read_line(&mut header)
                .map_err(|e| GitError::Io(e.to_string()))?
                == 0
            {
                let _ = child.kill();
                return Err(GitError::Failed {
                    command: "cat-file".to_string(),
                    message: "it stopped answering".to_string(),
                });
            }
            let header = header.trim_end();
            // `OID TYPE SIZE` then the content, or `NAME missing` (a name may hold spaces).
            let mut fields = header.rsplitn(3, ' ');
            let (size, kind) = (fields.next(), fields.next());
            match (kind, size.and_then(|s| s.parse::<usize>().ok())) {
                (Some(kind), Some(size)) if !header.ends_with(" missing") => {
                    let mut bytes = vec![0; size + 1];
                    out.read_exact(&mut bytes)
                        .map_err(|e| GitError::Io(e.to_string()))?;
                    bytes.truncate(size);
                    // A folder (a tree) or a link is not a job file.
                    files.push((kind == "blob").then_some(bytes));
                }
                _ => files.push(None),
            }
        }
        let _ = writer.join();
        let _ = child.wait();
        Ok(files)
    }

    /// The tree `current` points to, and its commit.
    #[must_use]
    pub fn current(&self) -> Option<(Tree, String)> {
        let target = std::fs::read_link(self.current_link()).ok()?;
        let tree = match target.file_name()?.to_str()? {
            "a" => Tree::A,
            "b" => Tree::B,
            _ => return None,
        };
        let commit = self.tree_commit(tree)?;
        Some((tree, commit))
    }

    fn tree_dir(&self, tree: Tree) -> PathBuf {
        self.workdir.join("trees").join(tree.name())
    }

    /// The commit a tree is checked out at.
    fn tree_commit(&self, tree: Tree) -> Option<String> {
        let dir = self.tree_dir(tree);
        run_git(
            Some(&dir),
            None,
            &["rev-parse", "--verify", "--quiet", "HEAD"],
            LOCAL_TIMEOUT,
            None,
        )
        .ok()
        .map(|s| s.trim().to_string())
    }

    /// Checks `commit` out into `tree` (made on first use), leaving nothing else in its jobs
    /// folder; the tree's root.
    ///
    /// # Errors
    ///
    /// When git fails (a full disk).
    pub fn stage(&self, tree: Tree, commit: &str) -> Result<PathBuf, GitError> {
        let dir = self.tree_dir(tree);
        if self.tree_commit(tree).is_none() {
            // A tree that is missing or broken is made again.
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .map_err(|e| GitError::Io(format!("cannot remove {}: {e}", dir.display())))?;
            }
            let _ = self.git(&["worktree", "prune"], LOCAL_TIMEOUT, None);
            let shown = dir.to_string_lossy().into_owned();
            self.git(
                &[
                    "worktree", "add", "--quiet", "--detach", "--force", &shown, commit,
                ],
                LOCAL_TIMEOUT,
                None,
            )?;
            return Ok(dir);
        }
        let in_tree = |args: &[&str]| run_git(Some(&dir), None, args, LOCAL_TIMEOUT, None);
        in_tree(&["checkout", "--quiet", "--force", "--detach", commit])?;
        // Files a run left in the jobs folder would be read as job files: gone.
        in_tree(&["clean", "-ffdxq", "--", &self.remote.path])?;
        Ok(dir)
    }

    /// Points `current` at `tree`, atomically (a new symlink renamed over the old one).
    ///
    /// # Errors
    ///
    /// When the link cannot be written.
    pub fn publish(&self, tree: Tree) -> Result<(), GitError> {
        let link = self.current_link();
        let next = self.workdir.join("current.next");
        let _ = std::fs::remove_file(&next);
        let target = Path::new("trees").join(tree.name());
        std::os::unix::fs::symlink(&target, &next)
            .and_then(|()| std::fs::rename(&next, &link))
            .map_err(|e| {
                GitError::Io(format!(
                    "cannot point {} at {target:?}: {e}",
                    link.display()
                ))
            })
    }

    /// Runs git on the mirror.
    fn git(
        &self,
        args: &[&str],
        timeout: Duration,
        env: Option<&[(String, OsString)]>,
    ) -> Result<String, GitError> {
        run_git(None, Some(&self.git_dir), args, timeout, env)
    }

    /// The variables that give git its credentials and keep it from prompting.
    ///
    /// # Errors
    ///
    /// When the token file cannot be read.
    pub fn credential_env(&self) -> Result<Vec<(String, OsString)>, GitError> {
        let c = &self.remote.credentials;
        let mut env: Vec<(String, OsString)> = vec![("GIT_TERMINAL_PROMPT".into(), "0".into())];
        if let Some(key) = &c.ssh_key_file {
            let known = c
                .known_hosts
                .clone()
                .unwrap_or_else(|| self.workdir.join("known_hosts"));
            let strict = if c.known_hosts.is_some() {
                "yes"
            } else {
                "accept-new"
            };
            let command = format!(
                "ssh -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking={strict} -o UserKnownHostsFile={}",
                shell_quote(&std::path::absolute(key).unwrap_or_else(|_| key.clone())),
                shell_quote(&known),
            );
            env.push(("GIT_SSH_COMMAND".into(), command.into()));
        }
        if let Some(file) = &c.token_file {
            let token = std::fs::read_to_string(file).map_err(|source| GitError::Token {
                path: file.display().to_string(),
                source,
            })?;
            let token = token.trim();
            use base64::Engine as _;
            let basic = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{token}", c.token_user));
            env.push(("GIT_CONFIG_COUNT".into(), "1".into()));
            env.push(("GIT_CONFIG_KEY_0".into(), "http.extraHeader".into()));
            env.push((
                "GIT_CONFIG_VALUE_0".into(),
                format!("Authorization: Basic {basic}").into(),
            ));
        }
        Ok(env)
    }
}

/// A path quoted for the shell git runs `GIT_SSH_COMMAND` with.
fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', r"'\''"))
}

/// `user:password@` taken out of a URL, for messages.
#[must_use]
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if path.is_empty() && !rest.contains('/') {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{host}/{path}")
    }
}

/// Runs `git` (in `dir`, or on `git_dir`) with `args`, stopped after `timeout`; its output.
fn run_git(
    dir: Option<&Path>,
    git_dir: Option<&Path>,
    args: &[&str],
    timeout: Duration,
    env: Option<&[(String, OsString)]>,
) -> Result<String, GitError> {
    use std::os::unix::process::CommandExt as _;
    let mut command = Command::new("git");
    if let Some(dir) = dir {
        command.arg("-C").arg(dir);
    }
    if let Some(git_dir) = git_dir {
        command.arg("--git-dir").arg(git_dir);
    }
    command
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so a timeout stops git's ssh too.
        .process_group(0);
    for (k, v) in env.unwrap_or_default() {
        command.env(k, v);
    }
    let shown = args.first().copied().unwrap_or("").to_string();
    let mut child = command.spawn().map_err(GitError::Spawn)?;
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let err_reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text);
        text
    });
    let (done, finished) = std::sync::mpsc::channel();
    let out_reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stdout.read_to_end(&mut text);
        let status = child.wait();
        let _ = done.send(());
        (text, status)
    });
    if finished.recv_timeout(timeout).is_err() {
        // SAFETY: a plain kill(2) of the group git leads.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = out_reader.join();
        let _ = err_reader.join();
        return Err(GitError::TimedOut {
            command: shown,
            after: timeout,
        });
    }
    let (out, status) = out_reader.join().expect("the reader does not panic");
    let err = err_reader.join().expect("the reader does not panic");
    let status = status.map_err(GitError::Spawn)?;
    if status.success() {
        return Ok(String::from_utf8_lossy(&out).into_owned());
    }
    let message = String::from_utf8_lossy(&err);
    let message = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(redact_line)
        .collect::<Vec<_>>()
        .join("; ");
    Err(GitError::Failed {
        command: shown,
        message: if message.is_empty() {
            format!("exit status {}", status.code().unwrap_or(-1))
        } else {
            message
        },
    })
}

/// A line of git's output with any URL's credentials taken out.
fn redact_line(line: &str) -> String {
    line.split(' ')
        .map(|word| {
            let bare = word.trim_matches(|c| c == '\'' || c == '"');
            if bare.contains("://") && bare.contains('@') {
                word.replace(bare, &redact(bare))
            } else {
                word.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials() {
        for (url, shown) in [
            (
                "https://user:secret@github.com/org/repo.git",
                "https://github.com/org/repo.git",
            ),
            ("https://x-access-token:t0k3n@host", "https://host"),
            ("https://github.com/org/repo", "https://github.com/org/repo"),
            ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
            ("/srv/git/jobs.git", "/srv/git/jobs.git"),
        ] {
            assert_eq!(redact(url), shown, "{url}");
        }
        assert_eq!(
            redact_line("fatal: unable to access 'https://u:p@h/r/': Could not resolve host: h"),
            "fatal: unable to access 'https://h/r/': Could not resolve host: h"
        );
    }

    fn mirror(credentials: Credentials) -> (tempfile::TempDir, Mirror) {
        let dir = tempfile::tempdir().unwrap();
        let remote = Remote {
            url: "https://example.invalid/r.git".into(),
            branch: "main".into(),
            path: "jobs.d".into(),
            credentials,
        };
        let mirror = Mirror::open(remote, dir.path()).unwrap();
        (dir, mirror)
    }

    fn var<'e>(env: &'e [(String, OsString)], name: &str) -> Option<&'e str> {
        env.iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.to_str())
    }

    #[test]
    fn a_token_file_becomes_a_basic_header_outside_the_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cret\n").unwrap();
        let (_keep, mirror) = mirror(Credentials {
            token_file: Some(token),
            token_user: "x-access-token".into(),
            ..Credentials::default()
        });
        let env = mirror.credential_env().unwrap();
        assert_eq!(var(&env, "GIT_CONFIG_KEY_0"), Some("http.extraHeader"));
        // base64("x-access-token:s3cret")
        assert_eq!(
            var(&env, "GIT_CONFIG_VALUE_0"),
            Some("Authorization: Basic eC1hY2Nlc3MtdG9rZW46czNjcmV0")
        );
        assert_eq!(var(&env, "GIT_TERMINAL_PROMPT"), Some("0"));
        assert_eq!(var(&env, "GIT_SSH_COMMAND"), None);
    }

    #[test]
    fn an_ssh_key_goes_to_ssh_alone_in_batch_mode() {
        let (keep, mirror) = mirror(Credentials {
            ssh_key_file: Some(PathBuf::from("/etc/jobctl/deploy key")),
            ..Credentials::default()
        });
        let env = mirror.credential_env().unwrap();
        let ssh = var(&env, "GIT_SSH_COMMAND").unwrap();
        let known = keep.path().join("known_hosts");
        assert_eq!(
            ssh,
            format!(
                "ssh -i '/etc/jobctl/deploy key' -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile='{}'",
                std::path::absolute(&known).unwrap().display()
            )
        );
        assert_eq!(var(&env, "GIT_CONFIG_COUNT"), None);
        let (_keep, pinned) = self::mirror(Credentials {
            ssh_key_file: Some(PathBuf::from("/k")),
            known_hosts: Some(PathBuf::from("/etc/ssh/ssh_known_hosts")),
            ..Credentials::default()
        });
        let env = pinned.credential_env().unwrap();
        assert!(var(&env, "GIT_SSH_COMMAND").unwrap().contains(
            "StrictHostKeyChecking=yes -o UserKnownHostsFile='/etc/ssh/ssh_known_hosts'"
        ));
    }

    #[test]
    fn a_missing_token_file_is_named() {
        let (_keep, mirror) = mirror(Credentials {
            token_file: Some(PathBuf::from("/nonexistent/token")),
            token_user: "x".into(),
            ..Credentials::default()
        });
        let e = mirror.credential_env().unwrap_err().to_string();
        assert!(
            e.starts_with("cannot read the token file /nonexistent/token"),
            "{e}"
        );
    }
}
