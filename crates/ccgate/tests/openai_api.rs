//! placeholder
#[path = "it/common.rs"]
mod common;
