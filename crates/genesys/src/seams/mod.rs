//! Genesys Cloud behind dedupd's platform seams (`dedupd-platform`): what the jobs call, so they
//! never name this client.

pub mod directory;
pub mod messaging;
pub mod notify;
#[cfg(test)]
mod placement_tests;

pub use directory::MERGE_SET_MAX;

use dedupd_platform::PlatformError;

use crate::Error;

/// `e` as a seam error about `what`: its kind (what a job does about it), its status, the
/// records the platform named, its `Retry-After`, and a message that is value-free (it never
/// carries one of `values`, nor the platform's free-text message, which can echo them; that one
/// is kept apart in `platform_message` for reports).
pub(crate) fn platform_error(e: &Error, what: &str, values: &[&str]) -> PlatformError {
    let status = e.status().map(|s| s.as_u16());
    let kind = e.seam_kind();
    let body = e.error_body();
    let entities = body.map(crate::ErrorBody::entity_ids).unwrap_or_default();
    let platform_message = body.and_then(|b| b.message.clone());
    let retry_after = match e {
        Error::Api(a) => a.retry_after,
        _ => None,
    };
    let mut err = PlatformError::new(kind, format!("{what}: {}", notify::summary(e, values)))
        .with_entities(entities)
        .with_platform_message(platform_message)
        .with_retry_after(retry_after);
    if let Some(s) = status {
        err = err.with_status(s);
    }
    err
}
