//! The usage dashboard, served from the binary: one self-contained HTML page (inline CSS and JS, no external
//! resources) that reads `POST /usage` and `GET /health`.
//!
//! Served at `GET`/`HEAD` `/dashboard`, `/dashboard/`, and at the admin path from `server.json`
//! (`admin.path`, default `/admin`, with and without a trailing slash). The admin path is read from the
//! config the router is built with, so a change to `admin.path` takes effect at the next start; `/admin` stays
//! served whatever it is. A path that would clash with an API route (`/`, `/health`, `/usage`, `/anthropic…`,
//! `/openai…`) or that holds router syntax (`{`, `}`, `*`) is skipped with a warning. No CORS on these routes.

use crate::state::Gateway;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::header;
use std::sync::Arc;

/// The page. Its only requests are to this gateway (`/usage`, `/health`).
pub const PAGE: &str = include_str!("../assets/dashboard.html");

/// Allows nothing from elsewhere; inline script and style only because the page is self-contained.
pub const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn routes(gw: &Gateway) -> Router<Arc<Gateway>> {
    let mut paths = vec![
        "/dashboard".to_string(),
        "/dashboard/".to_string(),
        "/admin".to_string(),
        "/admin/".to_string(),
    ];
    let configured = gw.rt().config.admin.path.clone();
    for p in admin_paths(&configured) {
        if !paths.contains(&p) {
            paths.push(p);
        }
    }
    let mut router = Router::new();
    for p in &paths {
        router = router.route(p, get(page));
    }
    router
}

/// The configured admin path with and without a trailing slash, or nothing if it cannot be routed safely.
fn admin_paths(path: &str) -> Vec<String> {
    let base = path.trim_end_matches('/');
    let reserved = [
        "",
        "/health",
        "/usage",
        "/dashboard",
        "/anthropic",
        "/openai",
    ];
    let clashes = reserved.contains(&base)
        || base.starts_with("/anthropic/")
        || base.starts_with("/openai/")
        || base.starts_with("/dashboard/");
    let syntax = !base.starts_with('/')
        || base.contains("//")
        || base
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || "/-_.~".contains(c)));
    if clashes || syntax {
        tracing::warn!(path = %path, "admin.path clashes with another route or is not a plain path; the dashboard stays at /dashboard and /admin");
        return Vec::new();
    }
    vec![base.to_string(), format!("{base}/")]
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        PAGE,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_path_variants() {
        assert_eq!(admin_paths("/console"), vec!["/console", "/console/"]);
        assert_eq!(
            admin_paths("/ops/usage/"),
            vec!["/ops/usage", "/ops/usage/"]
        );
        for bad in [
            "/",
            "/health",
            "/usage/",
            "/anthropic/v1",
            "/openai",
            "/dashboard/x",
            "/a/{id}",
            "/a/*rest",
            "/a b",
            "//x",
        ] {
            assert!(admin_paths(bad).is_empty(), "{bad}");
        }
    }

    /// The login page shows the gateway's message when the admin password is a refused default.
    #[test]
    fn page_explains_a_refused_default_password() {
        assert!(PAGE.contains(crate::api::usage::ADMIN_PASSWORD_REFUSED));
    }

    #[test]
    fn page_is_self_contained() {
        assert!(PAGE.contains("/usage"));
        // The SVG namespace is an identifier, not a request.
        let page = PAGE.replace("http://www.w3.org/2000/svg", "");
        for external in ["http://", "https://", "src=", "@import", "url("] {
            assert!(!page.contains(external), "page references {external}");
        }
    }
}
