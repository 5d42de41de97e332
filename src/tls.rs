//! TLS: which certificate authorities the program trusts as a client, and the certificate
//! `jobctl serve` presents as a server.
//!
//! Every TLS client in the program (the CLI's `--server https://…`, webhook and Slack
//! notifications, SMTP STARTTLS) trusts the same set: the system's roots, plus the PEM file
//! named by `SSL_CERT_FILE` (and the directories of `SSL_CERT_DIR`), plus a private CA given
//! explicitly (`--ca-cert FILE`, `JOBS_CA_CERT`, or `ca_cert` in `jobs.toml`). Unlike OpenSSL,
//! `SSL_CERT_FILE` adds to the system's roots rather than replacing them, so pointing it at a
//! private CA does not break public endpoints such as Slack.
//!
//! As a server (`jobctl serve --tls-cert FILE --tls-key FILE`), [`ServerCert`] holds the
//! certificate chain and key and hands them to each handshake; [`ServerCert::reload`] re-reads
//! both files (on SIGHUP) and swaps them in only when both read and match, so a renewal needs
//! no restart and a broken renewal never stops the server. It does not ask for client
//! certificates.
//!
//! rustls runs on the ring provider everywhere (see `Cargo.toml`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// A trust set that could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the CA certificate file {path}: {detail}")]
    CaFile { path: PathBuf, detail: String },
    #[error(
        "{path} holds no PEM certificate (expected one or more `-----BEGIN CERTIFICATE-----` blocks)"
    )]
    NoCertificate { path: PathBuf },
    #[error("cannot read the TLS certificate {path}: {detail}")]
    CertFile { path: PathBuf, detail: String },
    #[error("cannot read the TLS key {path}: {detail}")]
    KeyFile { path: PathBuf, detail: String },
    #[error(
        "{path} holds no PEM private key (expected a `-----BEGIN PRIVATE KEY-----`, `RSA PRIVATE KEY` or `EC PRIVATE KEY` block)"
    )]
    NoKey { path: PathBuf },
    #[error("the TLS key {path} cannot be used: {detail}")]
    BadKey { path: PathBuf, detail: String },
    #[error(
        "the TLS key {key} does not belong to the certificate {cert} (the first certificate of the file must be the server's own)"
    )]
    Mismatch { cert: PathBuf, key: PathBuf },
}

/// Where Debian, Fedora, Alpine, SUSE and the BSDs keep the system's bundle; used when
/// `SSL_CERT_FILE` is set, since `rustls-native-certs` then reads only that file.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Reads every certificate of a PEM file.
///
/// # Errors
///
/// The file cannot be read, or holds no certificate.
pub fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| TlsError::CaFile {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::CaFile {
            path: path.to_path_buf(),
            detail: format!("not valid PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The system's roots plus `SSL_CERT_FILE`/`SSL_CERT_DIR`, read once per process. Unreadable
/// system files are skipped (a machine without a bundle still reaches a private CA).
pub fn environment_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = rustls_native_certs::load_native_certs().certs;
        let overridden = std::env::var_os("SSL_CERT_FILE").is_some()
            || std::env::var_os("SSL_CERT_DIR").is_some();
        if overridden
            && let Some(bundle) = SYSTEM_BUNDLES.iter().map(Path::new).find(|p| p.is_file())
        {
            roots.extend(rustls_native_certs::load_certs_from_paths(Some(bundle), None).certs);
        }
        roots
    })
}

/// The certificates to trust: the system's, `SSL_CERT_FILE`'s, and `extra_ca`'s.
///
/// # Errors
///
/// `extra_ca` cannot be read or holds no certificate.
pub fn root_certs(extra_ca: Option<&Path>) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let mut roots = environment_roots().to_vec();
    if let Some(path) = extra_ca {
        roots.extend(read_pem_certs(path)?);
    }
    Ok(roots)
}

/// A rustls client configuration trusting [`root_certs`].
///
/// # Errors
///
/// See [`root_certs`].
pub fn client_config(extra_ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut store = rustls::RootCertStore::empty();
    // A malformed system certificate is skipped, as every TLS stack does.
    store.add_parsable_certificates(root_certs(extra_ca)?);
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default TLS versions")
    .with_root_certificates(store)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The server's certificate chain and key, read from two PEM files and re-read on demand.
/// Every TLS handshake takes the pair current at its start.
pub struct ServerCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

/// What a successful read of the certificate files found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// When the server's own certificate expires, if its validity could be read.
    pub not_after: Option<jiff::Timestamp>,
}

impl std::fmt::Debug for ServerCert {
    /// The paths only: the key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCert")
            .field("cert", &self.cert_path)
            .field("key", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl ServerCert {
    /// Reads `cert` (the server's certificate first, then any intermediates) and `key`.
    ///
    /// # Errors
    ///
    /// Either file cannot be read or holds nothing usable, or the key is not the
    /// certificate's; the message names the file.
    pub fn load(cert: &Path, key: &Path) -> Result<(Arc<ServerCert>, Loaded), TlsError> {
        let (certified, loaded) = read_pair(cert, key)?;
        let server = ServerCert {
            cert_path: cert.to_path_buf(),
            key_path: key.to_path_buf(),
            current: RwLock::new(certified),
        };
        Ok((Arc::new(server), loaded))
    }

    /// Re-reads both files; on success new handshakes present the new certificate, on
    /// failure the current one stays.
    ///
    /// # Errors
    ///
    /// As [`ServerCert::load`]; nothing is changed then.
    pub fn reload(&self) -> Result<Loaded, TlsError> {
        let (certified, loaded) = read_pair(&self.cert_path, &self.key_path)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = certified;
        Ok(loaded)
    }

    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    pub fn key_path(&self) -> &Path {
        &self.key_path
    }

    /// A rustls server configuration presenting this certificate, speaking HTTP/1.1 (ALPN
    /// `http/1.1`).
    pub fn server_config(self: &Arc<Self>) -> Arc<rustls::ServerConfig> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_no_client_auth()
        .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl rustls::server::ResolvesServerCert for ServerCert {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        )
    }
}

/// Reads and checks a certificate chain and its key.
fn read_pair(cert: &Path, key: &Path) -> Result<(Arc<CertifiedKey>, Loaded), TlsError> {
    let chain = read_pem_certs(cert).map_err(|e| match e {
        TlsError::CaFile { path, detail } => TlsError::CertFile { path, detail },
        other => other,
    })?;
    let key_error = |detail: String| TlsError::KeyFile {
        path: key.to_path_buf(),
        detail,
    };
    let bytes = std::fs::read(key).map_err(|e| key_error(e.to_string()))?;
    let private = match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(private) => private,
        Err(rustls::pki_types::pem::Error::NoItemsFound) => {
            return Err(TlsError::NoKey {
                path: key.to_path_buf(),
            });
        }
        Err(e) => return Err(key_error(format!("not valid PEM: {e}"))),
    };
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(private)
        .map_err(|e| TlsError::BadKey {
            path: key.to_path_buf(),
            detail: e.to_string(),
        })?;
    let not_after = not_after(&chain[0]);
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(TlsError::Mismatch {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
            });
        }
        Err(e) => {
            return Err(TlsError::CertFile {
                path: cert.to_path_buf(),
                detail: format!("not a usable certificate: {e}"),
            });
        }
    }
    Ok((Arc::new(certified), Loaded { not_after }))
}

/// The `notAfter` of an X.509 certificate (DER), read from the structure RFC 5280 fixes:
/// `Certificate { tbsCertificate { [0] version, serialNumber, signature, issuer, validity {
/// notBefore, notAfter } … } … }`. `None` for anything else; used for a log line only.
fn not_after(cert: &[u8]) -> Option<jiff::Timestamp> {
    /// One DER element: its tag, its contents, and what follows it.
    fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, &rest[n..])
        };
        (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
    }
    const SEQUENCE: u8 = 0x30;
    let (SEQUENCE, certificate, _) = element(cert)? else {
        return None;
    };
    let (SEQUENCE, mut tbs, _) = element(certificate)? else {
        return None;
    };
    if tbs.first() == Some(&0xa0) {
        tbs = element(tbs)?.2;
    }
    // serialNumber, signature, issuer.
    for _ in 0..3 {
        tbs = element(tbs)?.2;
    }
    let (SEQUENCE, validity, _) = element(tbs)? else {
        return None;
    };
    let after = element(validity)?.2;
    let (tag, time, _) = element(after)?;
    let time = std::str::from_utf8(time).ok()?.strip_suffix('Z')?;
    // UTCTime (YYMMDDHHMMSS: 1950–2049) or GeneralizedTime (YYYYMMDDHHMMSS).
    let full = match (tag, time.len()) {
        (0x17, 12) => {
            let yy: u32 = time[..2].parse().ok()?;
            format!("{}{time}", if yy >= 50 { "19" } else { "20" })
        }
        (0x18, 14) => time.to_string(),
        _ => return None,
    };
    if !full.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let civil = format!(
        "{}-{}-{}T{}:{}:{}",
        &full[..4],
        &full[4..6],
        &full[6..8],
        &full[8..10],
        &full[10..12],
        &full[12..14]
    );
    let civil: jiff::civil::DateTime = civil.parse().ok()?;
    civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_certificates_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = read_pem_certs(&path).unwrap_err().to_string();
        assert!(
            err.contains("ca.pem") && err.contains("no PEM certificate"),
            "{err}"
        );
        let err = read_pem_certs(&dir.path().join("missing.pem"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.pem"), "{err}");
    }

    #[test]
    fn a_private_ca_is_added_to_the_system_roots() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ca.pem()).unwrap();
        let system = root_certs(None).unwrap().len();
        let with_ca = root_certs(Some(&path)).unwrap();
        assert_eq!(with_ca.len(), system + 1);
        assert_eq!(with_ca.last().unwrap().as_ref(), ca.der().as_ref());
        client_config(Some(&path)).unwrap();
    }

    /// A self-signed certificate for `localhost` valid until `not_after`, and its key.
    fn leaf(not_after: (i32, u8, u8)) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn the_expiry_is_read_from_the_certificate() {
        // UTCTime up to 2049, GeneralizedTime from 2050 (RFC 5280).
        let cases = [
            ((2027, 3, 1), "2027-03-01T00:00:00Z"),
            ((1999, 12, 31), "1999-12-31T00:00:00Z"),
            ((2050, 1, 2), "2050-01-02T00:00:00Z"),
            ((4096, 1, 1), "4096-01-01T00:00:00Z"),
        ];
        for (date, expected) in cases {
            let (pem, _) = leaf(date);
            let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
            assert_eq!(
                not_after(&der).map(|t| t.to_string()).as_deref(),
                Some(expected),
                "{date:?}"
            );
        }
        assert_eq!(not_after(b"\x30\x03\x02\x01\x00"), None);
        assert_eq!(not_after(b""), None);
    }

    #[test]
    fn a_server_certificate_loads_reloads_and_names_the_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let (first_cert, first_key) = leaf((2030, 1, 1));
        std::fs::write(&cert, &first_cert).unwrap();
        std::fs::write(&key, &first_key).unwrap();
        let (server, loaded) = ServerCert::load(&cert, &key).unwrap();
        assert_eq!(
            loaded.not_after.unwrap().to_string(),
            "2030-01-01T00:00:00Z"
        );
        let presented = || server.current.read().unwrap().cert[0].as_ref().to_vec();
        let before = presented();

        // A key that is not the certificate's: refused, the old pair stays.
        let (other_cert, other_key) = leaf((2031, 1, 1));
        std::fs::write(&key, &other_key).unwrap();
        let err = server.reload().unwrap_err().to_string();
        assert!(
            err.contains("does not belong") && err.contains("key.pem") && err.contains("cert.pem"),
            "{err}"
        );
        assert_eq!(presented(), before);

        // Both replaced: the new pair is presented.
        std::fs::write(&cert, &other_cert).unwrap();
        assert_eq!(
            server.reload().unwrap().not_after.unwrap().to_string(),
            "2031-01-01T00:00:00Z"
        );
        assert_ne!(presented(), before);

        let cases: [(&str, &str, &str); 4] = [
            (
                "cert.pem",
                "not a certificate",
                "cert.pem holds no PEM certificate",
            ),
            ("key.pem", "not a key", "key.pem holds no PEM private key"),
            ("cert.pem", "", "cert.pem holds no PEM certificate"),
            ("missing", "", "cannot read the TLS key"),
        ];
        for (file, text, expected) in cases {
            std::fs::write(&cert, &other_cert).unwrap();
            std::fs::write(&key, &other_key).unwrap();
            let key_path = if file == "missing" {
                dir.path().join("missing.pem")
            } else {
                std::fs::write(dir.path().join(file), text).unwrap();
                key.clone()
            };
            let err = ServerCert::load(&cert, &key_path).unwrap_err().to_string();
            assert!(err.contains(expected), "{file}: {err}");
        }
    }
}
