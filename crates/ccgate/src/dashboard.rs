//! The console: the admin console and the tenant portal, served from the binary (no CDN, no build step). One HTML
//! shell (`assets/console/index.html`) loads one script, one style sheet and the catalogue of the reader's
//! language from the fixed prefix [`ASSET_PREFIX`], so the pages work under any admin path. The script talks to the
//! JSON APIs (`/api/admin/*` with the session cookie, `/api/tenant/*` with the tenant key).
//!
//! The shell is served at `GET`/`HEAD` `/dashboard`, `/dashboard/`, and at the admin path from `server.json`
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

/// The HTML shell: markup only, no inline script or style.
pub const PAGE: &str = include_str!("../assets/console/index.html");

/// Where the console's files are served: a fixed prefix, whatever the admin path is.
pub const ASSET_PREFIX: &str = "/console-assets";

/// The console's files below [`ASSET_PREFIX`]: path, content type, content.
pub const ASSETS: &[(&str, &str, &str)] = &[
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/console/app.js"),
    ),
    (
        "/app.css",
        "text/css; charset=utf-8",
        include_str!("../assets/console/app.css"),
    ),
    (
        "/i18n/en.json",
        "application/json",
        include_str!("../assets/console/i18n/en.json"),
    ),
    (
        "/i18n/zh-CN.json",
        "application/json",
        include_str!("../assets/console/i18n/zh-CN.json"),
    ),
];

/// Nothing from elsewhere and nothing inline: scripts and styles only from the gateway's own files (element.style set
/// from the script is still allowed; `style="…"` in markup is not).
pub const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

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
    for &(path, content_type, body) in ASSETS {
        router = router.route(
            &format!("{ASSET_PREFIX}{path}"),
            get(move || async move { served(content_type, body) }),
        );
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
    served("text/html; charset=utf-8", PAGE)
}

/// A file of the console with the same security headers as the page. `no-cache`: a browser revalidates, so an
/// upgraded gateway never runs an old script against a new API.
fn served(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        body,
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

    fn asset(path: &str) -> &'static str {
        ASSETS
            .iter()
            .find(|(p, _, _)| *p == path)
            .map(|(_, _, body)| *body)
            .unwrap_or_else(|| panic!("no asset {path}"))
    }

    /// Nothing is loaded from elsewhere: the console works offline.
    #[test]
    fn assets_are_self_contained() {
        for (name, text) in std::iter::once(("index.html", PAGE))
            .chain(ASSETS.iter().map(|(p, _, body)| (*p, *body)))
        {
            // The SVG namespace is an identifier, not a request.
            let text = text.replace("http://www.w3.org/2000/svg", "");
            for external in ["http://", "https://", "//cdn", "@import", "url("] {
                assert!(!text.contains(external), "{name} references {external}");
            }
        }
        // Every file the shell names is served.
        for link in PAGE.split("\"/console-assets").skip(1) {
            let path = &link[..link.find('"').unwrap()];
            asset(path);
        }
        assert!(PAGE.contains("src=\"/console-assets/app.js\""));
        assert!(PAGE.contains("href=\"/console-assets/app.css\""));
    }

    /// The CSP allows nothing inline, and the pages need nothing inline.
    #[test]
    fn csp_is_strict_and_the_pages_fit_it() {
        assert!(!CSP.contains("unsafe"), "{CSP}");
        for d in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(CSP.contains(d), "{d}");
        }
        let html = PAGE.to_ascii_lowercase();
        assert_eq!(html.matches("<script").count(), 1);
        assert!(html.contains("<script src=\"/console-assets/app.js\" defer></script>"));
        for inline in [
            " style=",
            "<style",
            " onclick=",
            " onload=",
            " onerror=",
            " onsubmit=",
            "javascript:",
        ] {
            assert!(!html.contains(inline), "index.html has {inline}");
        }
        // Values from tenants and upstreams go in as text: no markup sinks in the script.
        let js = asset("/app.js");
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ] {
            assert!(!js.contains(sink), "app.js uses {sink}");
        }
    }

    /// Both languages have the same keys, no empty text, and every key the script and the shell name.
    #[test]
    fn catalogues_match() {
        let load = |p: &str| -> std::collections::BTreeMap<String, String> {
            serde_json::from_str(asset(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
        };
        let en = load("/i18n/en.json");
        let zh = load("/i18n/zh-CN.json");
        let keys =
            |m: &std::collections::BTreeMap<String, String>| m.keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&en), keys(&zh));
        for (k, v) in en.iter().chain(zh.iter()) {
            assert!(!v.trim().is_empty(), "{k} is empty");
        }
        // Literal keys: `t('key'` in the script, `data-i18n="key"` in the shell.
        let js = asset("/app.js");
        let mut used: Vec<&str> = js
            .match_indices("t('")
            .filter(|(i, _)| {
                !js[..*i]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            })
            .map(|(i, _)| {
                let rest = &js[i + 3..];
                &rest[..rest.find('\'').unwrap()]
            })
            .filter(|k| !k.ends_with('.'))
            .collect();
        used.extend(
            PAGE.split("data-i18n=\"")
                .skip(1)
                .map(|r| &r[..r.find('"').unwrap()]),
        );
        assert!(used.len() > 100, "{}", used.len());
        for k in used {
            assert!(en.contains_key(k), "{k} is not in the catalogues");
        }
        // Keys built at run time.
        for prefix in ["range.", "limit.", "form.limit."] {
            for w in ["daily", "monthly"].iter().filter(|_| prefix != "range.") {
                assert!(en.contains_key(&format!("{prefix}{w}")), "{prefix}{w}");
            }
        }
        for k in [
            "range.today",
            "range.7d",
            "range.30d",
            "group.tenant",
            "group.model",
            "source.file",
            "source.console",
        ] {
            assert!(en.contains_key(k), "{k}");
        }
    }
}
