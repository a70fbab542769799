//! Genesys Cloud behind dedupd's platform seams (`dedupd-platform`): what the jobs call, so they
//! never name this client.

pub mod messaging;
pub mod notify;
