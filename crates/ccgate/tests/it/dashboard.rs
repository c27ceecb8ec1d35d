//! The usage dashboard page: served at /dashboard and the admin path, with security headers and no CORS.

use crate::common::*;

const CSP_PREFIX: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:";

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
        assert!(header(&r, "content-security-policy").starts_with(CSP_PREFIX));
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
            "<label for=\"api-key\">API key</label>",
            "id=\"remember\"",
            "<label for=\"admin-user\">Username</label>",
            "<label for=\"admin-pass\">Password</label>",
        ] {
            assert!(html.contains(needle), "{path}: page lacks {needle}");
        }
        // The script reads the real endpoints and loads nothing from elsewhere.
        assert!(html.contains("request('/usage'"));
        assert!(html.contains("request('/health'"));
        let without_ns = html.replace("http://www.w3.org/2000/svg", "");
        assert!(!without_ns.contains("http://") && !without_ns.contains("https://"));
        assert!(!html.contains(" src="));
    }

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
