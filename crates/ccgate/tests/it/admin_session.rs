//! The console's admin session (crates/ccgate/src/api/admin_session.rs): login sets an HttpOnly, SameSite=Strict
//! cookie; changes made with it need the CSRF token; logout and a changed password end it; wrong passwords are
//! throttled; `admin.passwordHash` (argon2) works in place of a plaintext password.

use crate::common::*;
use serde_json::{json, Value};

async fn login(gw: &Gateway, user: &str, pass: &str) -> reqwest::Response {
    client()
        .post(format!("{}/api/admin/login", gw.url))
        .json(&json!({"username": user, "password": pass}))
        .send()
        .await
        .unwrap()
}

/// Logs in and returns (cookie header value, CSRF token).
async fn session(gw: &Gateway, pass: &str) -> (String, String) {
    let r = login(gw, "admin", pass).await;
    assert_eq!(r.status(), 200);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let cookie = set.split(';').next().unwrap().to_string();
    let v: Value = r.json().await.unwrap();
    (cookie, v["csrfToken"].as_str().unwrap().to_string())
}

fn with_cookie(rb: reqwest::RequestBuilder, cookie: &str) -> reqwest::RequestBuilder {
    rb.header("cookie", cookie)
}

async fn status_of(rb: reqwest::RequestBuilder) -> (u16, Value) {
    let r = rb.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_console_session_reads_changes_with_its_csrf_token_and_ends_at_logout() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let tenants = format!("{}/api/admin/tenants", gw.url);

    // A wrong password: 401 without saying which part was wrong, and without the Basic challenge (the console
    // shows its own form).
    let r = login(&gw, "admin", "not-the-password").await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_none());
    assert!(r.headers().get("set-cookie").is_none());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["message"], "wrong username or password");
    let r = login(&gw, "someone", ADMIN_PASSWORD).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["message"],
        "wrong username or password"
    );

    let (cookie, csrf) = session(&gw, ADMIN_PASSWORD).await;
    let (s, v) = status_of(with_cookie(
        client().get(format!("{}/api/admin/session", gw.url)),
        &cookie,
    ))
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["username"], "admin");
    assert_eq!(v["csrfToken"], csrf.as_str());

    // Reading needs only the cookie.
    let (s, v) = status_of(with_cookie(client().get(&tenants), &cookie)).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["tenants"].is_array());

    // A change without the token, or with another one, is refused and changes nothing.
    let body = json!({"name": "Bob", "id": "bob"});
    let (s, v) = status_of(with_cookie(client().post(&tenants).json(&body), &cookie)).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["type"], "permission_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("X-CSRF-Token"));
    let (s, _) = status_of(with_cookie(
        client()
            .post(&tenants)
            .header("x-csrf-token", "forged")
            .json(&body),
        &cookie,
    ))
    .await;
    assert_eq!(s, 403);
    let (_, v) = status_of(with_cookie(client().get(&tenants), &cookie)).await;
    assert!(!v.to_string().contains("\"bob\""), "{v}");

    // With the token: made.
    let (s, v) = status_of(with_cookie(
        client()
            .post(&tenants)
            .header("x-csrf-token", &csrf)
            .json(&body),
        &cookie,
    ))
    .await;
    assert_eq!(s, 201, "{v}");

    // A made-up cookie is no session, and is not counted as a failed login.
    let (s, v) = status_of(with_cookie(client().get(&tenants), "ccgate_admin=made-up")).await;
    assert_eq!(s, 401, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("log in again"));

    // Logout ends the session (for every instance: it is removed from the store) and clears the cookie.
    let r = with_cookie(
        client()
            .post(format!("{}/api/admin/logout", gw.url))
            .header("x-csrf-token", &csrf),
        &cookie,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let (s, _) = status_of(with_cookie(client().get(&tenants), &cookie)).await;
    assert_eq!(s, 401);

    // HTTP Basic keeps working for scripts, without a CSRF token.
    let (s, _) = status_of(
        client()
            .patch(format!("{tenants}/bob"))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .json(&json!({"enabled": false})),
    )
    .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn a_changed_admin_password_ends_sessions_and_https_cookies_are_secure() {
    let m = mock().await;
    let files = Files::new(&[m.url()]);
    let gw = Gateway::start(&files).await;
    let (cookie, _) = session(&gw, ADMIN_PASSWORD).await;
    let tenants = format!("{}/api/admin/tenants", gw.url);
    assert_eq!(
        status_of(with_cookie(client().get(&tenants), &cookie))
            .await
            .0,
        200
    );

    let r = client()
        .post(format!("{}/api/admin/login", gw.url))
        .header("x-forwarded-proto", "https")
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("; Secure"));

    let mut server = files.server.clone();
    server["admin"]["password"] = json!("a-new-admin-password");
    gw.write_config("server.json", &server);
    eventually(10, || async {
        (status_of(with_cookie(client().get(&tenants), &cookie))
            .await
            .0
            == 401)
            .then_some(())
    })
    .await;
    session(&gw, "a-new-admin-password").await;
}

#[tokio::test]
async fn ten_wrong_passwords_in_a_minute_lock_the_address_out() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    for _ in 0..10 {
        assert_eq!(login(&gw, "admin", "guess-guess").await.status(), 401);
    }
    // Locked out: even the right password waits.
    let r = login(&gw, "admin", ADMIN_PASSWORD).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["type"],
        "rate_limit_error"
    );
}

#[tokio::test]
async fn an_argon2_password_hash_replaces_the_plaintext_password() {
    let m = mock().await;
    let mut files = Files::new(&[m.url()]);
    let gw0 = Gateway::start(&files).await;
    // `ccgate hash-password` reads the password from stdin.
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ccgate"))
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hashed-admin-password\n").await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success());
    let phc = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    drop(gw0);

    files.server["admin"] = json!({"username": "admin", "passwordHash": phc});
    let gw = Gateway::start(&files).await;
    let tenants = format!("{}/api/admin/tenants", gw.url);
    let (s, _) = status_of(
        client()
            .get(&tenants)
            .basic_auth("admin", Some("hashed-admin-password")),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = status_of(client().get(&tenants).basic_auth("admin", Some(&phc))).await;
    assert_eq!(s, 401, "the hash itself is not the password");
    session(&gw, "hashed-admin-password").await;

    // Both a password and a hash: the config is refused, naming the field.
    files.server["admin"] =
        json!({"username": "admin", "password": ADMIN_PASSWORD, "passwordHash": phc});
    let config = TempDir::new("cfg");
    files.write(&config.0);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ccgate"))
        .args(["config", "validate", "--config-dir"])
        .arg(&config.0)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("admin.passwordHash"), "{text}");
}
