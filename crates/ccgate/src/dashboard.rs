//! The usage dashboard (`/dashboard`), served from the binary.

use crate::state::Gateway;
use axum::Router;
use std::sync::Arc;

pub fn routes() -> Router<Arc<Gateway>> {
    Router::new()
}
