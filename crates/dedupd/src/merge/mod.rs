//! Duplicate merging: finding duplicates and writing a reviewable plan (`plan`, `html`), the plan
//! format, and applying a reviewed plan through the merge API (`apply`).

pub mod apply;
pub mod html;
pub mod plan;
pub mod plan_format;
