//! The patched modules of the vendored hyper (`vendor/README.md`) that compile on their own, built here with
//! their own unit tests so that `cargo test --workspace` runs them. hyper itself is excluded from the workspace,
//! and its test suite needs dev-dependencies that are not vendored. The few hyper items these modules use are
//! stood in for below, with the same names and shapes.
#![cfg(test)]

mod common {
    pub(crate) mod lock {
        pub(crate) trait LockResultExt<T> {
            fn panic_if_poisoned(self) -> T;
        }

        impl<T> LockResultExt<T> for std::sync::LockResult<T> {
            fn panic_if_poisoned(self) -> T {
                match self {
                    Ok(t) => t,
                    Err(e) => panic!("lock poisoned: {e}"),
                }
            }
        }
    }
}

/// Stands in for `hyper::Error`: the channel only creates and passes these along.
#[derive(Debug)]
pub(crate) struct Error;

impl Error {
    pub(crate) fn new_closed() -> Self {
        Error
    }
    pub(crate) fn new_incomplete() -> Self {
        Error
    }
    pub(crate) fn new_body_write_aborted() -> Self {
        Error
    }
}

pub(crate) type Result<T> = std::result::Result<T, Error>;

/// Patch 5: the body channel's bounded queue.
// Formatted as hyper formats its sources, not as this workspace does.
#[rustfmt::skip]
#[path = "../../../vendor/hyper/src/body/chan.rs"]
#[allow(dead_code, unknown_lints)]
mod chan;

/// Patch 4: the per-thread header-name cache.
#[rustfmt::skip]
#[path = "../../../vendor/hyper/src/common/header_name.rs"]
#[allow(dead_code)]
mod header_name;
