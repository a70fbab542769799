//! Normalizers shared by every job.
//!
//! Each normalizer is total (it never panics, whatever the input) and idempotent
//! (`f(f(x)) == f(x)`); both properties are checked by property tests.

pub mod email;
pub mod name;
pub mod phone;
pub mod text;

pub use email::{EmailError, normalize_email};
pub use name::{normalize_name, split_full_name};
pub use phone::{PhoneError, Region, normalize_phone};
pub use text::clean;
