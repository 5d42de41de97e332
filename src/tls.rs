//! TLS as a client: which certificate authorities the program trusts.
//!
//! Every TLS client in the program (the CLI's `--server https://…`, webhook and Slack
//! notifications, SMTP STARTTLS) trusts the same set: the system's roots, plus the PEM file
//! named by `SSL_CERT_FILE` (and the directories of `SSL_CERT_DIR`), plus a private CA given
//! explicitly (`--ca-cert FILE`, `JOBS_CA_CERT`, or `ca_cert` in `jobs.toml`). Unlike OpenSSL,
//! `SSL_CERT_FILE` adds to the system's roots rather than replacing them, so pointing it at a
//! private CA does not break public endpoints such as Slack.
//!
//! rustls runs on the ring provider everywhere (see `Cargo.toml`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// A trust set that could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the CA certificate file {path}: {detail}")]
    CaFile { path: PathBuf, detail: String },
    #[error(
        "{path} holds no PEM certificate (expected one or more `-----BEGIN CERTIFICATE-----` blocks)"
    )]
    NoCertificate { path: PathBuf },
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
fn environment_roots() -> &'static [CertificateDer<'static>] {
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
}
