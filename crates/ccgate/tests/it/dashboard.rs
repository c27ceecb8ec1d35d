//! The console: its page served at /dashboard and the admin path, its files at /console-assets/, all with security
//! headers and no CORS.

use crate::common::*;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

async fn get_page(gw: &Gateway, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", gw.url))
        .header("origin", "https://elsewhere.example")
        .send()
        .await
        .unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("missing {name}"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn dashboard_page_is_served_with_security_headers() {
    let mock = mock().await;
    let mut files = Files::new(&[mock.url()]);
    files.server["admin"]["path"] = serde_json::json!("/console");
    let gw = Gateway::start(&files).await;

    for path in [
        "/dashboard",
        "/dashboard/",
        "/admin",
        "/console",
        "/console/",
    ] {
        let r = get_page(&gw, path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(&r, "cache-control"), "no-cache");
        assert_eq!(header(&r, "x-content-type-options"), "nosniff");
        assert_eq!(header(&r, "x-frame-options"), "DENY");
        assert_eq!(header(&r, "referrer-policy"), "no-referrer");
        assert_eq!(header(&r, "content-security-policy"), CSP);
        assert!(
            r.headers().get("access-control-allow-origin").is_none(),
            "no CORS on {path}"
        );
        let html = r.text().await.unwrap();
        assert!(html.starts_with("<!doctype html>"));
        // The login card: both tabs, the key field, the admin fields.
        for needle in [
            "role=\"tablist\"",
            "id=\"tab-tenant\"",
            "id=\"tab-admin\"",
            "<form id=\"panel-tenant\"",
            "<label for=\"api-key\" data-i18n=\"login.key\">API key</label>",
            "<label for=\"admin-user\" data-i18n=\"login.username\">Username</label>",
            "<label for=\"admin-pass\" data-i18n=\"login.password\">Password</label>",
            "<script src=\"/console-assets/app.js\" defer></script>",
            "<link rel=\"stylesheet\" href=\"/console-assets/app.css\">",
        ] {
            assert!(html.contains(needle), "{path}: page lacks {needle}");
        }
        // Nothing inline, nothing from elsewhere.
        assert!(!html.contains("<style") && !html.contains(" style="));
        assert_eq!(html.matches("<script").count(), 1);
        assert!(!html.contains("http://") && !html.contains("https://"));
    }

    // The files the page loads: the same headers, the right types, the endpoints the script calls.
    for (path, content_type, needles) in [
        (
            "/console-assets/app.js",
            "text/javascript; charset=utf-8",
            &[
                "/api/admin/login",
                "/api/admin/session",
                "/api/admin/usage",
                "/api/admin/requests",
                "/api/tenant/status",
                "X-CSRF-Token",
            ][..],
        ),
        (
            "/console-assets/app.css",
            "text/css; charset=utf-8",
            &["prefers-color-scheme: dark"][..],
        ),
        (
            "/console-assets/i18n/en.json",
            "application/json",
            &["\"login.signIn\": \"Sign in\""][..],
        ),
        (
            "/console-assets/i18n/zh-CN.json",
            "application/json",
            &["\"login.signIn\": \"登录\""][..],
        ),
    ] {
        let r = get_page(&gw, path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(header(&r, "content-type"), content_type, "{path}");
        assert_eq!(header(&r, "x-content-type-options"), "nosniff");
        assert_eq!(header(&r, "content-security-policy"), CSP);
        assert!(r.headers().get("access-control-allow-origin").is_none());
        let body = r.text().await.unwrap();
        for n in needles {
            assert!(body.contains(n), "{path} lacks {n}");
        }
    }
    assert_eq!(get_page(&gw, "/console-assets/nope.js").await.status(), 404);

    let head = client()
        .head(format!("{}/dashboard", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "content-type"), "text/html; charset=utf-8");
    assert!(head.bytes().await.unwrap().is_empty());

    // Other methods are refused; unknown paths below /dashboard are not the page.
    let post = client()
        .post(format!("{}/dashboard", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
    let other = get_page(&gw, "/dashboard/x").await;
    assert_eq!(other.status(), 404);
}

#[tokio::test]
async fn clashing_admin_path_is_ignored() {
    let mock = mock().await;
    let mut files = Files::new(&[mock.url()]);
    files.server["admin"]["path"] = serde_json::json!("/usage");
    let gw = Gateway::start(&files).await;
    let r = get_page(&gw, "/dashboard").await;
    assert_eq!(r.status(), 200);
    // /usage is still the API, not the page.
    let r = client()
        .post(format!("{}/usage", gw.url))
        .json(&serde_json::json!({"type": "tenant", "apiKey": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
}
