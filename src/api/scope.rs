//! What a scoped token sees (see `auth::Scope`): the jobs of its folders, their runs, and
//! nothing of the others. A job or run outside the scope answers exactly as one that does
//! not exist (404, the same message), so a team learns nothing of another's jobs.

use std::collections::HashSet;
use std::sync::Arc;

use super::Api;
use super::auth::Principal;
use super::error::{ApiError, ApiResult};

impl Api {
    /// The jobs `who` sees: `None` for an unscoped caller (every job).
    pub(crate) async fn visible_jobs(
        self: &Arc<Self>,
        who: &Principal,
    ) -> ApiResult<Option<Arc<HashSet<String>>>> {
        let Some(scope) = who.scope.clone() else {
            return Ok(None);
        };
        let places = self.read(|l| l.job_places()).await?;
        Ok(Some(Arc::new(
            places
                .into_iter()
                .filter(|(_, path, created, _)| scope.covers(path.as_deref(), created.as_deref()))
                .map(|(name, _, _, _)| name)
                .collect(),
        )))
    }

    /// Whether `who` sees job `name` (a job that does not exist is not seen).
    pub(crate) async fn sees_job(self: &Arc<Self>, who: &Principal, name: &str) -> ApiResult<bool> {
        let Some(scope) = who.scope.clone() else {
            return Ok(true);
        };
        let job = name.to_string();
        let place = self.read(move |l| l.job_place(&job)).await?;
        Ok(place.is_some_and(|(path, created)| scope.covers(path.as_deref(), created.as_deref())))
    }

    /// 404, as for a job that does not exist, unless `who` sees job `name`.
    pub(crate) async fn check_job(self: &Arc<Self>, who: &Principal, name: &str) -> ApiResult<()> {
        if who.scope.is_none() || self.sees_job(who, name).await? {
            Ok(())
        } else {
            Err(super::jobs::no_job(name))
        }
    }

    /// 404, as for a run that does not exist, unless `who` sees run `id`'s job.
    pub(crate) async fn check_run(self: &Arc<Self>, who: &Principal, id: i64) -> ApiResult<()> {
        if who.scope.is_none() {
            return Ok(());
        }
        let job = self.read(move |l| l.run_job(id)).await?;
        match job {
            Some(job) if self.sees_job(who, &job).await? => Ok(()),
            _ => Err(no_run(id)),
        }
    }
}

/// What a run that does not exist (or that the caller does not see) answers.
pub(crate) fn no_run(id: i64) -> ApiError {
    ApiError::not_found(format!("no run {id}; GET /v1/runs lists them"))
}

/// What a scoped token is told by an endpoint that covers every job at once.
pub(crate) fn unscoped_only(what: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        format!("{what} covers every job: it needs a token without folders"),
    )
}
