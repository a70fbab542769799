//! Integration tests of the NICE CXone emulator over real HTTP on an ephemeral port.

#[path = "cxone/common.rs"]
mod common;

#[path = "cxone/auth.rs"]
mod auth;
#[path = "cxone/customers.rs"]
mod customers;
#[path = "cxone/dfo.rs"]
mod dfo;
#[path = "cxone/dnc.rs"]
mod dnc;
#[path = "cxone/faults.rs"]
mod faults;
#[path = "cxone/lists.rs"]
mod lists;
#[path = "cxone/routes.rs"]
mod routes;
