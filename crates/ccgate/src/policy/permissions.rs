//! Model allow-lists: `*` wildcards anywhere, case-insensitive (the original's `allowedModels`).

use ccgate_meter::wildcard;

pub fn model_allowed(patterns: &[String], model: &str) -> bool {
    patterns.iter().any(|p| wildcard::matches(p, model))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        let p = vec!["*sonnet*".to_string(), "claude-HAIKU-4-5".to_string()];
        assert!(model_allowed(&p, "claude-sonnet-4-6"));
        assert!(model_allowed(&p, "claude-haiku-4-5"));
        assert!(!model_allowed(&p, "claude-opus-4-6"));
        assert!(!model_allowed(&[], "claude-opus-4-6"));
        assert!(model_allowed(&["*".to_string()], "anything"));
    }
}
