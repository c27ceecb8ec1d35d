//! The session key that keeps one conversation on one upstream (its prompt cache lives there).
//!
//! Sources, in order: the `x-claude-code-session-id` header; the `session_id` inside `metadata.user_id`
//! (a JSON string since Claude Code ≈2.1.78, `user_<hex>_account_<uuid>_session_<uuid>` before); the OpenAI
//! `user` field. The key is scoped by tenant so two tenants never share a placement by accident.

use http::HeaderMap;

pub fn session_key(
    tenant_id: &str,
    headers: &HeaderMap,
    user_id: Option<&str>,
    openai_user: Option<&str>,
) -> Option<String> {
    let raw = headers
        .get("x-claude-code-session-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| user_id.and_then(session_from_user_id))
        .or_else(|| {
            openai_user
                .filter(|s| !s.is_empty())
                .map(|u| format!("user:{u}"))
        })?;
    Some(format!("{tenant_id}\u{1f}{raw}"))
}

fn session_from_user_id(user_id: &str) -> Option<String> {
    if user_id.trim_start().starts_with('{') {
        #[derive(serde::Deserialize)]
        struct Ids {
            session_id: Option<String>,
        }
        return serde_json::from_str::<Ids>(user_id)
            .ok()?
            .session_id
            .filter(|s| !s.is_empty());
    }
    let (_, session) = user_id.rsplit_once("_session_")?;
    (!session.is_empty()).then(|| session.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_in_order() {
        let mut h = HeaderMap::new();
        let json_uid = r#"{"device_id":"d","account_uuid":"a","session_id":"s-json"}"#;
        assert_eq!(
            session_key("t", &h, Some(json_uid), Some("u")).unwrap(),
            "t\u{1f}s-json"
        );
        assert_eq!(
            session_key("t", &h, Some("user_ab_account_cd_session_s-old"), None).unwrap(),
            "t\u{1f}s-old"
        );
        assert_eq!(
            session_key("t", &h, None, Some("bob")).unwrap(),
            "t\u{1f}user:bob"
        );
        assert_eq!(session_key("t", &h, Some("opaque"), None), None);
        h.insert("x-claude-code-session-id", "hdr".parse().unwrap());
        assert_eq!(
            session_key("t", &h, Some(json_uid), None).unwrap(),
            "t\u{1f}hdr"
        );
    }
}
