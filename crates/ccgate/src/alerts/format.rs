//! The JSON each webhook service takes, and how each says it refused a message. The shapes are the services'
//! documented incoming-webhook payloads (see `docs/alerts.md`).

use super::event::Alert;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertFormat {
    /// CCGate's own JSON ([`Alert`] as it is), for scripts and other tools.
    Generic,
    Slack,
    Discord,
    Telegram,
    Feishu,
    Dingtalk,
    Wecom,
}

impl AlertFormat {
    pub const NAMES: &'static [&'static str] = &[
        "generic", "slack", "discord", "telegram", "feishu", "dingtalk", "wecom",
    ];

    pub fn parse(s: &str) -> Option<AlertFormat> {
        Some(match s {
            "generic" => AlertFormat::Generic,
            "slack" => AlertFormat::Slack,
            "discord" => AlertFormat::Discord,
            "telegram" => AlertFormat::Telegram,
            "feishu" | "lark" => AlertFormat::Feishu,
            "dingtalk" => AlertFormat::Dingtalk,
            "wecom" => AlertFormat::Wecom,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AlertFormat::Generic => "generic",
            AlertFormat::Slack => "slack",
            AlertFormat::Discord => "discord",
            AlertFormat::Telegram => "telegram",
            AlertFormat::Feishu => "feishu",
            AlertFormat::Dingtalk => "dingtalk",
            AlertFormat::Wecom => "wecom",
        }
    }
}

/// Cuts `text` to at most `max` characters (the services refuse longer messages instead of cutting them).
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// Cuts `text` to at most `max` bytes on a character boundary (WeCom counts bytes).
fn cut_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The request body for one hook. `chat_id` is Telegram's (validated present for that format at config load).
pub fn body(format: AlertFormat, alert: &Alert, chat_id: Option<&str>) -> Value {
    let text = alert.plain_text();
    match format {
        AlertFormat::Generic => json!({
            "source": "ccgate",
            "id": alert.id,
            "event": alert.event,
            "severity": alert.severity,
            "at": alert.at,
            "title": alert.title,
            "text": alert.text,
            "details": alert.details,
        }),
        // Incoming webhooks: `text` (mrkdwn; ours has no markup).
        AlertFormat::Slack => json!({ "text": text }),
        // Execute Webhook: `content`, at most 2000 characters.
        AlertFormat::Discord => json!({ "content": cut(&text, 2000) }),
        // Bot API sendMessage: `chat_id` and `text` (at most 4096 characters).
        AlertFormat::Telegram => {
            json!({ "chat_id": chat_id.unwrap_or_default(), "text": cut(&text, 4096) })
        }
        // Custom bot: a text message.
        AlertFormat::Feishu => json!({ "msg_type": "text", "content": { "text": text } }),
        // Custom robot: a text message.
        AlertFormat::Dingtalk => json!({ "msgtype": "text", "text": { "content": text } }),
        // Group robot: a text message, at most 2048 bytes.
        AlertFormat::Wecom => {
            json!({ "msgtype": "text", "text": { "content": cut_bytes(&text, 2048) } })
        }
    }
}

/// Whether the service took the message. Feishu, DingTalk and WeCom answer HTTP 200 also when they refuse one
/// (a bad keyword, a rate limit): their JSON's error code says so. Telegram says `"ok": false`.
pub fn check_answer(format: AlertFormat, status: u16, body: &[u8]) -> Result<(), String> {
    let snippet = || {
        let s = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        if s.is_empty() {
            String::new()
        } else {
            format!(": {s}")
        }
    };
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}{}", snippet()));
    }
    let json = || serde_json::from_slice::<Value>(body).ok();
    let code_ok =
        |v: &Value, field: &str| v.get(field).and_then(Value::as_i64).is_none_or(|c| c == 0);
    let refused = match format {
        AlertFormat::Feishu => {
            json().is_some_and(|v| !code_ok(&v, "code") || !code_ok(&v, "StatusCode"))
        }
        AlertFormat::Dingtalk | AlertFormat::Wecom => {
            json().is_some_and(|v| !code_ok(&v, "errcode"))
        }
        AlertFormat::Telegram => json().is_some_and(|v| v.get("ok") == Some(&Value::Bool(false))),
        AlertFormat::Generic | AlertFormat::Slack | AlertFormat::Discord => false,
    };
    if refused {
        return Err(format!("HTTP {status} but refused{}", snippet()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::event::EventKind;

    fn alert() -> Alert {
        Alert::new(
            EventKind::BudgetWarning,
            "Tenant a at 80%".into(),
            "daily: $8 of $10".into(),
        )
        .detail("tenant", "a")
    }

    #[test]
    fn every_format_has_its_services_shape() {
        let a = alert();
        let g = body(AlertFormat::Generic, &a, None);
        assert_eq!(g["event"], "budget_warning");
        assert_eq!(g["severity"], "warning");
        assert_eq!(g["details"]["tenant"], "a");
        assert!(body(AlertFormat::Slack, &a, None)["text"]
            .as_str()
            .unwrap()
            .contains("Tenant a at 80%"));
        assert!(body(AlertFormat::Discord, &a, None)["content"]
            .as_str()
            .unwrap()
            .starts_with("[CCGate]"));
        let t = body(AlertFormat::Telegram, &a, Some("-100123"));
        assert_eq!(t["chat_id"], "-100123");
        assert!(t["text"].is_string());
        let f = body(AlertFormat::Feishu, &a, None);
        assert_eq!(f["msg_type"], "text");
        assert!(f["content"]["text"].is_string());
        for fmt in [AlertFormat::Dingtalk, AlertFormat::Wecom] {
            let d = body(fmt, &a, None);
            assert_eq!(d["msgtype"], "text");
            assert!(d["text"]["content"]
                .as_str()
                .unwrap()
                .contains("daily: $8 of $10"));
        }
    }

    #[test]
    fn long_messages_are_cut_to_each_services_limit() {
        let mut a = alert();
        a.text = "é".repeat(5000);
        let d = body(AlertFormat::Discord, &a, None);
        assert_eq!(d["content"].as_str().unwrap().chars().count(), 2000);
        let w = body(AlertFormat::Wecom, &a, None);
        assert!(w["text"]["content"].as_str().unwrap().len() <= 2048);
        let t = body(AlertFormat::Telegram, &a, Some("1"));
        assert_eq!(t["text"].as_str().unwrap().chars().count(), 4096);
    }

    #[test]
    fn refusals_inside_a_200_are_failures() {
        assert!(check_answer(AlertFormat::Slack, 200, b"ok").is_ok());
        assert!(check_answer(AlertFormat::Discord, 204, b"").is_ok());
        assert!(check_answer(AlertFormat::Generic, 500, b"boom")
            .unwrap_err()
            .contains("HTTP 500"));
        assert!(check_answer(AlertFormat::Feishu, 200, br#"{"code":0,"msg":"success"}"#).is_ok());
        assert!(check_answer(
            AlertFormat::Feishu,
            200,
            br#"{"code":19024,"msg":"Key Words Not Found"}"#
        )
        .is_err());
        assert!(check_answer(
            AlertFormat::Dingtalk,
            200,
            br#"{"errcode":310000,"errmsg":"keywords not in content"}"#
        )
        .is_err());
        assert!(check_answer(AlertFormat::Wecom, 200, br#"{"errcode":0,"errmsg":"ok"}"#).is_ok());
        assert!(check_answer(AlertFormat::Telegram, 200, br#"{"ok":false}"#).is_err());
        assert!(check_answer(AlertFormat::Telegram, 200, br#"{"ok":true,"result":{}}"#).is_ok());
    }
}
