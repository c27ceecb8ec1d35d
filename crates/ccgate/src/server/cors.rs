//! CORS for browser clients (NextChat's web build calls `/openai` from the page). Applied only to `/anthropic`
//! and `/openai`; never to the admin, dashboard or usage endpoints. Origins come from `server.cors.origins`
//! (default `*`) and follow hot reloads.

use crate::state::Gateway;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{header, HeaderValue, Method, StatusCode};
use std::sync::Arc;

pub async fn cors(State(gw): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let Some(origin) = origin else {
        return next.run(req).await;
    };
    let allowed = {
        let rt = gw.rt();
        let list = &rt.config.server.cors_origins;
        if list.iter().any(|o| o == "*") {
            Some(HeaderValue::from_static("*"))
        } else if list
            .iter()
            .any(|o| origin.to_str().is_ok_and(|s| s.eq_ignore_ascii_case(o)))
        {
            Some(origin.clone())
        } else {
            None
        }
    };
    let Some(allow) = allowed else {
        return next.run(req).await;
    };
    if req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        let mut resp = Response::new(axum::body::Body::empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, HEAD, OPTIONS"),
        );
        let req_headers = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned()
            .unwrap_or(HeaderValue::from_static(
                "authorization, content-type, x-api-key, anthropic-version, anthropic-beta",
            ));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, req_headers);
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        return resp;
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("x-request-id, x-ccgate-request-id, request-id, retry-after"),
    );
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    resp
}
