//! The model catalog: one entry per current Claude model (docs/protocols.md §2.11, §9.3), with the capability flags that
//! drive request translation (§2.9, §4.3, §4.4).
//!
//! Capabilities live in data, not in string matching scattered through the translator (§2.9: "Drive these from
//! per-model capability flags"). Values marked *unverified* (release dates and limits of the newest listings) are
//! reasonable defaults to check against the official model pages before a release; limits are the published maxima
//! where known (Opus 4/4.1 32K output, Sonnet 4/4.5, Haiku 4.5 and Opus 4.5 64K, Opus 4.6+ 128K, Sonnet 4.6 64K).

/// Capability flags that drive request translation (docs/protocols.md §2.9, §4.3, §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelCaps {
    /// Largest `max_tokens` the model accepts.
    pub max_output_tokens: u32,
    /// `max_tokens` used when an OpenAI client sends none.
    pub default_max_tokens: u32,
    /// Thinking is `{"type":"adaptive"}` + `output_config.effort` (Opus 4.6+, Sonnet 4.6+, newer);
    /// otherwise `{"type":"enabled","budget_tokens":N}`.
    pub adaptive_thinking: bool,
    /// Model supports thinking at all.
    pub thinking: bool,
    /// Rejects `temperature` and `top_p` sent together (Opus 4.1+, Sonnet 4.5+).
    pub exclusive_temperature_top_p: bool,
    /// Rejects any non-default `temperature`/`top_p`/`top_k` (Opus 4.7+, 5.x family).
    pub fixed_sampling: bool,
    /// Accepts a trailing assistant message (prefill).
    pub prefill: bool,
    /// Supports native structured output (`output_config.format`).
    pub structured_outputs: bool,
    /// Highest `output_config.effort` supported: "high", "xhigh" or "max".
    pub max_effort: &'static str,
}

/// One catalog row, as served by `GET /v1/models` (after the tenant allow-list filter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelInfo {
    /// The id advertised by `/v1/models` (dated where Anthropic dates it).
    pub id: &'static str,
    pub display_name: &'static str,
    /// RFC 3339, e.g. `2026-02-17T00:00:00Z`.
    pub created_at: &'static str,
    pub max_input_tokens: u32,
    /// Same value as `caps.max_output_tokens` (the `/v1/models` field is `max_tokens`).
    pub max_output_tokens: u32,
    pub caps: ModelCaps,
    /// Undated aliases of this model (`claude-sonnet-4-5` for `claude-sonnet-4-5-20250929`). They resolve exactly and
    /// also serve as family prefixes for new dated variants in [`caps_for`].
    pub aliases: &'static [&'static str],
}

// Capability profiles by generation; each model row then sets its own output limits.

/// Claude 3 / 3.5: no extended thinking, free sampling, prefill allowed.
const GEN_3: ModelCaps = ModelCaps {
    max_output_tokens: 8192,
    default_max_tokens: 8192,
    adaptive_thinking: false,
    thinking: false,
    exclusive_temperature_top_p: false,
    fixed_sampling: false,
    prefill: true,
    structured_outputs: false,
    max_effort: "high",
};

/// Sonnet 3.7, Sonnet 4, Opus 4: budget thinking; `temperature` + `top_p` together still accepted.
const BUDGET: ModelCaps = ModelCaps {
    thinking: true,
    ..GEN_3
};

/// Opus 4.1, Sonnet 4.5, Haiku 4.5, Opus 4.5: budget thinking, `temperature` xor `top_p`, native structured output.
/// (Haiku 4.5 belongs to the same generation as Sonnet 4.5 and shares its sampling rule; dropping `top_p` when both
/// are sent is harmless even if a model would have accepted it.)
const BUDGET_EXCLUSIVE: ModelCaps = ModelCaps {
    exclusive_temperature_top_p: true,
    structured_outputs: true,
    ..BUDGET
};

/// Opus 4.6, Sonnet 4.6: adaptive thinking + effort up to `max`, no prefill.
const ADAPTIVE: ModelCaps = ModelCaps {
    adaptive_thinking: true,
    prefill: false,
    max_effort: "max",
    ..BUDGET_EXCLUSIVE
};

/// Opus 4.7+, the 5.x family: as [`ADAPTIVE`], and non-default sampling parameters are rejected.
const ADAPTIVE_FIXED: ModelCaps = ModelCaps {
    fixed_sampling: true,
    ..ADAPTIVE
};

/// Default `max_tokens` for Opus/Sonnet 4.6+ agent traffic (§4.4).
const DEFAULT_MAX_AGENT: u32 = 32_000;
/// Default `max_tokens` otherwise (§4.4).
const DEFAULT_MAX_GENERAL: u32 = 8192;

const fn min(a: u32, b: u32) -> u32 {
    if a < b {
        a
    } else {
        b
    }
}

/// A capability profile with this model's output limit and default (the default never exceeds the limit).
const fn limits(base: ModelCaps, max_output: u32, default_max: u32) -> ModelCaps {
    ModelCaps {
        max_output_tokens: max_output,
        default_max_tokens: min(default_max, max_output),
        ..base
    }
}

#[allow(clippy::too_many_arguments)]
const fn model(
    id: &'static str,
    aliases: &'static [&'static str],
    display_name: &'static str,
    created_at: &'static str,
    max_input_tokens: u32,
    base: ModelCaps,
    max_output: u32,
    default_max: u32,
) -> ModelInfo {
    ModelInfo {
        id,
        display_name,
        created_at,
        max_input_tokens,
        max_output_tokens: max_output,
        caps: limits(base, max_output, default_max),
        aliases,
    }
}

const K200: u32 = 200_000;
const M1: u32 = 1_000_000;

/// Current models, newest first (the order `/v1/models` uses).
#[rustfmt::skip]
static CATALOG: [ModelInfo; 16] = [
    // 5.x rows: prices and ids from docs/protocols.md §9.3 ("uncertain"); dates and limits unverified.
    model("claude-haiku-5-5", &[], "Claude Haiku 5.5", "2026-10-01T00:00:00Z", K200, ADAPTIVE_FIXED, 64_000, DEFAULT_MAX_GENERAL),
    model("claude-opus-5-5", &[], "Claude Opus 5.5", "2026-10-01T00:00:00Z", M1, ADAPTIVE_FIXED, 128_000, DEFAULT_MAX_AGENT),
    model("claude-sonnet-5-5", &[], "Claude Sonnet 5.5", "2026-10-01T00:00:00Z", M1, ADAPTIVE_FIXED, 64_000, DEFAULT_MAX_AGENT),
    model("claude-opus-5", &[], "Claude Opus 5", "2026-08-01T00:00:00Z", M1, ADAPTIVE_FIXED, 128_000, DEFAULT_MAX_AGENT),
    model("claude-sonnet-5", &[], "Claude Sonnet 5", "2026-08-01T00:00:00Z", M1, ADAPTIVE_FIXED, 64_000, DEFAULT_MAX_AGENT),
    // Opus 4.7 / 4.8: newer listings (verify); dates unverified.
    model("claude-opus-4-8", &[], "Claude Opus 4.8", "2026-06-01T00:00:00Z", M1, ADAPTIVE_FIXED, 128_000, DEFAULT_MAX_AGENT),
    model("claude-opus-4-7", &[], "Claude Opus 4.7", "2026-04-16T00:00:00Z", M1, ADAPTIVE_FIXED, 128_000, DEFAULT_MAX_AGENT),
    model("claude-sonnet-4-6", &[], "Claude Sonnet 4.6", "2026-02-17T00:00:00Z", M1, ADAPTIVE, 64_000, DEFAULT_MAX_AGENT),
    model("claude-opus-4-6", &[], "Claude Opus 4.6", "2026-02-05T00:00:00Z", M1, ADAPTIVE, 128_000, DEFAULT_MAX_AGENT),
    model("claude-opus-4-5-20251101", &["claude-opus-4-5"], "Claude Opus 4.5", "2025-11-24T00:00:00Z", K200, BUDGET_EXCLUSIVE, 64_000, DEFAULT_MAX_GENERAL),
    model("claude-haiku-4-5-20251001", &["claude-haiku-4-5"], "Claude Haiku 4.5", "2025-10-15T00:00:00Z", K200, BUDGET_EXCLUSIVE, 64_000, DEFAULT_MAX_GENERAL),
    // Sonnet 4 / 4.5: 200K by default; the 1M window is a beta (and priced by the long-context tier).
    model("claude-sonnet-4-5-20250929", &["claude-sonnet-4-5"], "Claude Sonnet 4.5", "2025-09-29T00:00:00Z", K200, BUDGET_EXCLUSIVE, 64_000, DEFAULT_MAX_GENERAL),
    model("claude-opus-4-1-20250805", &["claude-opus-4-1"], "Claude Opus 4.1", "2025-08-05T00:00:00Z", K200, BUDGET_EXCLUSIVE, 32_000, DEFAULT_MAX_GENERAL),
    model("claude-opus-4-20250514", &["claude-opus-4-0", "claude-opus-4"], "Claude Opus 4", "2025-05-22T00:00:00Z", K200, BUDGET, 32_000, DEFAULT_MAX_GENERAL),
    model("claude-sonnet-4-20250514", &["claude-sonnet-4-0", "claude-sonnet-4"], "Claude Sonnet 4", "2025-05-22T00:00:00Z", K200, BUDGET, 64_000, DEFAULT_MAX_GENERAL),
    model("claude-3-7-sonnet-20250219", &["claude-3-7-sonnet-latest", "claude-3-7-sonnet"], "Claude Sonnet 3.7", "2025-02-24T00:00:00Z", K200, BUDGET, 64_000, DEFAULT_MAX_GENERAL),
];

/// Retired models: not advertised by [`catalog`], but still given accurate capabilities by [`caps_for`] (a request
/// for one is forwarded and the upstream's 404 passed through; it must not be translated as a "current" model).
#[rustfmt::skip]
static RETIRED: [ModelInfo; 5] = [
    model("claude-3-5-haiku-20241022", &["claude-3-5-haiku-latest", "claude-3-5-haiku"], "Claude Haiku 3.5", "2024-10-22T00:00:00Z", K200, GEN_3, 8192, DEFAULT_MAX_GENERAL),
    model("claude-3-5-sonnet-20241022", &["claude-3-5-sonnet-latest", "claude-3-5-sonnet"], "Claude Sonnet 3.5 (New)", "2024-10-22T00:00:00Z", K200, GEN_3, 8192, DEFAULT_MAX_GENERAL),
    model("claude-3-5-sonnet-20240620", &[], "Claude Sonnet 3.5", "2024-06-20T00:00:00Z", K200, GEN_3, 8192, DEFAULT_MAX_GENERAL),
    model("claude-3-opus-20240229", &["claude-3-opus-latest", "claude-3-opus"], "Claude Opus 3", "2024-02-29T00:00:00Z", K200, GEN_3, 4096, DEFAULT_MAX_GENERAL),
    model("claude-3-haiku-20240307", &["claude-3-haiku"], "Claude Haiku 3", "2024-03-07T00:00:00Z", K200, GEN_3, 4096, DEFAULT_MAX_GENERAL),
];

/// Capabilities assumed for an id found nowhere in the catalog.
///
/// An unknown id is most likely a model *newer* than this table (old ones are listed), so it is treated as
/// "current": adaptive thinking, `temperature` xor `top_p`, fixed sampling (the newest models reject non-default
/// sampling, and a silently dropped `temperature` beats a 400 on every request from clients that always send one),
/// no prefill, structured output. The effort cap stays at `high`, which every effort-capable model accepts;
/// `default_max_tokens` 8192 and a 64K output cap are moderate values that neither truncate typical tool calls nor
/// exceed what any current model allows.
pub const DEFAULT_CAPS: ModelCaps = ModelCaps {
    max_effort: "high",
    ..limits(ADAPTIVE_FIXED, 64_000, DEFAULT_MAX_GENERAL)
};

/// The current models, newest first.
pub fn catalog() -> &'static [ModelInfo] {
    &CATALOG
}

/// Catalog lookup (current and retired models): exact id or alias (case-insensitive, a `[1m]` suffix ignored), then
/// family: `<id or alias>-YYYYMMDD…`, `<id or alias>@…` (Vertex style) or `<alias>-latest`. The family rule requires
/// a date after `-`, so a future `claude-sonnet-4-7` is not mistaken for `claude-sonnet-4`.
pub fn find_model(model: &str) -> Option<&'static ModelInfo> {
    let model = strip_suffix_ci(model, "[1m]").unwrap_or(model);
    let all = || CATALOG.iter().chain(RETIRED.iter());
    if let Some(m) = all().find(|m| names(m).any(|n| n.eq_ignore_ascii_case(model))) {
        return Some(m);
    }
    let mut best: Option<(&'static ModelInfo, usize)> = None;
    for m in all() {
        for name in names(m) {
            if is_family_variant(model, name) && best.is_none_or(|(_, len)| name.len() > len) {
                best = Some((m, name.len()));
            }
        }
    }
    best.map(|(m, _)| m)
}

/// Capabilities for `model` ([`find_model`]), or [`DEFAULT_CAPS`] for an unknown id.
pub fn caps_for(model: &str) -> ModelCaps {
    find_model(model).map_or(DEFAULT_CAPS, |m| m.caps)
}

fn names(m: &'static ModelInfo) -> impl Iterator<Item = &'static str> {
    std::iter::once(m.id).chain(m.aliases.iter().copied())
}

fn strip_suffix_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(suffix.len())?;
    (s.is_char_boundary(cut) && s[cut..].eq_ignore_ascii_case(suffix)).then(|| &s[..cut])
}

fn is_family_variant(model: &str, base: &str) -> bool {
    let Some(head) = model.get(..base.len()) else {
        return false;
    };
    if !head.eq_ignore_ascii_case(base) {
        return false;
    }
    let rest = &model.as_bytes()[base.len()..];
    match rest {
        [b'@', _, ..] => true,
        [b'-', tail @ ..] => {
            tail.eq_ignore_ascii_case(b"latest")
                || (tail.len() >= 8 && tail[..8].iter().all(u8::is_ascii_digit))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::PriceTable;

    #[test]
    fn catalog_is_consistent() {
        let mut ids = std::collections::HashSet::new();
        let mut prev = "9999";
        for m in catalog() {
            assert!(ids.insert(m.id), "duplicate {}", m.id);
            assert!(m.created_at <= prev, "{} not newest-first", m.id);
            prev = m.created_at;
            let d = m.created_at.as_bytes();
            assert!(
                d.len() == 20 && d[4] == b'-' && d[10] == b'T' && d[19] == b'Z',
                "{}",
                m.created_at
            );
            assert_eq!(m.max_output_tokens, m.caps.max_output_tokens, "{}", m.id);
            assert!(
                m.caps.default_max_tokens <= m.caps.max_output_tokens,
                "{}",
                m.id
            );
            assert!(["high", "xhigh", "max"].contains(&m.caps.max_effort));
            assert!(!m.caps.adaptive_thinking || m.caps.thinking);
        }
        for m in RETIRED.iter() {
            assert!(
                m.caps.default_max_tokens <= m.caps.max_output_tokens,
                "{}",
                m.id
            );
        }
    }

    #[test]
    fn every_model_is_priced_by_the_builtin_table() {
        let t = PriceTable::builtin();
        for m in catalog().iter().chain(RETIRED.iter()) {
            for name in names(m) {
                assert!(t.lookup(name).is_some(), "{name} has no price");
            }
        }
    }

    #[test]
    fn capabilities_follow_the_spec() {
        // Adaptive thinking on Opus 4.6+, Sonnet 4.6+, 5.x.
        for id in [
            "claude-opus-4-6",
            "claude-opus-4-7",
            "claude-opus-4-8",
            "claude-sonnet-4-6",
            "claude-sonnet-5",
            "claude-opus-5-5",
            "claude-haiku-5-5",
        ] {
            let c = caps_for(id);
            assert!(
                c.adaptive_thinking && !c.prefill && c.max_effort == "max",
                "{id}"
            );
        }
        for id in [
            "claude-opus-4-5",
            "claude-sonnet-4-5",
            "claude-haiku-4-5",
            "claude-sonnet-4-0",
            "claude-3-7-sonnet-20250219",
        ] {
            let c = caps_for(id);
            assert!(
                c.thinking && !c.adaptive_thinking && c.prefill && c.max_effort == "high",
                "{id}"
            );
        }
        // Exclusive temperature/top_p: Opus 4.1+, Sonnet 4.5+.
        assert!(caps_for("claude-opus-4-1-20250805").exclusive_temperature_top_p);
        assert!(caps_for("claude-sonnet-4-5-20250929").exclusive_temperature_top_p);
        assert!(!caps_for("claude-opus-4-20250514").exclusive_temperature_top_p);
        assert!(!caps_for("claude-sonnet-4-20250514").exclusive_temperature_top_p);
        // Fixed sampling: Opus 4.7+, 5.x.
        assert!(caps_for("claude-opus-4-7").fixed_sampling);
        assert!(caps_for("claude-sonnet-5-5").fixed_sampling);
        assert!(!caps_for("claude-opus-4-6").fixed_sampling);
        assert!(!caps_for("claude-sonnet-4-6").fixed_sampling);
        // Defaults and limits.
        assert_eq!(caps_for("claude-opus-4-6").default_max_tokens, 32_000);
        assert_eq!(caps_for("claude-sonnet-4-6").default_max_tokens, 32_000);
        assert_eq!(caps_for("claude-haiku-4-5").default_max_tokens, 8192);
        assert_eq!(caps_for("claude-opus-4-1").max_output_tokens, 32_000);
        assert_eq!(caps_for("claude-opus-4-6").max_output_tokens, 128_000);
        assert_eq!(caps_for("claude-sonnet-4-5").max_output_tokens, 64_000);
        let h3 = caps_for("claude-3-haiku-20240307");
        assert!(!h3.thinking && h3.max_output_tokens == 4096 && h3.default_max_tokens == 4096);
        assert!(!caps_for("claude-3-5-haiku-20241022").thinking);
    }

    #[test]
    fn lookup_by_alias_family_and_suffix() {
        assert_eq!(
            find_model("claude-sonnet-4-5").unwrap().id,
            "claude-sonnet-4-5-20250929"
        );
        assert_eq!(
            find_model("Claude-Sonnet-4-5-20250929").unwrap().id,
            "claude-sonnet-4-5-20250929"
        );
        assert_eq!(
            find_model("claude-sonnet-4-5-20261231").unwrap().id,
            "claude-sonnet-4-5-20250929"
        );
        assert_eq!(
            find_model("claude-sonnet-4-5@20250929").unwrap().id,
            "claude-sonnet-4-5-20250929"
        );
        assert_eq!(
            find_model("claude-sonnet-4-5[1m]").unwrap().id,
            "claude-sonnet-4-5-20250929"
        );
        assert_eq!(
            find_model("claude-opus-4-6-20260301").unwrap().id,
            "claude-opus-4-6"
        );
        assert_eq!(
            find_model("claude-3-5-sonnet-latest").unwrap().id,
            "claude-3-5-sonnet-20241022"
        );
        assert_eq!(
            find_model("claude-opus-4-20990101").unwrap().id,
            "claude-opus-4-20250514"
        );
        // A new minor version is not a dated variant of the major.
        assert!(find_model("claude-sonnet-4-7").is_none());
        assert!(find_model("claude-opus-4-9").is_none());
        assert!(find_model("claude-sonnet-5-1").is_none());
        assert!(find_model("").is_none());
        assert!(find_model("日本語[1m]").is_none());
    }

    #[test]
    fn unknown_models_get_current_defaults() {
        let c = caps_for("claude-sonnet-6");
        assert_eq!(c, DEFAULT_CAPS);
        assert!(c.adaptive_thinking && c.thinking && c.exclusive_temperature_top_p);
        assert_eq!((c.default_max_tokens, c.max_output_tokens), (8192, 64_000));
    }
}
