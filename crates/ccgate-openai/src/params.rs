//! Scalar request parameters: `n`, `max_tokens`, sampling, `stop`, `user` (docs/protocols.md §4.1,
//! §4.4).

use crate::error::TranslateError;
use crate::input::{Request, J};
use crate::json::{field, opt_f64, opt_str, wrong_type};
use ccgate_meter::ModelCaps;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// `n > 1` has no Anthropic equivalent (one completion per request): 400 "n must be 1" (§4.1).
pub(crate) fn check_n(obj: &Request<'_>) -> Result<(), TranslateError> {
    match opt_f64(obj.n.as_ref(), "n")? {
        None | Some(1.0) => Ok(()),
        Some(_) => Err(TranslateError::invalid(
            "n",
            "n must be 1: CCGate returns one choice per request",
        )),
    }
}

/// `max_tokens` for Anthropic (required upstream, §2.2). `max_completion_tokens` wins over the
/// deprecated `max_tokens` (§3.1); floats are rounded; values above the model's output limit are
/// lowered to it rather than rejected (the client asked for "as much as possible"); absent → the
/// per-model default (§4.4), itself never above the limit.
pub(crate) fn max_tokens(obj: &Request<'_>, caps: &ModelCaps) -> Result<u32, TranslateError> {
    let limit = caps.max_output_tokens.max(1);
    let legacy = read_tokens(obj.max_tokens.as_ref(), "max_tokens")?;
    let current = read_tokens(obj.max_completion_tokens.as_ref(), "max_completion_tokens")?;
    Ok(match current.or(legacy) {
        None => caps.default_max_tokens.clamp(1, limit),
        Some(n) => u32::try_from(n).unwrap_or(u32::MAX).min(limit),
    })
}

fn read_tokens(v: Option<&J<'_>>, key: &str) -> Result<Option<u64>, TranslateError> {
    let Some(v) = field(v) else {
        return Ok(None);
    };
    let J::Num(n) = v else {
        return Err(wrong_type(key, "an integer", v));
    };
    let rounded = match n.as_u64() {
        Some(u) => u,
        None => {
            let f = n.as_f64().unwrap_or(0.0).round();
            if f < 1.0 {
                0
            } else if f >= u64::MAX as f64 {
                u64::MAX
            } else {
                f as u64
            }
        }
    };
    if rounded < 1 {
        return Err(TranslateError::invalid(
            key,
            format!("Invalid '{key}': expected a value >= 1, got {n}"),
        ));
    }
    Ok(Some(rounded))
}

/// The sampling parameters that survive §4.4, as `(name, value)` pairs to copy into the body.
///
/// `temperature` is clamped to [0, 1] (OpenAI allows up to 2; Anthropic's own OpenAI-compatible
/// endpoint clamps the same way), `top_p` to [0, 1]; `top_k` is a non-standard extension some
/// clients send. Then, in order: thinking on → drop all three; `fixed_sampling` → drop all three;
/// `exclusive_temperature_top_p` with both present → keep `temperature`, drop `top_p`. Nothing is
/// ever filled in.
pub(crate) fn sampling(
    obj: &Request<'_>,
    thinking_on: bool,
    caps: &ModelCaps,
) -> Result<Vec<(&'static str, Value)>, TranslateError> {
    let temperature = clamped(obj.temperature.as_ref(), "temperature")?;
    let top_p = clamped(obj.top_p.as_ref(), "top_p")?;
    let top_k = match field(obj.top_k.as_ref()) {
        None => None,
        Some(J::Num(n)) if n.as_u64().is_some() => Some(Value::Number(n.clone())),
        Some(other) => return Err(wrong_type("top_k", "a non-negative integer", other)),
    };
    if thinking_on || caps.fixed_sampling {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let both = temperature.is_some() && top_p.is_some();
    if let Some(t) = temperature {
        out.push(("temperature", t));
    }
    if let Some(p) = top_p.filter(|_| !(both && caps.exclusive_temperature_top_p)) {
        out.push(("top_p", p));
    }
    if let Some(k) = top_k {
        out.push(("top_k", k));
    }
    Ok(out)
}

/// A number clamped to [0, 1]; an in-range value keeps its original JSON spelling.
fn clamped(v: Option<&J<'_>>, key: &str) -> Result<Option<Value>, TranslateError> {
    Ok(opt_f64(v, key)?.map(|f| {
        if f > 1.0 {
            Value::from(1.0)
        } else if f < 0.0 {
            Value::from(0.0)
        } else {
            match v {
                Some(J::Num(n)) => Value::Number(n.clone()),
                _ => Value::from(f),
            }
        }
    }))
}

/// `stop` (string or list) → `stop_sequences`, whitespace-only entries dropped because Anthropic
/// rejects them (§2.2, §4.1). `None` when nothing is left.
pub(crate) fn stop_sequences(obj: &Request<'_>) -> Result<Option<Vec<String>>, TranslateError> {
    let list: Vec<String> = match field(obj.stop.as_ref()) {
        None => return Ok(None),
        Some(J::Str(s)) => vec![s.to_string()],
        Some(J::Arr(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                J::Str(s) => Ok(s.to_string()),
                other => Err(wrong_type(&format!("stop[{i}]"), "a string", other)),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(wrong_type("stop", "a string or an array of strings", other)),
    };
    let kept: Vec<String> = list.into_iter().filter(|s| !s.trim().is_empty()).collect();
    Ok((!kept.is_empty()).then_some(kept))
}

/// `metadata.user_id` = hex SHA-256 of `tenant_id:user` (§4.1): the raw `user` may be an email,
/// and Anthropic wants an opaque id; salting with the tenant keeps tenants' ids apart. Falls back
/// to `safety_identifier`, OpenAI's successor of `user`.
pub(crate) fn user_id(
    obj: &Request<'_>,
    tenant_id: &str,
) -> Result<Option<String>, TranslateError> {
    let user = match opt_str(obj.user.as_ref(), "user")? {
        Some(u) if !u.is_empty() => Some(u),
        _ => {
            opt_str(obj.safety_identifier.as_ref(), "safety_identifier")?.filter(|u| !u.is_empty())
        }
    };
    Ok(user.map(|u| hash_user(tenant_id, u)))
}

/// The hashing of [`user_id`], public within the crate for tests.
pub(crate) fn hash_user(tenant_id: &str, user: &str) -> String {
    let mut h = Sha256::new();
    h.update(tenant_id.as_bytes());
    h.update(b":");
    h.update(user.as_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn caps() -> ModelCaps {
        ModelCaps {
            max_output_tokens: 64000,
            default_max_tokens: 8192,
            adaptive_thinking: false,
            thinking: true,
            exclusive_temperature_top_p: false,
            fixed_sampling: false,
            prefill: true,
            structured_outputs: false,
            max_effort: "high",
        }
    }

    /// The request view of `v` (leaked: test only).
    fn obj(v: Value) -> Request<'static> {
        let text: &'static str = Box::leak(v.to_string().into_boxed_str());
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn n_rule() {
        assert!(check_n(&obj(json!({"n":1}))).is_ok());
        assert!(check_n(&obj(json!({"n":null}))).is_ok());
        assert_eq!(
            check_n(&obj(json!({"n":2}))).unwrap_err().message,
            "n must be 1: CCGate returns one choice per request"
        );
        assert!(check_n(&obj(json!({"n":"1"}))).is_err());
    }

    #[test]
    fn max_tokens_rules() {
        let c = caps();
        assert_eq!(max_tokens(&obj(json!({})), &c).unwrap(), 8192);
        assert_eq!(
            max_tokens(&obj(json!({"max_tokens":100})), &c).unwrap(),
            100
        );
        assert_eq!(
            max_tokens(
                &obj(json!({"max_tokens":100,"max_completion_tokens":200})),
                &c
            )
            .unwrap(),
            200
        );
        assert_eq!(
            max_tokens(&obj(json!({"max_tokens":99.6})), &c).unwrap(),
            100
        );
        assert_eq!(
            max_tokens(&obj(json!({"max_tokens":1e300})), &c).unwrap(),
            64000
        );
        assert_eq!(
            max_tokens(
                &obj(json!({"max_completion_tokens":null,"max_tokens":5})),
                &c
            )
            .unwrap(),
            5
        );
        assert!(max_tokens(&obj(json!({"max_tokens":0})), &c).is_err());
        assert!(max_tokens(&obj(json!({"max_tokens":-3})), &c).is_err());
        assert!(max_tokens(&obj(json!({"max_tokens":0.2})), &c).is_err());
        assert_eq!(
            max_tokens(&obj(json!({"max_tokens":"5"})), &c)
                .unwrap_err()
                .param
                .as_deref(),
            Some("max_tokens")
        );
        let mut small = caps();
        small.default_max_tokens = 100_000;
        assert_eq!(max_tokens(&obj(json!({})), &small).unwrap(), 64000);
    }

    #[test]
    fn sampling_rules() {
        let c = caps();
        let o = obj(json!({"temperature":1.7,"top_p":0.9,"top_k":40}));
        assert_eq!(
            sampling(&o, false, &c).unwrap(),
            vec![
                ("temperature", json!(1.0)),
                ("top_p", json!(0.9)),
                ("top_k", json!(40))
            ]
        );
        assert!(sampling(&o, true, &c).unwrap().is_empty());
        let mut fixed = caps();
        fixed.fixed_sampling = true;
        assert!(sampling(&o, false, &fixed).unwrap().is_empty());
        let mut excl = caps();
        excl.exclusive_temperature_top_p = true;
        assert_eq!(
            sampling(&o, false, &excl).unwrap(),
            vec![("temperature", json!(1.0)), ("top_k", json!(40))]
        );
        let only_p = obj(json!({"top_p":0.5}));
        assert_eq!(
            sampling(&only_p, false, &excl).unwrap(),
            vec![("top_p", json!(0.5))]
        );
        assert!(sampling(&obj(json!({})), false, &c).unwrap().is_empty());
        assert_eq!(
            sampling(&obj(json!({"temperature":0})), false, &c).unwrap(),
            vec![("temperature", json!(0))]
        );
        assert_eq!(
            sampling(&obj(json!({"temperature":-1})), false, &c).unwrap(),
            vec![("temperature", json!(0.0))]
        );
        assert!(sampling(&obj(json!({"temperature":"hot"})), false, &c).is_err());
    }

    #[test]
    fn stops() {
        assert_eq!(
            stop_sequences(&obj(json!({"stop":"END"}))).unwrap(),
            Some(vec!["END".to_owned()])
        );
        assert_eq!(
            stop_sequences(&obj(json!({"stop":["a"," ","\n","b"]}))).unwrap(),
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(stop_sequences(&obj(json!({"stop":["  "]}))).unwrap(), None);
        assert_eq!(stop_sequences(&obj(json!({"stop":null}))).unwrap(), None);
        assert!(stop_sequences(&obj(json!({"stop":[1]}))).is_err());
    }

    #[test]
    fn user_is_hashed() {
        let id = user_id(&obj(json!({"user":"bob@example.com"})), "t1")
            .unwrap()
            .unwrap();
        assert_eq!(id, hash_user("t1", "bob@example.com"));
        assert_eq!(id.len(), 64);
        assert!(!id.contains("bob"));
        assert_ne!(id, hash_user("t2", "bob@example.com"));
        assert_eq!(user_id(&obj(json!({"user":""})), "t").unwrap(), None);
        assert!(user_id(&obj(json!({"user":5})), "t").is_err());
        assert!(user_id(&obj(json!({"safety_identifier":"x"})), "t")
            .unwrap()
            .is_some());
    }
}
