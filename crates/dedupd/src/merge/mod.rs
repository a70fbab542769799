//! Duplicate merging: the plan format, and applying a reviewed plan through the merge API.

pub mod apply;
pub mod plan_format;
