//! HTTPS: `jobctl serve --tls-cert FILE --tls-key FILE` (or `[server] tls_cert`, `tls_key`),
//! the CLI's `--server https://…` with `--ca-cert` or `SSL_CERT_FILE`, certificate renewal on
//! SIGHUP. Every certificate comes from a throwaway CA made here with rcgen.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Daemon, Project, Run};

const TOKEN: &str = "admin-token-0123456789abcdef";

/// A command's extra flags and environment variables.
type Extra<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);

/// A certificate authority that exists for one test.
struct Ca(rcgen::CertifiedIssuer<'static, rcgen::KeyPair>);

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        Ca(rcgen::CertifiedIssuer::self_signed(params, key).unwrap())
    }

    fn pem(&self) -> String {
        self.0.pem()
    }

    /// A server certificate for `localhost` and `127.0.0.1`: (certificate, key) in PEM.
    fn leaf(&self) -> (String, String) {
        self.leaf_with(&["localhost", "127.0.0.1"], None)
    }

    fn leaf_with(&self, names: &[&str], expired: Option<i32>) -> (String, String) {
        let names: Vec<String> = names.iter().map(ToString::to_string).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "jobctl test server");
        if let Some(year) = expired {
            params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
            params.not_after = rcgen::date_time_ymd(year, 1, 1);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.0).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A project with one job, a token file, and the CA's certificate in `ca.pem`.
fn project(ca: &Ca) -> Project {
    Project::new()
        .file("jobs.d/nightly.yaml", common::job("0 3 * * *"))
        .file("tokens", format!("admin {TOKEN}\n"))
        .file("ca.pem", ca.pem())
}

/// Writes a server certificate and key to `tls/cert.pem` and `tls/key.pem`.
fn install(p: &Project, (cert, key): &(String, String)) {
    p.write("tls/cert.pem", cert);
    p.write("tls/key.pem", key);
}

/// Starts `jobctl serve` over HTTPS with `tls/cert.pem`; returns it and its https URL.
fn serve_https(p: &Project, extra: &[&str]) -> (Daemon, String) {
    let mut args = vec![
        "--token-file",
        "tokens",
        "--tls-cert",
        "tls/cert.pem",
        "--tls-key",
        "tls/key.pem",
    ];
    args.extend_from_slice(extra);
    let mut daemon = p.serve(&args, None);
    daemon.wait_for("scheduler started", &[]);
    let url = daemon.url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    (daemon, url)
}

/// `jobctl --server URL --token T ARGS… list`, with `env` set.
fn list(p: &Project, url: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut all = vec!["--server", url, "--token", TOKEN];
    all.extend_from_slice(args);
    all.push("list");
    p.run_with(&all, env)
}

/// Asserts a failed command printed one clear line, not a panic.
fn fails_with(run: Run, expected: &[&str]) {
    let run = run.code(1);
    for text in expected {
        assert!(
            run.stderr.contains(text),
            "stderr lacks {text:?}:\n{}",
            run.stderr
        );
    }
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
}

#[test]
fn the_cli_trusts_a_private_ca_given_by_flag_variable_or_ssl_cert_file() {
    let ca = Ca::new("jobctl test CA");
    let p = project(&ca);
    install(&p, &ca.leaf());
    let (_daemon, url) = serve_https(&p, &[]);
    let by_name = url.replace("127.0.0.1", "localhost");
    let ok: [(&str, Extra); 4] = [
        (&url, (&["--ca-cert", "ca.pem"], &[])),
        (&url, (&[], &[("JOBS_CA_CERT", "ca.pem")])),
        (&url, (&[], &[("SSL_CERT_FILE", "ca.pem")])),
        (&by_name, (&["--ca-cert", "ca.pem"], &[])),
    ];
    for (url, (args, env)) in ok {
        list(&p, url, args, env)
            .code(0)
            .stdout_has("nightly")
            .stdout_has("0 3 * * *");
    }
    // Without the CA: the server's certificate is refused, with where to give the CA.
    fails_with(
        list(&p, &url, &[], &[]),
        &[
            "TLS with the server at https://127.0.0.1:",
            "not signed by a certificate authority this machine trusts",
            "--ca-cert FILE",
            "SSL_CERT_FILE",
        ],
    );
    // A CA file that is not one is named.
    fails_with(
        list(&p, &url, &["--ca-cert", "jobs.d/nightly.yaml"], &[]),
        &["nightly.yaml holds no PEM certificate"],
    );
}

#[test]
fn plain_http_to_the_https_port_is_told_to_use_https() {
    let ca = Ca::new("jobctl test CA");
    let p = project(&ca);
    install(&p, &ca.leaf());
    let (_daemon, url) = serve_https(&p, &[]);
    let plain = url.replace("https://", "http://");
    fails_with(
        list(&p, &plain, &[], &[]),
        &["400", "this server speaks HTTPS only: use an https:// URL"],
    );
    // And the other way round: https to a plain server says it did not answer in TLS.
    let q = project(&ca);
    let mut plain_daemon = q.serve(&["--token-file", "tokens"], None);
    let plain_url = plain_daemon.url();
    assert!(plain_url.starts_with("http://"), "{plain_url}");
    fails_with(
        list(
            &q,
            &plain_url.replace("http://", "https://"),
            &["--ca-cert", "ca.pem"],
            &[],
        ),
        &["did not answer in TLS", "use an http:// URL"],
    );
}

/// SIGHUP, then the daemon's word on the certificate (`reloaded` or `kept`).
fn hup_and_wait(daemon: &mut Daemon, message: &str) -> serde_json::Value {
    daemon.signal(libc::SIGHUP);
    daemon.wait_for(message, &[])
}

#[test]
fn sighup_presents_a_renewed_certificate_and_a_broken_one_keeps_the_old() {
    let (first, second) = (Ca::new("first CA"), Ca::new("second CA"));
    let p = project(&first).file("second.pem", second.pem());
    install(&p, &first.leaf());
    let (mut daemon, url) = serve_https(&p, &[]);
    let with = |ca: &str| list(&p, &url, &["--ca-cert", ca], &[]);
    with("ca.pem").code(0).stdout_has("nightly");
    fails_with(
        with("second.pem"),
        &["not signed by a certificate authority"],
    );

    // A renewal from another CA: the next handshake presents it.
    install(&p, &second.leaf());
    let line = hup_and_wait(&mut daemon, "reloaded the API's TLS certificate");
    assert!(line["tls_cert"].as_str().unwrap().ends_with("cert.pem"));
    assert_eq!(line["tls_expires"], "4096-01-01T00:00:00Z", "{line}");
    assert_eq!(line["level"], "INFO", "{line}");
    with("second.pem").code(0).stdout_has("nightly");
    fails_with(with("ca.pem"), &["not signed by a certificate authority"]);

    // A broken renewal (a truncated key, a key of another certificate): logged, and the
    // server keeps presenting the certificate it had.
    let broken: [(&str, String, &str); 3] = [
        (
            "tls/key.pem",
            "-----BEGIN PRIVATE KEY-----\n".into(),
            "key.pem",
        ),
        ("tls/key.pem", first.leaf().1, "does not belong"),
        (
            "tls/cert.pem",
            String::new(),
            "cert.pem holds no PEM certificate",
        ),
    ];
    for (file, text, expected) in broken {
        install(&p, &second.leaf());
        p.write(file, text);
        let line = hup_and_wait(&mut daemon, "kept the API's current TLS certificate");
        assert_eq!(line["level"], "WARN", "{line}");
        let message = line["message"].as_str().unwrap();
        assert!(message.contains(expected), "{file}: {message}");
        with("second.pem").code(0).stdout_has("nightly");
    }
    // Still serving after all that.
    assert!(common::alive(daemon.pid()));
}

#[test]
fn the_server_s_certificate_problems_are_one_line_each() {
    let ca = Ca::new("jobctl test CA");
    let p = project(&ca);
    install(&p, &ca.leaf());
    let (mut daemon, url) = serve_https(&p, &[]);
    let cases = [
        (
            ca.leaf_with(&["other.example"], None),
            "not valid for this host name or address",
        ),
        (
            ca.leaf_with(&["localhost", "127.0.0.1"], Some(2001)),
            "has expired",
        ),
    ];
    for (pair, expected) in cases {
        install(&p, &pair);
        hup_and_wait(&mut daemon, "reloaded the API's TLS certificate");
        fails_with(
            list(&p, &url, &["--ca-cert", "ca.pem"], &[]),
            &[expected, "--ca-cert"],
        );
    }
}

#[test]
fn an_unusable_certificate_or_key_refuses_to_start_naming_the_file() {
    let ca = Ca::new("jobctl test CA");
    let (cert, key) = ca.leaf();
    let (_, other_key) = ca.leaf();
    let p = project(&ca)
        .file("good/cert.pem", &cert)
        .file("good/key.pem", &key)
        .file("other/key.pem", &other_key)
        .file("junk.pem", "not PEM at all\n");
    let serve = |args: &[&str]| {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0", "--token-file", "tokens"];
        all.extend_from_slice(args);
        p.run_within(Duration::from_secs(20), &all)
    };
    let cases: [(&[&str], i32, &[&str]); 5] = [
        (
            &["--tls-cert", "missing.pem", "--tls-key", "good/key.pem"],
            1,
            &["cannot read the TLS certificate missing.pem"],
        ),
        (
            &["--tls-cert", "good/cert.pem", "--tls-key", "junk.pem"],
            1,
            &["junk.pem holds no PEM private key"],
        ),
        (
            &["--tls-cert", "junk.pem", "--tls-key", "good/key.pem"],
            1,
            &["junk.pem holds no PEM certificate"],
        ),
        (
            &["--tls-cert", "good/cert.pem", "--tls-key", "other/key.pem"],
            1,
            &["the TLS key other/key.pem does not belong to the certificate good/cert.pem"],
        ),
        (&["--tls-cert", "good/cert.pem"], 2, &["--tls-key"]),
    ];
    for (args, code, expected) in cases {
        let run = serve(args).code(code);
        for text in expected {
            assert!(run.stderr.contains(text), "{args:?}: {}", run.stderr);
        }
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
    // In jobs.toml, both or neither.
    p.write("jobs.toml", "[server]\ntls_cert = \"good/cert.pem\"\n");
    serve(&[])
        .code(1)
        .stderr_has("server.tls_cert is set without server.tls_key");
}

#[test]
fn jobs_toml_names_the_certificate_relative_to_itself() {
    let ca = Ca::new("jobctl test CA");
    let (cert, key) = ca.leaf();
    let p = project(&ca)
        .file("etc/cert.pem", cert)
        .file("etc/key.pem", key)
        .file(
            "etc/jobs.toml",
            "dir = \"../jobs.d\"\n[server]\ntoken_file = \"../tokens\"\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n",
        );
    let mut daemon = p.serve(&["--config", "etc/jobs.toml"], None);
    let started = daemon.wait_for("jobs serve started", &[]);
    assert!(
        started["message"].as_str().unwrap().contains("https://"),
        "{started}"
    );
    assert_eq!(started["tls_expires"], "4096-01-01T00:00:00Z");
    let url = daemon.url();
    assert!(url.starts_with("https://"), "{url}");
    list(&p, &url, &["--ca-cert", "ca.pem"], &[])
        .code(0)
        .stdout_has("nightly");
}

/// Runs `script` in bash with the built `jobctl` first on `PATH`, in `dir`.
fn bash(dir: &Path, script: &str, env: &[(&str, &str)]) -> std::process::Output {
    let bins = assert_cmd::cargo::cargo_bin("jobctl")
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bins.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("PATH", path)
        .env("JOBS_NOW", common::NOW)
        .env("NO_COLOR", "1");
    for var in ["JOBS_SERVER", "JOBS_TOKEN", "JOBS_CA_CERT", "JOBS_CONFIG"] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied()).output().unwrap()
}

#[test]
fn jobctl_in_bash_lists_jobs_over_https() {
    let ca = Ca::new("jobctl test CA");
    let p = project(&ca);
    install(&p, &ca.leaf());
    let (_daemon, url) = serve_https(&p, &[]);
    let env = [("URL", url.as_str()), ("TOKEN", TOKEN)];
    let out = bash(
        p.root(),
        "jobctl --server \"$URL\" --token \"$TOKEN\" --ca-cert ca.pem list",
        &env,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("nightly"),
        "{out:?}"
    );
    let out = bash(
        p.root(),
        "SSL_CERT_FILE=ca.pem JOBS_SERVER=\"$URL\" JOBS_TOKEN=\"$TOKEN\" jobctl list -o json",
        &env,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("\"nightly\""),
        "{out:?}"
    );
    let out = bash(
        p.root(),
        "jobctl --server \"$URL\" --token \"$TOKEN\" list; echo \"exit=$?\"",
        &env,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("exit=1"), "{out:?}");
    assert!(stderr.contains("--ca-cert"), "{stderr}");
}

#[test]
fn a_silent_client_cannot_hold_a_tls_connection_slot() {
    use std::io::Read;
    let ca = Ca::new("jobctl test CA");
    let p = project(&ca).file("jobs.toml", "[server]\nrequest_timeout = \"1s\"\n");
    install(&p, &ca.leaf());
    let (_daemon, url) = serve_https(&p, &["--max-connections", "1"]);
    let addr = url.trim_start_matches("https://").to_string();
    // A client that connects and never starts its handshake is cut off at the header
    // timeout (at most the request timeout).
    let mut silent = std::net::TcpStream::connect(&addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    let read = silent.read(&mut [0u8; 16]);
    // Closed (end of stream, or reset), not still open when the read timed out.
    assert!(
        matches!(&read, Ok(0))
            || read
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "{read:?} after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "closed after {:?}",
        started.elapsed()
    );
    // At the cap, a silent connection (mid-handshake, so idle) gives way to a real client.
    let _silent = std::net::TcpStream::connect(&addr).unwrap();
    list(&p, &url, &["--ca-cert", "ca.pem"], &[])
        .code(0)
        .stdout_has("nightly");
}
