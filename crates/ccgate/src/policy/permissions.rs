//! Model allow-lists: `*` wildcards anywhere, case-insensitive (the original's `allowedModels`).

use ccgate_meter::wildcard;

pub fn model_allowed(patterns: &[String], model: &str) -> bool {
    patterns.iter().any(|p| wildcard::matches(p, model))
}

/// Whether a ledger row's `model` (what the tenant asked for) counts for a `limits.models` pattern: it matches, or
/// on `/openai` the model its `openai.models` alias resolves to does.
pub fn row_matches(
    pattern: &str,
    model: &str,
    aliases: &std::collections::BTreeMap<String, String>,
) -> bool {
    wildcard::matches(pattern, model)
        || aliases
            .get(model)
            .is_some_and(|m| wildcard::matches(pattern, m))
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

    #[test]
    fn rows_count_for_a_pattern_by_their_model_or_alias_target() {
        let aliases =
            std::collections::BTreeMap::from([("gpt-4o".to_owned(), "claude-opus-4-6".to_owned())]);
        assert!(row_matches("*opus*", "claude-opus-4-6", &aliases));
        assert!(row_matches("*opus*", "gpt-4o", &aliases));
        assert!(!row_matches("*opus*", "claude-sonnet-4-6", &aliases));
    }
}
