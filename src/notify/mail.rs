//! The `[smtp]` server of `jobs.toml`, ready to send a run's notification mail.

use super::*;

/// Why a run's mail could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("`{address}` is not an address: {reason}")]
    Address {
        address: String,
        reason: lettre::address::AddressError,
    },
    #[error("{0}")]
    Build(lettre::error::Error),
}

/// The `[smtp]` server, ready to send.
pub(super) struct Mail {
    pub(super) transport: lettre::SmtpTransport,
    pub(super) from: lettre::message::Mailbox,
    pub(super) server: String,
    /// `password_env` when that variable is not set: each mail fails, saying so.
    pub(super) missing_password: Option<String>,
    pub(super) password_env: Option<String>,
}

impl Mail {
    pub(super) fn new(
        smtp: &SmtpConfig,
        roots: &[rustls::pki_types::CertificateDer<'static>],
        policy: Policy,
    ) -> Result<Mail, SetupError> {
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
        let from: lettre::message::Mailbox =
            smtp.from.parse().map_err(|reason| SetupError::SmtpFrom {
                from: smtp.from.clone(),
                reason,
            })?;
        let tls = if smtp.starttls == StartTls::Off {
            Tls::None
        } else {
            // The same trust set as every other TLS client; a certificate that does not parse
            // (a damaged system bundle) is skipped, as rustls's own loading does.
            let mut builder =
                TlsParameters::builder(smtp.host.clone()).certificate_store(CertificateStore::None);
            for root in roots {
                let parses = rustls::RootCertStore::empty().add(root.clone()).is_ok();
                if parses && let Ok(cert) = Certificate::from_der(root.to_vec()) {
                    builder = builder.add_root_certificate(cert);
                }
            }
            let parameters = builder
                .build_rustls()
                .map_err(|reason| SetupError::SmtpTls {
                    host: smtp.host.clone(),
                    reason,
                })?;
            match smtp.starttls {
                StartTls::Opportunistic => Tls::Opportunistic(parameters),
                _ => Tls::Required(parameters),
            }
        };
        let mut builder = lettre::SmtpTransport::builder_dangerous(smtp.host.clone())
            .port(smtp.port)
            .tls(tls)
            .timeout(Some(policy.timeout));
        let mut missing_password = None;
        if let (Some(user), Some(var)) = (&smtp.username, &smtp.password_env) {
            match std::env::var(var) {
                Ok(password) => {
                    builder = builder.credentials(Credentials::new(user.clone(), password));
                }
                Err(_) => {
                    tracing::warn!(
                        variable = %var,
                        "smtp.password_env names a variable that is not set: email notifications will fail"
                    );
                    missing_password = Some(var.clone());
                }
            }
        }
        Ok(Mail {
            transport: builder.build(),
            from,
            server: format!("{}:{}", smtp.host, smtp.port),
            missing_password,
            password_env: smtp.password_env.clone(),
        })
    }

    pub(super) fn message(
        &self,
        to: &[String],
        outcome: &Outcome,
    ) -> Result<lettre::Message, MailError> {
        use lettre::message::header::ContentType;
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .subject(subject(outcome))
            .header(ContentType::TEXT_PLAIN);
        // The run's end, not the sending thread's clock: a daemon on a test clock says so.
        builder = match outcome.finished_at.parse::<jiff::Timestamp>() {
            Ok(at) => builder.date(std::time::SystemTime::from(at)),
            Err(_) => builder.date_now(),
        };
        for address in to {
            let address: lettre::Address =
                address.parse().map_err(|reason| MailError::Address {
                    address: address.clone(),
                    reason,
                })?;
            builder = builder.to(address.into());
        }
        builder.body(text(outcome)).map_err(MailError::Build)
    }
}
