//! How the job is reached from elsewhere: `depends_on` (its gate) and the incoming `webhook`.

use super::super::raw::{Loc, RawWebhook};
use super::*;

/// `depends_on`: valid names, not the job itself, none twice; each is a reference to check
/// across files.
pub(super) fn depends_on(
    b: &mut Builder,
    raw: Option<Vec<Loc<String>>>,
    own: Option<&JobName>,
) -> Vec<JobName> {
    let mut depends_on = Vec::new();
    for dep in raw.unwrap_or_default() {
        let Some(n) = b.job_name("depends_on", &dep) else {
            continue;
        };
        if Some(&n) == own {
            b.error(dep.at, "a job cannot depend on itself");
        } else if depends_on.contains(&n) {
            b.error(dep.at, format!("`{n}` is listed twice in depends_on"));
        } else {
            b.reference("depends_on", &n, dep.at);
            depends_on.push(n);
        }
    }
    depends_on
}

/// `webhook`: exactly one of `secret_env` and `secret_file` (where the secret is, never the
/// secret itself).
pub(super) fn webhook(b: &mut Builder, raw: Option<Loc<RawWebhook>>) -> Option<Webhook> {
    let w = raw?;
    let require_timestamp = w.value.require_timestamp.unwrap_or(false);
    let secret = match (w.value.secret_env, w.value.secret_file) {
        (Some(env), None) if is_env_name(&env.value) => WebhookSecret::SecretEnv(env.value),
        (Some(env), None) => {
            b.error(
                env.at,
                format!(
                    "webhook.secret_env `{}` is not a valid environment variable name",
                    env.value
                ),
            );
            return None;
        }
        (None, Some(file)) if !file.value.trim().is_empty() => {
            WebhookSecret::SecretFile(file.value)
        }
        (None, Some(file)) => {
            b.error(file.at, "webhook.secret_file is empty");
            return None;
        }
        _ => {
            b.error(
                w.at,
                "a webhook needs exactly one of `secret_env: VAR` or `secret_file: PATH`",
            );
            return None;
        }
    };
    Some(Webhook {
        secret,
        require_timestamp,
    })
}
