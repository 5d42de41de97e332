//! A throwaway PostgreSQL server for the tests: `initdb` and `pg_ctl` into a temp dir, on a
//! free port, started once per test binary and stopped when it exits. Each test gets a
//! database of its own ([`database`]).
//!
//! The binaries come from `JOBS_PG_BIN`, or the newest `/usr/lib/postgresql/*/bin` (Debian's
//! `postgresql` package; `.ci/run` installs it). PostgreSQL refuses to run as root: as root,
//! the server runs as the `postgres` user the package creates.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct PgServer {
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    root: PathBuf,
}

static SERVER: OnceLock<PgServer> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

/// Whether the tests run on PostgreSQL (`JOBS_TEST_LEDGER=postgres`) instead of SQLite.
pub fn enabled() -> bool {
    std::env::var("JOBS_TEST_LEDGER").is_ok_and(|v| v == "postgres")
}

/// The test binary's server, started on first use.
pub fn server() -> &'static PgServer {
    SERVER.get_or_init(PgServer::start)
}

/// A new, empty database on the test server: its URL.
pub fn database() -> String {
    let server = server();
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::SeqCst)
    );
    let out = server
        .command("createdb")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &server.port.to_string(),
            "-U",
            "jobs",
            &name,
        ])
        .output()
        .expect("createdb runs");
    assert!(
        out.status.success(),
        "createdb {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.url(&name)
}

/// Runs `sql` with psql on the database at `url` (on the test server); the first column of
/// the first row, as text (empty when there is none).
pub fn psql(url: &str, sql: &str) -> String {
    let server = server();
    let db = url.rsplit('/').next().unwrap();
    let out = server
        .command("psql")
        .args(["-h", "127.0.0.1", "-p", &server.port.to_string()])
        .args([
            "-U",
            "jobs",
            "-d",
            db,
            "-tAq",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("JOBS_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect(
            "PostgreSQL's binaries: install Debian's postgresql (see .ci/run) or set JOBS_PG_BIN",
        )
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("a PostgreSQL version under /usr/lib/postgresql")
        .1
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

extern "C" fn stop_at_exit() {
    if let Some(server) = SERVER.get() {
        // `JOBS_TEST_PG_LOG=FILE` keeps the server's log (every failed statement is in it).
        if let Some(keep) = std::env::var_os("JOBS_TEST_PG_LOG") {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(keep)
            {
                let _ = f.write_all(server.log().as_bytes());
            }
        }
        let _ = server
            .command("pg_ctl")
            .args(["-D"])
            .arg(&server.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&server.root);
    }
}

impl PgServer {
    fn start() -> PgServer {
        let bin = bin_dir();
        let root = tempfile::Builder::new()
            .prefix("jobs-pg-")
            .tempdir()
            .unwrap()
            .keep();
        let data = root.join("data");
        write_certificates(&root);
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&root)
                .status()
                .unwrap();
            assert!(status.success(), "chown {} to postgres", root.display());
        }
        let server = PgServer {
            port: 0,
            bin,
            data,
            root,
        };
        let out = server
            .command("initdb")
            .arg("-D")
            .arg(&server.data)
            .args(["-A", "trust", "-U", "jobs", "--no-sync", "-E", "UTF8"])
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // A port taken between the probe and the start is tried again.
        for _ in 0..5 {
            let port = free_port();
            let options = format!(
                "-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync={fsync} \
                 -c max_connections=300 -c ssl=on -c ssl_cert_file={root}/server.crt \
                 -c ssl_key_file={root}/server.key",
                root = server.root.display(),
                // Durable for the benchmarks (`JOBS_TEST_PG_FSYNC=on`); quicker for the tests.
                fsync = std::env::var("JOBS_TEST_PG_FSYNC").unwrap_or_else(|_| "off".to_string()),
            );
            let out = server
                .command("pg_ctl")
                .arg("-D")
                .arg(&server.data)
                .args(["-o", &options, "-l"])
                .arg(server.root.join("log"))
                .args(["-w", "start"])
                .output()
                .expect("pg_ctl runs");
            if out.status.success() {
                // SAFETY: registering a plain function to run at exit.
                unsafe {
                    libc::atexit(stop_at_exit);
                }
                return PgServer { port, ..server };
            }
        }
        panic!(
            "PostgreSQL did not start: {}",
            std::fs::read_to_string(server.root.join("log")).unwrap_or_default()
        );
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://jobs@127.0.0.1:{}/{name}", self.port)
    }

    /// One of the server's programs, run as `postgres` when the tests run as root.
    pub fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    /// Restarts the server (a fast shutdown: every connection is cut), on the same port and
    /// with the same settings; starts it again after [`PgServer::stop`].
    pub fn restart(&self) {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "-l"])
            .arg(self.root.join("log"))
            .arg("restart")
            .output()
            .expect("pg_ctl runs");
        assert!(
            out.status.success(),
            "pg_ctl restart: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server (a fast shutdown: every connection is cut) until [`PgServer::restart`].
    pub fn stop(&self) {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"])
            .output()
            .expect("pg_ctl runs");
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The CA that signed the server's certificate (for `sslmode=require`), a PEM file.
    pub fn ca_file(&self) -> PathBuf {
        self.root.join("ca.pem")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("log")).unwrap_or_default()
    }

    pub fn data(&self) -> &Path {
        &self.data
    }
}

/// A CA and the server's certificate for 127.0.0.1 and localhost, signed by it, written to
/// `ca.pem`, `server.crt` and `server.key` (readable by its owner only, as PostgreSQL wants)
/// in `root`: the server takes TLS, and a client that trusts `ca.pem` verifies it.
fn write_certificates(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "jobs test PostgreSQL CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
    std::fs::write(root.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(root.join("server.crt"), cert.pem()).unwrap();
    let key_file = root.join("server.key");
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
}
