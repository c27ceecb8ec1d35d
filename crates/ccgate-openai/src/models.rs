//! Model names: alias resolution for requests (docs/protocols.md §4.1) and the OpenAI `/v1/models`
//! list (§3.4).

use crate::error::TranslateError;
use crate::input::{Typed, J};
use serde::Serialize;
use std::collections::BTreeMap;

/// Outcome of [`resolve_model`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The Claude model id sent upstream (and checked against the tenant allow-list).
    pub claude_model: String,
    /// What the client asked for; echoed as `model` in every response (§4.1, §5.1).
    pub client_model: String,
}

/// Resolves the model an OpenAI client asked for (§4.1).
///
/// Order: an exact alias wins (operators may alias even a Claude-looking name); a name that already
/// looks like a Claude id (`claude-…` or `anthropic…`) passes unchanged; anything else (`gpt-4o`,
/// `""`, …) maps to `default_model`, because OpenAI tools often hard-code OpenAI model names.
pub fn resolve_model(
    requested: &str,
    aliases: &BTreeMap<String, String>,
    default_model: &str,
) -> Resolved {
    let claude_model = if let Some(target) = aliases.get(requested) {
        target.clone()
    } else if requested.starts_with("claude-") || requested.starts_with("anthropic") {
        requested.to_owned()
    } else {
        default_model.to_owned()
    };
    Resolved {
        claude_model,
        client_model: requested.to_owned(),
    }
}

/// Reads the `model` field of an OpenAI request body, so the gateway can resolve the model and its
/// capabilities before calling [`crate::translate_request`]. Errors are the same 400s that
/// `translate_request` would produce.
pub fn requested_model(body: &[u8]) -> Result<String, TranslateError> {
    crate::request::parse_request(body).map(|p| p.model().to_owned())
}

/// `model` must be a non-empty string (OpenAI: "you must provide a model parameter").
pub(crate) fn model_field<'x>(model: Option<&'x J<'_>>) -> Result<&'x str, TranslateError> {
    match model {
        Some(J::Str(s)) if !s.is_empty() => Ok(s),
        Some(J::Str(_)) | None | Some(J::Null) => Err(TranslateError::invalid(
            "model",
            "You must provide a model parameter",
        )),
        Some(other) => Err(TranslateError::invalid(
            "model",
            format!(
                "Invalid type for 'model': expected a string, got {}",
                other.type_name()
            ),
        )),
    }
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<ModelObject<'a>>,
}

#[derive(Serialize)]
struct ModelObject<'a> {
    id: String,
    object: &'static str,
    created: i64,
    owned_by: &'a str,
}

/// `created` of every listed model: the catalog has no OpenAI-style creation timestamps, and 0 says
/// "unknown" honestly instead of inventing one.
const MODEL_CREATED: i64 = 0;

/// The OpenAI `GET /v1/models` body: `{"object":"list","data":[{"id","object":"model","created",
/// "owned_by"}]}` (§3.4). The caller passes the tenant's allowed model ids (already filtered).
pub fn models_list<'a>(ids: impl IntoIterator<Item = (String, &'a str)>) -> Vec<u8> {
    let list = ModelList {
        object: "list",
        data: ids
            .into_iter()
            .map(|(id, owned_by)| ModelObject {
                id,
                object: "model",
                created: MODEL_CREATED,
                owned_by,
            })
            .collect(),
    };
    serde_json::to_vec(&list).unwrap_or_default()
}

/// One model object, for `GET /v1/models/{id}`.
pub fn model_object(id: &str, owned_by: &str) -> Vec<u8> {
    let obj = ModelObject {
        id: id.to_owned(),
        object: "model",
        created: MODEL_CREATED,
        owned_by,
    };
    serde_json::to_vec(&obj).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn resolution_order() {
        let mut aliases = BTreeMap::new();
        aliases.insert("gpt-4o".to_owned(), "claude-sonnet-4-6".to_owned());
        aliases.insert(
            "claude-fast".to_owned(),
            "claude-haiku-4-5-20251001".to_owned(),
        );
        let r = resolve_model("gpt-4o", &aliases, "claude-default");
        assert_eq!(r.claude_model, "claude-sonnet-4-6");
        assert_eq!(r.client_model, "gpt-4o");
        assert_eq!(
            resolve_model("claude-fast", &aliases, "d").claude_model,
            "claude-haiku-4-5-20251001"
        );
        assert_eq!(
            resolve_model("claude-opus-4-6", &aliases, "d").claude_model,
            "claude-opus-4-6"
        );
        assert_eq!(
            resolve_model("anthropic/claude-x", &aliases, "d").claude_model,
            "anthropic/claude-x"
        );
        let r = resolve_model("gpt-3.5-turbo", &aliases, "claude-default");
        assert_eq!(r.claude_model, "claude-default");
        assert_eq!(r.client_model, "gpt-3.5-turbo");
    }

    #[test]
    fn requested_model_validation() {
        assert_eq!(requested_model(br#"{"model":"m"}"#).unwrap(), "m");
        assert_eq!(
            requested_model(br#"{"model":3}"#)
                .unwrap_err()
                .param
                .as_deref(),
            Some("model")
        );
        assert!(requested_model(b"{").is_err());
        assert!(requested_model(b"[]").is_err());
        assert!(requested_model(br#"{}"#).is_err());
    }

    #[test]
    fn list_shape() {
        let body = models_list(vec![
            ("claude-sonnet-4-6".to_owned(), "anthropic"),
            ("my-alias".to_owned(), "ccgate"),
        ]);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({"object":"list","data":[
                {"id":"claude-sonnet-4-6","object":"model","created":0,"owned_by":"anthropic"},
                {"id":"my-alias","object":"model","created":0,"owned_by":"ccgate"}]})
        );
        let one: Value = serde_json::from_slice(&model_object("a", "b")).unwrap();
        assert_eq!(one["object"], "model");
    }
}
