//! Integration tests of the emulator over real HTTP on an ephemeral port.

#[path = "integration/common.rs"]
mod common;

#[path = "integration/auth.rs"]
mod auth;
#[path = "integration/conversations.rs"]
mod conversations;
#[path = "integration/external.rs"]
mod external;
#[path = "integration/faults.rs"]
mod faults;
#[path = "integration/merge_associations.rs"]
mod merge_associations;
#[path = "integration/outbound.rs"]
mod outbound;
#[path = "integration/rate_limit.rs"]
mod rate_limit;
#[path = "integration/route_check.rs"]
mod route_check;
