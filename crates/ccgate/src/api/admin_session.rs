//! Who may call `/api/admin/*`: HTTP Basic with the admin credentials (scripts, curl), or the console's session
//! cookie (browsers). `POST /api/admin/login` makes a session, `GET /api/admin/session` reads it,
//! `POST /api/admin/logout` ends it; [`admin_only`] is the check every admin endpoint runs.
//!
//! Sessions are kept in the store (`admin_sessions`), so a login on one instance holds on every instance behind a
//! load balancer, and a logout ends it everywhere. The store keeps only the SHA-256 of the cookie, and a tag over
//! the cookie and the admin credential in force: a changed password or username ends every session made with the
//! old one. A session lasts [`SESSION_TTL`] from login.
//!
//! The cookie is `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page sends it), and `Secure`
//! when the request came over HTTPS through a proxy (`X-Forwarded-Proto: https`). On top of that, every change made
//! with the cookie (any method but GET and HEAD) must carry the session's CSRF token in `X-CSRF-Token`, which only a
//! page of this origin can read from `GET /api/admin/session`. HTTP Basic needs no token: browsers never attach
//! it on their own, because the console never asks them to (a 401 carries the Basic challenge only for callers
//! that are not a browser page).
//!
//! Logins are throttled per client address like every credential check (`auth/throttle.rs`).

use super::admin_tenants::{parse_json, read_body, AdminError};
use super::usage::{admin_login, admin_refused_message, AdminLogin};
use crate::ledger::store::AdminSession;
use crate::state::Gateway;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const COOKIE: &str = "ccgate_admin";
/// The header a change made with the session cookie must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a console login lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 60 * 60);

/// How the admin was recognised.
#[derive(Debug)]
pub enum AdminAuth {
    Basic,
    Session(AdminSession),
}

/// The check of every `/api/admin/*` endpoint: HTTP Basic, or a live session cookie (plus the CSRF token for a
/// change). A locked-out address is refused first, whatever it presents.
pub async fn admin_only(
    gw: &Gateway,
    method: &Method,
    headers: &HeaderMap,
    extensions: &http::Extensions,
) -> Result<AdminAuth, AdminError> {
    let rt = gw.rt();
    let client = crate::auth::client_ip(headers, extensions, rt.config.server.trust_proxy_headers);
    if let Err(crate::error::ApiError::RateLimited(_, secs)) =
        crate::auth::check_lockout(gw, client)
    {
        return Err(AdminError::LockedOut(secs));
    }
    if let Some((user, pass)) = crate::auth::basic_credentials(headers) {
        return match admin_login(&rt.config, &user, &pass) {
            AdminLogin::Accepted => Ok(AdminAuth::Basic),
            AdminLogin::Refused(p) => Err(AdminError::PasswordRefused(admin_refused_message(p))),
            AdminLogin::Wrong => {
                crate::auth::note_failure(gw, client, "/api/admin");
                Err(AdminError::Unauthorized)
            }
        };
    }
    let Some(token) = cookie(headers, COOKIE) else {
        return Err(if from_browser_page(headers) {
            AdminError::NoSession
        } else {
            AdminError::Unauthorized
        });
    };
    // A cookie is 256 random bits: guessing one is hopeless, so a stale cookie is not a failed login (counting it
    // would lock out an admin whose session merely ended).
    let session = gw
        .ledger
        .store
        .admin_session(&hex(&Sha256::digest(token.as_bytes())))
        .await?
        .ok_or(AdminError::NoSession)?;
    let tag = credential_tag(token, &rt.config.admin.credential_fingerprint());
    let live = session.expires_ms > now_ms()
        && bool::from(session.credential_tag.as_bytes().ct_eq(tag.as_bytes()))
        && rt.config.admin.login_allowed();
    if !live {
        return Err(AdminError::NoSession);
    }
    if !matches!(*method, Method::GET | Method::HEAD) {
        let sent = headers
            .get(CSRF_HEADER)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        if !bool::from(sent.ct_eq(session.csrf_token.as_bytes())) {
            return Err(AdminError::CsrfRefused);
        }
    }
    Ok(AdminAuth::Session(session))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginFields {
    username: String,
    password: String,
}

/// `POST /api/admin/login` with `{"username", "password"}`: sets the session cookie and answers the CSRF token.
pub async fn login(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    login_inner(&gw, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn login_inner(gw: &Gateway, req: Request) -> Result<Response, AdminError> {
    let (parts, body) = req.into_parts();
    let rt = gw.runtime.load_full();
    let client = crate::auth::client_ip(
        &parts.headers,
        &parts.extensions,
        rt.config.server.trust_proxy_headers,
    );
    if let Err(crate::error::ApiError::RateLimited(_, secs)) =
        crate::auth::check_lockout(gw, client)
    {
        return Err(AdminError::LockedOut(secs));
    }
    let fields: LoginFields = parse_json(&read_body(gw, body).await?)?;
    match admin_login(&rt.config, &fields.username, &fields.password) {
        AdminLogin::Accepted => {}
        AdminLogin::Refused(p) => {
            return Err(AdminError::PasswordRefused(admin_refused_message(p)))
        }
        AdminLogin::Wrong => {
            crate::auth::note_failure(gw, client, "/api/admin/login");
            return Err(AdminError::WrongLogin);
        }
    }
    let token = random_token();
    let now = now_ms();
    let session = AdminSession {
        token_sha256: hex(&Sha256::digest(token.as_bytes())),
        username: rt.config.admin.username.clone(),
        csrf_token: random_token(),
        credential_tag: credential_tag(&token, &rt.config.admin.credential_fingerprint()),
        created_ms: now,
        expires_ms: now + SESSION_TTL.as_millis() as i64,
    };
    gw.ledger.store.put_admin_session(&session).await?;
    tracing::info!(client = ?client, "admin logged in to the console");
    let mut resp = (StatusCode::OK, axum::Json(session_json(&session))).into_response();
    let secure = if over_https(&parts.headers) {
        "; Secure"
    } else {
        ""
    };
    let set = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_TTL.as_secs()
    );
    if let Ok(v) = HeaderValue::from_str(&set) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// `GET /api/admin/session`: who is logged in, and the CSRF token for changes.
pub async fn current(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    match admin_only(&gw, req.method(), req.headers(), req.extensions()).await {
        Ok(AdminAuth::Session(s)) => {
            let mut resp = (StatusCode::OK, axum::Json(session_json(&s))).into_response();
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Ok(AdminAuth::Basic) => (
            StatusCode::OK,
            axum::Json(
                json!({"username": gw.rt().config.admin.username, "csrfToken": null,
                "note": "HTTP Basic: no session, and no CSRF token needed"}),
            ),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /api/admin/logout`: ends the session everywhere and clears the cookie. A cookie whose session has already
/// ended is simply cleared.
pub async fn logout(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let ended = match admin_only(&gw, req.method(), req.headers(), req.extensions()).await {
        Ok(AdminAuth::Session(s)) => gw.ledger.store.delete_admin_session(&s.token_sha256).await,
        Ok(AdminAuth::Basic) | Err(AdminError::NoSession) => Ok(false),
        Err(e) => return e.into_response(),
    };
    if let Err(e) = ended {
        return AdminError::from(e).into_response();
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("ccgate_admin=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    resp
}

fn session_json(s: &AdminSession) -> serde_json::Value {
    json!({
        "username": s.username,
        "csrfToken": s.csrf_token,
        "expiresAt": chrono::DateTime::from_timestamp_millis(s.expires_ms).map(|t| t.to_rfc3339()),
    })
}

/// The value of cookie `name`, if the request carries it.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A fetch from a page (browsers send `Sec-Fetch-Mode`, and the console sends its cookie): answered without the
/// Basic challenge, which would make the browser pop up its own password dialog over the console.
fn from_browser_page(headers: &HeaderMap) -> bool {
    headers.contains_key(header::COOKIE)
        || headers
            .get("sec-fetch-mode")
            .is_some_and(|v| v.as_bytes() != b"navigate")
}

/// Whether the client reached the gateway over HTTPS (through a TLS-terminating proxy). The header can only add
/// `Secure` to the cookie, which a client on plain HTTP would merely fail to keep, so it is believed as sent.
fn over_https(headers: &HeaderMap) -> bool {
    let proto = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("https"))
    };
    proto("x-forwarded-proto") || proto("forwarded")
}

fn credential_tag(token: &str, fingerprint: &str) -> String {
    let mut h = Sha256::new();
    h.update(token.as_bytes());
    h.update([0u8]);
    h.update(fingerprint.as_bytes());
    hex(&h.finalize())
}

/// 256 random bits, URL-safe base64 (a valid cookie value and header value).
fn random_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            "a=1; ccgate_admin=tok; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, COOKIE), Some("tok"));
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "a=1".parse().unwrap());
        h.append(header::COOKIE, "ccgate_admin=t2".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE), Some("t2"));
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            "xccgate_admin=no; ccgate_admin=".parse().unwrap(),
        );
        assert_eq!(cookie(&h, COOKIE), None);
    }

    #[test]
    fn a_changed_credential_changes_the_tag() {
        let a = credential_tag("tok", "admin\0plain\0one password");
        assert_eq!(a, credential_tag("tok", "admin\0plain\0one password"));
        assert_ne!(a, credential_tag("tok", "admin\0plain\0another one"));
        assert_ne!(a, credential_tag("tok2", "admin\0plain\0one password"));
    }

    #[test]
    fn tokens_are_random_and_cookie_safe() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[test]
    fn https_is_read_from_the_proxy_headers() {
        let mut h = HeaderMap::new();
        assert!(!over_https(&h));
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(over_https(&h));
        let mut h = HeaderMap::new();
        h.insert("forwarded", "for=1.2.3.4;proto=https".parse().unwrap());
        assert!(over_https(&h));
    }
}
