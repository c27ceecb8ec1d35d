//! The price table and exact cost arithmetic (docs/protocols.md §9.2–§9.5).
//!
//! # Units
//!
//! * Rates are `u64` **pico-USD per token**, which is numerically the same as micro-USD per million tokens:
//!   $3/MTok = `3_000_000`, $0.125/MTok = `125_000`. Every published Claude price is an exact integer in this unit.
//! * Costs are computed in `u128` as `tokens × rate × multiplier_ppm` (units of 10⁻¹⁸ USD, exact, no floats) and
//!   rounded once, half up, to [`NanoUsd`] (`i64`, 10⁻⁹ USD). Summing nano-USD across requests never drifts; floats
//!   appear only in [`NanoUsd::to_usd_f64`], for display.
//!
//! # Lookup
//!
//! Exact id first (case-insensitive), then the most specific matching wildcard key ([`crate::wildcard`]; most literal
//! characters wins, an override beats a built-in key of equal specificity, then the key's alphabetical order). There
//! is no substring guessing: an id that matches nothing is unpriced (`None`) and must be recorded as such, never as
//! $0 (§9.5). Built-in family wildcards cover new dated variants (`claude-sonnet-4-5*` → `claude-sonnet-4-5-2026…`),
//! while major-only ids use a date-shaped wildcard (`claude-sonnet-4-20*`) so a future `claude-sonnet-4-7` is *not*
//! silently priced as Sonnet 4.
//!
//! # Overrides
//!
//! [`PriceTable::with_overrides_json`] layers `config/pricing.json` on top of the built-in table. The operator's
//! file wins, as the original's price file did: lookup tries the override exact ids, then the override wildcards
//! (most specific first), and only then the built-in table (exact ids, then its wildcards). So an override
//! `*haiku*` reprices every Haiku model; loading warns about each override that differs from a list price.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::usage::Usage;
use crate::wildcard;

/// Version label of the embedded table; recorded on every usage row together with any override hash.
pub const BUILTIN_VERSION: &str = "builtin-2026-11";

/// Price of one web search: $10 per 1,000 searches (§9.4), in nano-USD.
pub const WEB_SEARCH_NANO_USD: i64 = 10_000_000;

/// Largest accepted override rate: $1,000 per token. Guards the `u128` arithmetic and catches unit mistakes.
const MAX_RATE_PICO: f64 = 1e15;

/// An amount of money in nano-USD (10⁻⁹ USD). Arithmetic saturates instead of overflowing.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct NanoUsd(pub i64);

impl NanoUsd {
    pub const ZERO: NanoUsd = NanoUsd(0);

    /// For display and metrics only; never accumulate the result.
    pub fn to_usd_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// Decimal USD string rounded half up (away from zero) to at most 6 decimals, trailing zeros trimmed:
    /// `37_200_000` → `"0.0372"`, `1_500_000_000` → `"1.5"`, `0` → `"0"`, `400` → `"0"`, `-2_500` → `"-0.000003"`.
    pub fn to_usd_string(self) -> String {
        let neg = self.0 < 0;
        let micro = (self.0.unsigned_abs() + 500) / 1000;
        let (whole, frac) = (micro / 1_000_000, micro % 1_000_000);
        let sign = if neg && micro != 0 { "-" } else { "" };
        if frac == 0 {
            return format!("{sign}{whole}");
        }
        let frac = format!("{frac:06}");
        format!("{sign}{whole}.{}", frac.trim_end_matches('0'))
    }

    pub fn saturating_add(self, other: NanoUsd) -> NanoUsd {
        NanoUsd(self.0.saturating_add(other.0))
    }
}

impl fmt::Display for NanoUsd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_usd_string())
    }
}

impl std::ops::Add for NanoUsd {
    type Output = NanoUsd;
    fn add(self, rhs: NanoUsd) -> NanoUsd {
        self.saturating_add(rhs)
    }
}

impl std::ops::AddAssign for NanoUsd {
    fn add_assign(&mut self, rhs: NanoUsd) {
        *self = self.saturating_add(rhs);
    }
}

impl std::ops::Sub for NanoUsd {
    type Output = NanoUsd;
    fn sub(self, rhs: NanoUsd) -> NanoUsd {
        NanoUsd(self.0.saturating_sub(rhs.0))
    }
}

impl std::iter::Sum for NanoUsd {
    fn sum<I: Iterator<Item = NanoUsd>>(iter: I) -> NanoUsd {
        iter.fold(NanoUsd::ZERO, NanoUsd::saturating_add)
    }
}

/// Per-token rates in pico-USD (= micro-USD per MTok). All five are stored explicitly: cache rates are never
/// derived from the input rate in the built-in table, because the classic 1.25× / 2× / 0.1× ratios are not
/// universal (Claude 3 Haiku writes at 1.2×, several newer models read at 0.05×; §9.4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rates {
    pub input: u64,
    pub output: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub cache_read: u64,
}

impl Rates {
    /// Arguments in the column order of docs/protocols.md §9.3: input, write 5m, write 1h, read, output.
    pub const fn per_mtok_micro(
        input: u64,
        cache_write_5m: u64,
        cache_write_1h: u64,
        cache_read: u64,
        output: u64,
    ) -> Rates {
        Rates {
            input,
            output,
            cache_write_5m,
            cache_write_1h,
            cache_read,
        }
    }
}

/// A premium tier applied to the whole request (every token class) when the total input exceeds the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LongContext {
    /// The tier applies when `input + cache writes + cache reads > threshold_tokens`.
    pub threshold_tokens: u64,
    pub rates: Rates,
}

/// One model's prices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PriceEntry {
    pub rates: Rates,
    pub long_context: Option<LongContext>,
    /// Multiplier for `speed: "fast"`, in thousandths (2× = `2000`). `None`: fast mode is not priced for this model;
    /// such requests are billed at the standard rate and flagged ([`CostBreakdown::fast_multiplier_missing`]).
    pub fast_multiplier_milli: Option<u32>,
}

/// How [`PriceTable::lookup`] found an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind<'a> {
    Exact,
    /// Matched through this wildcard key (log it: it documents why a model got its price).
    Wildcard(&'a str),
}

/// Request-level pricing switches that are not part of [`Usage`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CostOptions {
    /// Message Batches API: 50% off every token class (§9.4).
    pub batch: bool,
}

/// Itemised cost of one request. Each component is rounded half up on its own; `total` is rounded once from the
/// exact sum (so it may differ from the sum of the rounded components by a few nano-USD), plus `web_search`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CostBreakdown {
    pub input: NanoUsd,
    pub cache_write_5m: NanoUsd,
    pub cache_write_1h: NanoUsd,
    pub cache_read: NanoUsd,
    pub output: NanoUsd,
    /// `web_search_requests × $0.01`, added after the multipliers (§9.2).
    pub web_search: NanoUsd,
    pub total: NanoUsd,
    /// The long-context tier priced every token class of this request.
    pub long_context_applied: bool,
    /// The rates used (the long-context tier's when it applied), before multipliers.
    pub rates: Rates,
    /// Combined token multiplier in parts per million (1.1× geo = `1_100_000`).
    pub multiplier_ppm: u64,
    pub geo_us_applied: bool,
    pub batch_applied: bool,
    pub fast_applied: bool,
    /// `speed == "fast"` but the entry has no fast multiplier: billed at the standard rate; alert on it.
    pub fast_multiplier_missing: bool,
    /// Cache writes actually priced (after the §9.2 remainder rule).
    pub cache_write_5m_tokens: u64,
    pub cache_write_1h_tokens: u64,
}

impl PriceEntry {
    /// Applies docs/protocols.md §9.2 to `usage`. Pure integer arithmetic.
    pub fn cost(&self, usage: &Usage, opts: CostOptions) -> CostBreakdown {
        // Re-apply the remainder rule defensively, so a hand-built Usage whose split was never derived still bills
        // every write (at 5m) instead of dropping it.
        let w1h = usage.cache_write_1h_tokens;
        let w5m = usage
            .cache_write_5m_tokens
            .max(usage.cache_creation_input_tokens.saturating_sub(w1h));
        let total_input = usage
            .input_tokens
            .saturating_add(w5m)
            .saturating_add(w1h)
            .saturating_add(usage.cache_read_input_tokens);
        let (rates, long_context_applied) = match self.long_context {
            Some(lc) if total_input > lc.threshold_tokens => (lc.rates, true),
            _ => (self.rates, false),
        };

        let mut ppm: u64 = 1_000_000;
        let geo_us_applied = usage
            .inference_geo
            .as_deref()
            .is_some_and(|g| g.eq_ignore_ascii_case("us"));
        if geo_us_applied {
            ppm = ppm * 11 / 10;
        }
        if opts.batch {
            ppm /= 2;
        }
        let fast = usage
            .speed
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("fast"));
        let (fast_applied, fast_multiplier_missing) = match (fast, self.fast_multiplier_milli) {
            (true, Some(m)) => {
                ppm = ppm.saturating_mul(u64::from(m)) / 1000;
                (true, false)
            }
            (true, None) => (false, true),
            (false, _) => (false, false),
        };

        // tokens × pico-USD/token × ppm = 10⁻¹⁸ USD; / 10⁹ = nano-USD.
        let scaled = |tokens: u64, rate: u64| -> u128 {
            u128::from(tokens)
                .saturating_mul(u128::from(rate))
                .saturating_mul(u128::from(ppm))
        };
        let parts = [
            scaled(usage.input_tokens, rates.input),
            scaled(w5m, rates.cache_write_5m),
            scaled(w1h, rates.cache_write_1h),
            scaled(usage.cache_read_input_tokens, rates.cache_read),
            scaled(usage.output_tokens, rates.output),
        ];
        let exact_sum = parts.iter().fold(0u128, |a, &p| a.saturating_add(p));
        let web_search = NanoUsd(
            i64::try_from(usage.web_search_requests)
                .unwrap_or(i64::MAX)
                .saturating_mul(WEB_SEARCH_NANO_USD),
        );
        CostBreakdown {
            input: to_nano(parts[0]),
            cache_write_5m: to_nano(parts[1]),
            cache_write_1h: to_nano(parts[2]),
            cache_read: to_nano(parts[3]),
            output: to_nano(parts[4]),
            web_search,
            total: to_nano(exact_sum) + web_search,
            long_context_applied,
            rates,
            multiplier_ppm: ppm,
            geo_us_applied,
            batch_applied: opts.batch,
            fast_applied,
            fast_multiplier_missing,
            cache_write_5m_tokens: w5m,
            cache_write_1h_tokens: w1h,
        }
    }
}

/// 10⁻¹⁸ USD → nano-USD, rounded half up, saturating at `i64::MAX`.
fn to_nano(atto: u128) -> NanoUsd {
    const UNIT: u128 = 1_000_000_000;
    let n = atto.saturating_add(UNIT / 2) / UNIT;
    NanoUsd(i64::try_from(n).unwrap_or(i64::MAX))
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct WildEntry {
    pattern: String,
    specificity: usize,
    from_override: bool,
    entry: PriceEntry,
}

/// A versioned price table: exact ids plus wildcard keys. Cheap to clone; build a new one and swap it to reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceTable {
    version: String,
    /// Keys are ASCII-lowercased.
    exact: HashMap<String, PriceEntry>,
    /// Exact ids from `config/pricing.json`, checked before everything else.
    overridden: HashMap<String, PriceEntry>,
    /// Kept sorted so the first match is the winner (see the module docs).
    wildcards: Vec<WildEntry>,
}

/// An error in `config/pricing.json`, naming the offending key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricingError {
    /// e.g. `perMillion."claude-x".cacheRead`; empty for whole-file errors.
    pub path: String,
    pub message: String,
}

impl fmt::Display for PricingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "pricing.json: {}", self.message)
        } else {
            write!(f, "pricing.json: {}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for PricingError {}

fn err(path: impl Into<String>, message: impl Into<String>) -> PricingError {
    PricingError {
        path: path.into(),
        message: message.into(),
    }
}

/// ASCII-lowercases only when needed, so the common (already lowercase) lookup does not allocate.
fn lower(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(s.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

impl PriceTable {
    /// An empty table (everything unpriced) with the given version label.
    pub fn empty(version: impl Into<String>) -> PriceTable {
        PriceTable {
            version: version.into(),
            exact: HashMap::new(),
            overridden: HashMap::new(),
            wildcards: Vec::new(),
        }
    }

    /// The reviewed built-in table of docs/protocols.md §9.3 (version [`BUILTIN_VERSION`]).
    pub fn builtin() -> PriceTable {
        let mut t = PriceTable::empty(BUILTIN_VERSION);
        for (keys, entry) in builtin_rows() {
            for key in keys {
                t.insert(key, entry, false);
            }
        }
        t
    }

    /// Version label to store on every usage row.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Overrides first (exact id, then the most specific wildcard), then the built-in table in the same order
    /// (ids case-insensitive); `None` = unpriced.
    pub fn lookup(&self, model: &str) -> Option<(&PriceEntry, MatchKind<'_>)> {
        let key = lower(model);
        let wildcard = |from_override: bool| {
            self.wildcards
                .iter()
                .filter(|w| w.from_override == from_override)
                .find(|w| wildcard::matches(&w.pattern, model))
                .map(|w| (&w.entry, MatchKind::Wildcard(w.pattern.as_str())))
        };
        self.overridden
            .get(key.as_ref())
            .map(|e| (e, MatchKind::Exact))
            .or_else(|| wildcard(true))
            .or_else(|| self.exact.get(key.as_ref()).map(|e| (e, MatchKind::Exact)))
            .or_else(|| wildcard(false))
    }

    /// Cost of `usage` for `model` with default options; `None` when the model is unpriced.
    pub fn cost(&self, model: &str, usage: &Usage) -> Option<CostBreakdown> {
        self.cost_with(model, usage, CostOptions::default())
    }

    pub fn cost_with(
        &self,
        model: &str,
        usage: &Usage,
        opts: CostOptions,
    ) -> Option<CostBreakdown> {
        self.lookup(model).map(|(e, _)| e.cost(usage, opts))
    }

    /// All keys (exact ids, then wildcards in lookup order) with their entries, e.g. for an admin page.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &PriceEntry)> {
        let mut exact: Vec<_> = self
            .overridden
            .iter()
            .chain(
                self.exact
                    .iter()
                    .filter(|(k, _)| !self.overridden.contains_key(*k)),
            )
            .map(|(k, e)| (k.as_str(), e))
            .collect();
        exact.sort_by(|a, b| a.0.cmp(b.0));
        exact.into_iter().chain(
            self.wildcards
                .iter()
                .map(|w| (w.pattern.as_str(), &w.entry)),
        )
    }

    /// Inserts or replaces one key (exact id or wildcard).
    pub fn insert(&mut self, key: &str, entry: PriceEntry, from_override: bool) {
        let key = key.to_ascii_lowercase();
        if wildcard::is_wildcard(&key) {
            self.wildcards.retain(|w| w.pattern != key);
            self.wildcards.push(WildEntry {
                specificity: wildcard::specificity(&key),
                pattern: key,
                from_override,
                entry,
            });
            self.wildcards.sort_by(|a, b| {
                b.from_override
                    .cmp(&a.from_override)
                    .then(b.specificity.cmp(&a.specificity))
                    .then(a.pattern.cmp(&b.pattern))
            });
        } else if from_override {
            self.overridden.insert(key, entry);
        } else {
            self.exact.insert(key, entry);
        }
    }

    /// A new table: this one with the overrides of `config/pricing.json` applied. `text` is plain JSON (the caller
    /// strips comments). Two sections, which may coexist:
    ///
    /// * `"modelPricing"` — the original CCGate format, **USD per 1K tokens**:
    ///   `{"<model or wildcard>": {"input": 0.003, "output": 0.015, "cacheCreation": 0.00375, "cacheRead": 0.0003}}`.
    ///   `input` and `output` are required. `cacheCreation` is the 5-minute write rate; `cacheCreation1h` the
    ///   1-hour one. Derived defaults, **for this legacy format only** (the built-in table and `perMillion` store
    ///   every rate): missing `cacheCreation` → 1.25 × input, missing `cacheCreation1h` → 2 × input (Anthropic's
    ///   published 1h rule), missing `cacheRead` → 0.1 × input. Other keys in a legacy entry are ignored.
    /// * `"perMillion"` — **USD per million tokens**, all five rates required, optional `longContext` (with
    ///   `threshold` and all five rates) and `fastMultiplier`: `{"<key>": {"input": 3, "output": 15,
    ///   "cacheWrite5m": 3.75, "cacheWrite1h": 6, "cacheRead": 0.3, "longContext": {...}, "fastMultiplier": 2.0}}`.
    ///   Unknown keys are errors (typos must not silently fall back to something else).
    ///
    /// Optional `"version"` string. The resulting version is `<base>+override-<fnv1a32 of text>` or, with a
    /// version, `<base>+<version>+override-<hash>`: the hash guarantees that two different files never share a
    /// label. Top-level keys starting with `$` or `_` (e.g. `$schema`, `_comment`) are ignored; any other unknown
    /// top-level key (the original's `metadata` block, say) is a warning. A key present in both sections is an
    /// error. The warnings also name every override that prices a model of this table differently from its list
    /// price (the override still wins): the original's file prices `*haiku*` at Claude 3 Haiku's rates.
    pub fn with_overrides_json(
        &self,
        text: &str,
    ) -> Result<(PriceTable, Vec<String>), PricingError> {
        let root: Value =
            serde_json::from_str(text).map_err(|e| err("", format!("invalid JSON: {e}")))?;
        let Some(root) = root.as_object() else {
            return Err(err("", "top level must be an object"));
        };
        let mut label: Option<&str> = None;
        let mut parsed: Vec<(String, PriceEntry)> = Vec::new();
        let mut warnings = Vec::new();
        for (k, v) in root {
            match k.as_str() {
                "version" => match v.as_str() {
                    Some(s) if !s.trim().is_empty() => label = Some(s.trim()),
                    _ => return Err(err("version", "must be a non-empty string")),
                },
                "modelPricing" => {
                    for (model, e) in section(v, "modelPricing")? {
                        let path = format!("modelPricing.{}", quote(model));
                        parsed.push((model.clone(), parse_legacy(e, &path)?));
                    }
                }
                "perMillion" => {
                    for (model, e) in section(v, "perMillion")? {
                        let path = format!("perMillion.{}", quote(model));
                        parsed.push((model.clone(), parse_per_million(e, &path)?));
                    }
                }
                other if other.starts_with('$') || other.starts_with('_') => {}
                other => warnings.push(format!(
                    "pricing.json: {}: unknown key, ignored (expected \"modelPricing\", \"perMillion\" or \"version\")",
                    quote(other)
                )),
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (model, _) in &parsed {
            if model.trim().is_empty() {
                return Err(err(quote(model), "empty model key"));
            }
            if !seen.insert(model.to_ascii_lowercase()) {
                return Err(err(
                    quote(model),
                    "model given twice (in both modelPricing and perMillion, or differing only in case)",
                ));
            }
        }
        let mut t = self.clone();
        for (model, entry) in parsed {
            if let Some(w) = self.differs_from_list_price(&model, &entry) {
                warnings.push(w);
            }
            t.insert(&model, entry, true);
        }
        let hash = fnv1a32(text.as_bytes());
        t.version = match label {
            Some(l) => format!("{}+{l}+override-{hash:08x}", self.version),
            None => format!("{}+override-{hash:08x}", self.version),
        };
        Ok((t, warnings))
    }

    /// A warning when `key` (a model id or pattern) matches models of this table whose list input or output price
    /// differs from `entry`'s: one line per key, naming the models and both prices.
    fn differs_from_list_price(&self, key: &str, entry: &PriceEntry) -> Option<String> {
        let key_lower = key.to_ascii_lowercase();
        let mut models: Vec<(&str, &PriceEntry)> = self
            .exact
            .iter()
            .filter(|(model, _)| {
                if wildcard::is_wildcard(&key_lower) {
                    wildcard::matches(&key_lower, model)
                } else {
                    **model == key_lower
                }
            })
            .filter(|(_, listed)| {
                (listed.rates.input, listed.rates.output) != (entry.rates.input, entry.rates.output)
            })
            .map(|(model, listed)| (model.as_str(), listed))
            .collect();
        if models.is_empty() {
            return None;
        }
        models.sort_by(|a, b| a.0.cmp(b.0));
        let per_mtok =
            |r: &Rates| format!("${}/${}", usd_per_mtok(r.input), usd_per_mtok(r.output));
        let listed: Vec<String> = models
            .iter()
            .map(|(model, listed)| format!("{model} ({})", per_mtok(&listed.rates)))
            .collect();
        Some(format!(
            "pricing.json: {}: prices at {} per MTok (input/output) models whose list price differs: {}; the override wins",
            quote(key),
            per_mtok(&entry.rates),
            listed.join(", "),
        ))
    }
}

/// Pico-USD per token as USD per million tokens, without trailing zeros (`3`, `0.25`).
fn usd_per_mtok(pico_per_token: u64) -> String {
    let micro = pico_per_token; // pico-USD per token = micro-USD per MTok
    let whole = micro / 1_000_000;
    let frac = micro % 1_000_000;
    if frac == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{:06}", frac)
            .trim_end_matches('0')
            .to_string()
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

fn section<'a>(v: &'a Value, name: &str) -> Result<&'a Map<String, Value>, PricingError> {
    v.as_object().ok_or_else(|| {
        err(
            name,
            "must be an object mapping model ids or wildcards to prices",
        )
    })
}

/// A non-negative finite number in `unit_usd` units converted to pico-USD per token.
fn rate_field(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
    pico_per_unit: f64,
) -> Result<Option<u64>, PricingError> {
    let Some(v) = obj.get(key) else {
        return Ok(None);
    };
    let p = || format!("{path}.{key}");
    let Some(x) = v.as_f64() else {
        return Err(err(p(), "must be a number"));
    };
    if !x.is_finite() || x < 0.0 {
        return Err(err(p(), "must be a finite, non-negative number"));
    }
    let pico = (x * pico_per_unit).round();
    if pico > MAX_RATE_PICO {
        return Err(err(p(), "unreasonably large (check the unit)"));
    }
    Ok(Some(pico as u64))
}

fn required(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
    pico_per_unit: f64,
) -> Result<u64, PricingError> {
    rate_field(obj, key, path, pico_per_unit)?
        .ok_or_else(|| err(format!("{path}.{key}"), "missing"))
}

/// USD per 1K tokens → pico-USD per token.
const PICO_PER_USD_PER_1K: f64 = 1e9;
/// USD per 1M tokens → pico-USD per token.
const PICO_PER_USD_PER_1M: f64 = 1e6;

fn parse_legacy(v: &Value, path: &str) -> Result<PriceEntry, PricingError> {
    let obj = v
        .as_object()
        .ok_or_else(|| err(path, "must be an object"))?;
    let u = PICO_PER_USD_PER_1K;
    let input = required(obj, "input", path, u)?;
    let output = required(obj, "output", path, u)?;
    let cache_write_5m = rate_field(obj, "cacheCreation", path, u)?.unwrap_or((input * 5 + 2) / 4);
    let cache_write_1h = rate_field(obj, "cacheCreation1h", path, u)?.unwrap_or(input * 2);
    let cache_read = rate_field(obj, "cacheRead", path, u)?.unwrap_or((input + 5) / 10);
    Ok(PriceEntry {
        rates: Rates {
            input,
            output,
            cache_write_5m,
            cache_write_1h,
            cache_read,
        },
        long_context: None,
        fast_multiplier_milli: None,
    })
}

const RATE_KEYS: [&str; 5] = [
    "input",
    "output",
    "cacheWrite5m",
    "cacheWrite1h",
    "cacheRead",
];

fn parse_rates_per_million(obj: &Map<String, Value>, path: &str) -> Result<Rates, PricingError> {
    let u = PICO_PER_USD_PER_1M;
    Ok(Rates {
        input: required(obj, "input", path, u)?,
        output: required(obj, "output", path, u)?,
        cache_write_5m: required(obj, "cacheWrite5m", path, u)?,
        cache_write_1h: required(obj, "cacheWrite1h", path, u)?,
        cache_read: required(obj, "cacheRead", path, u)?,
    })
}

fn parse_per_million(v: &Value, path: &str) -> Result<PriceEntry, PricingError> {
    let obj = v
        .as_object()
        .ok_or_else(|| err(path, "must be an object"))?;
    for k in obj.keys() {
        if !RATE_KEYS.contains(&k.as_str()) && k != "longContext" && k != "fastMultiplier" {
            return Err(err(format!("{path}.{k}"), "unknown key"));
        }
    }
    let rates = parse_rates_per_million(obj, path)?;
    let long_context = match obj.get("longContext") {
        None | Some(Value::Null) => None,
        Some(lc) => {
            let lp = format!("{path}.longContext");
            let lo = lc
                .as_object()
                .ok_or_else(|| err(&lp, "must be an object"))?;
            for k in lo.keys() {
                if !RATE_KEYS.contains(&k.as_str()) && k != "threshold" {
                    return Err(err(format!("{lp}.{k}"), "unknown key"));
                }
            }
            let threshold_tokens = match lo.get("threshold") {
                None => return Err(err(format!("{lp}.threshold"), "missing")),
                Some(t) => t.as_u64().filter(|&n| n > 0).ok_or_else(|| {
                    err(
                        format!("{lp}.threshold"),
                        "must be a positive integer (tokens)",
                    )
                })?,
            };
            Some(LongContext {
                threshold_tokens,
                rates: parse_rates_per_million(lo, &lp)?,
            })
        }
    };
    let fast_multiplier_milli = match obj.get("fastMultiplier") {
        None | Some(Value::Null) => None,
        Some(f) => {
            let fp = format!("{path}.fastMultiplier");
            let x = f.as_f64().ok_or_else(|| err(&fp, "must be a number"))?;
            if !(x.is_finite() && x > 0.0 && x <= 1000.0) {
                return Err(err(&fp, "must be a number in (0, 1000]"));
            }
            Some((x * 1000.0).round() as u32)
        }
    };
    Ok(PriceEntry {
        rates,
        long_context,
        fast_multiplier_milli,
    })
}

/// 32-bit FNV-1a: tiny, stable across platforms and releases, good enough to label a config file's content.
fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

// ---------------------------------------------------------------------------------------------------------------
// Built-in table (docs/protocols.md §9.3). Values are micro-USD per MTok (= pico-USD per token), columns in the table's
// order: input, write 5m, write 1h, read, output. Rows marked "uncertain" in the doc are included so traffic to them
// is priced by a reviewed entry rather than a guess; check them against the official pricing page before a release.
// ---------------------------------------------------------------------------------------------------------------

const fn r(input: u64, w5m: u64, w1h: u64, read: u64, output: u64) -> Rates {
    Rates::per_mtok_micro(input, w5m, w1h, read, output)
}

const fn std_entry(rates: Rates) -> PriceEntry {
    PriceEntry {
        rates,
        long_context: None,
        fast_multiplier_milli: None,
    }
}

const HAIKU_3: Rates = r(250_000, 300_000, 500_000, 30_000, 1_250_000);
const HAIKU_3_5: Rates = r(800_000, 1_000_000, 1_600_000, 80_000, 4_000_000);
const OPUS_3_4: Rates = r(15_000_000, 18_750_000, 30_000_000, 1_500_000, 75_000_000);
const SONNET_3_4: Rates = r(3_000_000, 3_750_000, 6_000_000, 300_000, 15_000_000);
/// Sonnet 4 / 4.5 above 200K total input: input 2×, output 1.5× (§9.4).
const SONNET_LONG: Rates = r(6_000_000, 7_500_000, 12_000_000, 600_000, 22_500_000);
const OPUS_4_5: Rates = r(5_000_000, 6_250_000, 10_000_000, 500_000, 25_000_000);
const HAIKU_4_5: Rates = r(1_000_000, 1_250_000, 2_000_000, 100_000, 5_000_000);
const SONNET_5: Rates = r(2_000_000, 2_500_000, 4_000_000, 200_000, 10_000_000);
const SONNET_5_5: Rates = r(2_000_000, 2_500_000, 4_000_000, 100_000, 10_000_000);
const OPUS_5_5: Rates = r(4_000_000, 5_000_000, 8_000_000, 200_000, 20_000_000);
const FABLE_5: Rates = r(10_000_000, 12_500_000, 20_000_000, 1_000_000, 50_000_000);
const FABLE_5_1: Rates = r(10_000_000, 12_500_000, 20_000_000, 250_000, 50_000_000);
const HAIKU_5_5: Rates = r(100_000, 125_000, 200_000, 10_000, 500_000);
const HAIKU_5_5_LONG: Rates = r(500_000, 625_000, 1_000_000, 50_000, 2_500_000);

const SONNET_4_ENTRY: PriceEntry = PriceEntry {
    rates: SONNET_3_4,
    long_context: Some(LongContext {
        threshold_tokens: 200_000,
        rates: SONNET_LONG,
    }),
    fast_multiplier_milli: None,
};

const HAIKU_5_5_ENTRY: PriceEntry = PriceEntry {
    rates: HAIKU_5_5,
    long_context: Some(LongContext {
        threshold_tokens: 100_000,
        rates: HAIKU_5_5_LONG,
    }),
    fast_multiplier_milli: None,
};

/// `(keys, entry)`. Keys ending in a minor version use `<id>*` for dated/suffixed variants; major-only ids use
/// `<id>-20*` (dated) and `<id>@*` (Vertex-style) so they cannot swallow a future minor version.
fn builtin_rows() -> Vec<(&'static [&'static str], PriceEntry)> {
    vec![
        (
            &["claude-3-haiku-20240307", "claude-3-haiku*"][..],
            std_entry(HAIKU_3),
        ),
        (
            &[
                "claude-3-5-haiku-20241022",
                "claude-3-5-haiku-latest",
                "claude-3-5-haiku*",
            ][..],
            std_entry(HAIKU_3_5),
        ),
        (
            &[
                "claude-3-opus-20240229",
                "claude-3-opus-latest",
                "claude-3-opus*",
            ][..],
            std_entry(OPUS_3_4),
        ),
        (
            &[
                "claude-3-5-sonnet-20241022",
                "claude-3-5-sonnet-20240620",
                "claude-3-5-sonnet-latest",
                "claude-3-5-sonnet*",
                "claude-3-7-sonnet-20250219",
                "claude-3-7-sonnet-latest",
                "claude-3-7-sonnet*",
            ][..],
            std_entry(SONNET_3_4),
        ),
        (
            &[
                "claude-sonnet-4-20250514",
                "claude-sonnet-4-0",
                "claude-sonnet-4",
                "claude-sonnet-4-20*",
                "claude-sonnet-4@*",
                "claude-sonnet-4-5-20250929",
                "claude-sonnet-4-5",
                "claude-sonnet-4-5*",
            ][..],
            SONNET_4_ENTRY,
        ),
        // Sonnet 4.6: 1M window GA at standard prices (§9.4), hence no long-context tier.
        (
            &["claude-sonnet-4-6", "claude-sonnet-4-6*"][..],
            std_entry(SONNET_3_4),
        ),
        (
            &[
                "claude-opus-4-20250514",
                "claude-opus-4-0",
                "claude-opus-4",
                "claude-opus-4-20*",
                "claude-opus-4@*",
                "claude-opus-4-1-20250805",
                "claude-opus-4-1",
                "claude-opus-4-1*",
            ][..],
            std_entry(OPUS_3_4),
        ),
        // Opus 4.6: the launch long-context premium was dropped when the 1M window went GA (§9.4).
        (
            &[
                "claude-opus-4-5-20251101",
                "claude-opus-4-5",
                "claude-opus-4-5*",
                "claude-opus-4-6",
                "claude-opus-4-6*",
                "claude-opus-4-7",
                "claude-opus-4-7*",
                "claude-opus-4-8",
                "claude-opus-4-8*",
                "claude-opus-5",
                "claude-opus-5-20*",
                "claude-opus-5@*",
            ][..],
            std_entry(OPUS_4_5),
        ),
        (
            &[
                "claude-haiku-4-5-20251001",
                "claude-haiku-4-5",
                "claude-haiku-4-5*",
            ][..],
            std_entry(HAIKU_4_5),
        ),
        (
            &[
                "claude-sonnet-5",
                "claude-sonnet-5-20*",
                "claude-sonnet-5@*",
            ][..],
            std_entry(SONNET_5),
        ),
        (
            &["claude-sonnet-5-5", "claude-sonnet-5-5*"][..],
            std_entry(SONNET_5_5),
        ),
        (
            &["claude-opus-5-5", "claude-opus-5-5*"][..],
            std_entry(OPUS_5_5),
        ),
        (
            &["claude-haiku-5-5", "claude-haiku-5-5*"][..],
            HAIKU_5_5_ENTRY,
        ),
        (
            &[
                "claude-fable-5",
                "claude-fable-5-20*",
                "claude-fable-5@*",
                "claude-mythos-5",
                "claude-mythos-5-20*",
                "claude-mythos-5@*",
            ][..],
            std_entry(FABLE_5),
        ),
        (
            &[
                "claude-fable-5-1",
                "claude-fable-5-1*",
                "claude-mythos-5-1",
                "claude-mythos-5-1*",
            ][..],
            std_entry(FABLE_5_1),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, w5m: u64, w1h: u64, read: u64, output: u64) -> Usage {
        let mut u = Usage {
            input_tokens: input,
            cache_creation_input_tokens: w5m + w1h,
            cache_read_input_tokens: read,
            output_tokens: output,
            cache_creation_5m_reported: Some(w5m),
            cache_creation_1h_reported: Some(w1h),
            ..Usage::default()
        };
        u.recompute_cache_split();
        u
    }

    #[test]
    fn sonnet_4_5_exact_numbers() {
        let t = PriceTable::builtin();
        let c = t
            .cost(
                "claude-sonnet-4-5-20250929",
                &usage(1000, 2000, 3000, 4000, 500),
            )
            .unwrap();
        // 1000×3 + 2000×3.75 + 3000×6 + 4000×0.30 + 500×15 = 37_200 (tokens × USD/MTok)
        // ÷ 1e6 → $0.0372 = 37_200_000 nano-USD.
        assert_eq!(c.input, NanoUsd(3_000_000));
        assert_eq!(c.cache_write_5m, NanoUsd(7_500_000));
        assert_eq!(c.cache_write_1h, NanoUsd(18_000_000));
        assert_eq!(c.cache_read, NanoUsd(1_200_000));
        assert_eq!(c.output, NanoUsd(7_500_000));
        assert_eq!(c.total, NanoUsd(37_200_000));
        assert_eq!(c.total.to_usd_string(), "0.0372");
        assert!(!c.long_context_applied);
        assert_eq!(c.multiplier_ppm, 1_000_000);
        // Undated alias and a future dated variant price the same.
        assert_eq!(
            t.cost("claude-sonnet-4-5", &usage(1000, 2000, 3000, 4000, 500))
                .unwrap()
                .total,
            c.total
        );
        let (_, kind) = t.lookup("claude-sonnet-4-5-20261231").unwrap();
        assert_eq!(kind, MatchKind::Wildcard("claude-sonnet-4-5*"));
    }

    #[test]
    fn long_context_switch_at_200_001() {
        let t = PriceTable::builtin();
        // 100_000 input + 50_000 writes + 50_000 reads = 200_000: standard.
        let at = t
            .cost(
                "claude-sonnet-4-5",
                &usage(100_000, 50_000, 0, 50_000, 1000),
            )
            .unwrap();
        assert!(!at.long_context_applied);
        assert_eq!(
            at.total,
            NanoUsd(300_000_000 + 187_500_000 + 15_000_000 + 15_000_000)
        );
        let over = t
            .cost(
                "claude-sonnet-4-5",
                &usage(100_001, 50_000, 0, 50_000, 1000),
            )
            .unwrap();
        assert!(over.long_context_applied);
        // Every class at the premium: 100_001×6 + 50_000×7.5 + 50_000×0.6 + 1000×22.5 (USD/MTok)
        assert_eq!(over.input, NanoUsd(600_006_000));
        assert_eq!(over.cache_write_5m, NanoUsd(375_000_000));
        assert_eq!(over.cache_read, NanoUsd(30_000_000));
        assert_eq!(over.output, NanoUsd(22_500_000));
        assert_eq!(
            over.total,
            NanoUsd(600_006_000 + 375_000_000 + 30_000_000 + 22_500_000)
        );
        // Sonnet 4.6 / Opus 4.6 stay at standard prices.
        assert!(
            !t.cost("claude-sonnet-4-6", &usage(900_000, 0, 0, 0, 1))
                .unwrap()
                .long_context_applied
        );
        assert!(
            !t.cost("claude-opus-4-6", &usage(900_000, 0, 0, 0, 1))
                .unwrap()
                .long_context_applied
        );
        // Haiku 5.5 switches above 100K.
        let h = t
            .cost("claude-haiku-5-5", &usage(100_001, 0, 0, 0, 0))
            .unwrap();
        assert!(h.long_context_applied);
        assert_eq!(h.total, NanoUsd(50_000_500));
    }

    #[test]
    fn unknown_model_is_unpriced() {
        let t = PriceTable::builtin();
        for m in [
            "gpt-4o",
            "claude-sonnet-4-7",
            "claude-opus-4-9",
            "claude-sonnet-5-1",
            "sonnet",
            "",
        ] {
            assert!(t.lookup(m).is_none(), "{m}");
            assert!(t.cost(m, &usage(1, 0, 0, 0, 1)).is_none(), "{m}");
        }
    }

    #[test]
    fn every_doc_row_is_priced() {
        let t = PriceTable::builtin();
        let cases: &[(&str, Rates)] = &[
            ("claude-3-haiku-20240307", HAIKU_3),
            ("claude-3-5-haiku-20241022", HAIKU_3_5),
            ("claude-3-opus-20240229", OPUS_3_4),
            ("claude-3-5-sonnet-20241022", SONNET_3_4),
            ("claude-3-5-sonnet-20240620", SONNET_3_4),
            ("claude-3-7-sonnet-20250219", SONNET_3_4),
            ("claude-sonnet-4-20250514", SONNET_3_4),
            ("claude-sonnet-4-5-20250929", SONNET_3_4),
            ("claude-sonnet-4-6", SONNET_3_4),
            ("claude-opus-4-20250514", OPUS_3_4),
            ("claude-opus-4-1-20250805", OPUS_3_4),
            ("claude-opus-4-5-20251101", OPUS_4_5),
            ("claude-opus-4-6", OPUS_4_5),
            ("claude-opus-4-7", OPUS_4_5),
            ("claude-opus-4-8", OPUS_4_5),
            ("claude-haiku-4-5-20251001", HAIKU_4_5),
            ("claude-haiku-4-5", HAIKU_4_5),
            ("claude-sonnet-5", SONNET_5),
            ("claude-sonnet-5-5", SONNET_5_5),
            ("claude-opus-5", OPUS_4_5),
            ("claude-opus-5-5", OPUS_5_5),
            ("claude-fable-5", FABLE_5),
            ("claude-mythos-5", FABLE_5),
            ("claude-fable-5-1", FABLE_5_1),
            ("claude-mythos-5-1", FABLE_5_1),
            ("claude-haiku-5-5", HAIKU_5_5),
            ("CLAUDE-Opus-4-6", OPUS_4_5),
        ];
        for (m, rates) in cases {
            let (e, kind) = t.lookup(m).unwrap_or_else(|| panic!("{m} unpriced"));
            assert_eq!(kind, MatchKind::Exact, "{m}");
            assert_eq!(e.rates, *rates, "{m}");
        }
        assert_eq!(t.version(), BUILTIN_VERSION);
    }

    #[test]
    fn family_wildcards_agree_with_exact_entries() {
        let t = PriceTable::builtin();
        for (key, entry) in t.entries().filter(|(k, _)| !k.contains('*')) {
            for variant in [format!("{key}-20991231"), format!("{key}@20991231")] {
                if let Some((w, MatchKind::Wildcard(_))) = t.lookup(&variant) {
                    assert_eq!(w, entry, "{variant}");
                }
            }
        }
        assert_eq!(
            t.lookup("claude-opus-4-20991231").unwrap().1,
            MatchKind::Wildcard("claude-opus-4-20*")
        );
        assert_eq!(
            t.lookup("claude-haiku-4-5@20251001").unwrap().0.rates,
            HAIKU_4_5
        );
        assert_eq!(
            t.lookup("claude-sonnet-5-5-20990101").unwrap().0.rates,
            SONNET_5_5
        );
        assert_eq!(
            t.lookup("claude-sonnet-5-20990101").unwrap().0.rates,
            SONNET_5
        );
    }

    #[test]
    fn geo_batch_fast_and_web_search() {
        let t = PriceTable::builtin();
        let mut u = usage(1000, 0, 0, 0, 1000);
        u.inference_geo = Some("us".into());
        let c = t.cost("claude-opus-4-6", &u).unwrap();
        // (1000×$5 + 1000×$25) / 1e6 = $0.03 = 30_000_000 nano, ×1.1
        assert_eq!(c.total, NanoUsd(33_000_000));
        assert!(c.geo_us_applied);
        let b = t
            .cost_with("claude-opus-4-6", &u, CostOptions { batch: true })
            .unwrap();
        assert_eq!(b.total, NanoUsd(16_500_000));
        u.inference_geo = Some("global".into());
        u.speed = Some("fast".into());
        let f = t.cost("claude-opus-4-6", &u).unwrap();
        assert!(f.fast_multiplier_missing && !f.fast_applied);
        assert_eq!(f.total, NanoUsd(30_000_000));
        u.web_search_requests = 3;
        u.speed = None;
        let w = t.cost("claude-opus-4-6", &u).unwrap();
        assert_eq!(w.web_search, NanoUsd(30_000_000));
        assert_eq!(w.total, NanoUsd(60_000_000));
    }

    #[test]
    fn fast_multiplier_from_override() {
        let t = PriceTable::builtin()
            .with_overrides_json(
                r#"{"perMillion":{"claude-opus-4-6":{"input":5,"output":25,"cacheWrite5m":6.25,"cacheWrite1h":10,
                "cacheRead":0.5,"fastMultiplier":6}}}"#,
            )
            .unwrap().0;
        let mut u = usage(1000, 0, 0, 0, 1000);
        u.speed = Some("fast".into());
        u.inference_geo = Some("US".into());
        let c = t.cost("claude-opus-4-6", &u).unwrap();
        assert!(c.fast_applied && c.geo_us_applied);
        assert_eq!(c.multiplier_ppm, 6_600_000);
        assert_eq!(c.total, NanoUsd(198_000_000));
    }

    #[test]
    fn no_drift_over_a_million_tiny_requests() {
        let t = PriceTable::builtin();
        let u = usage(1, 0, 0, 1, 1); // Haiku 4.5, 1 token each of input/read/output: 1000 + 100 + 5000 nano
        let one = t.cost("claude-haiku-4-5", &u).unwrap().total;
        assert_eq!(one, NanoUsd(6_100));
        let mut sum = NanoUsd::ZERO;
        let mut float_sum = 0.0f64;
        for _ in 0..1_000_000 {
            let c = t.cost("claude-haiku-4-5", &u).unwrap().total;
            sum += c;
            float_sum += c.to_usd_f64();
        }
        assert_eq!(sum, NanoUsd(6_100 * 1_000_000));
        assert_eq!(sum.to_usd_string(), "6.1");
        // The float accumulation is what we avoid: it does not land on 6.1 exactly.
        assert_ne!(float_sum, 6.1);
    }

    #[test]
    fn remainder_and_missing_split_bill_as_5m() {
        let t = PriceTable::builtin();
        // Hand-built usage with a total but no derived split: all writes are 5m.
        let u = Usage {
            cache_creation_input_tokens: 1000,
            ..Usage::default()
        };
        let c = t.cost("claude-sonnet-4-6", &u).unwrap();
        assert_eq!(
            (c.cache_write_5m_tokens, c.cache_write_1h_tokens),
            (1000, 0)
        );
        assert_eq!(c.cache_write_5m, NanoUsd(3_750_000));
    }

    #[test]
    fn rounding_is_half_up() {
        // Published rates are whole nano-USD per token; sub-nano amounts only arise from tiny override rates.
        let e = std_entry(r(400, 0, 0, 0, 500)); // $0.0004 / $0.0005 per MTok
        let c = |i: u64, o: u64| e.cost(&usage(i, 0, 0, 0, o), CostOptions::default());
        assert_eq!(c(1, 0).total, NanoUsd(0)); // 0.4 nano
        assert_eq!(c(0, 1).total, NanoUsd(1)); // 0.5 nano rounds up
        assert_eq!(c(1, 1).total, NanoUsd(1)); // 0.9 nano, rounded once from the exact sum
        assert_eq!((c(1, 1).input, c(1, 1).output), (NanoUsd(0), NanoUsd(1)));
        assert_eq!(c(5, 0).total, NanoUsd(2));
    }

    #[test]
    fn usd_string() {
        assert_eq!(NanoUsd(0).to_usd_string(), "0");
        assert_eq!(NanoUsd(400).to_usd_string(), "0");
        assert_eq!(NanoUsd(500).to_usd_string(), "0.000001");
        assert_eq!(NanoUsd(1_500_000_000).to_usd_string(), "1.5");
        assert_eq!(NanoUsd(12_000_000_000).to_usd_string(), "12");
        assert_eq!(NanoUsd(-2_500).to_usd_string(), "-0.000003");
        assert_eq!(NanoUsd(-400).to_usd_string(), "0");
        assert_eq!(NanoUsd(i64::MIN).to_usd_string(), "-9223372036.854776");
        assert_eq!(format!("{}", NanoUsd(37_200_000)), "0.0372");
    }

    #[test]
    fn legacy_override_format() {
        let text = r#"{"modelPricing": {
            "*sonnet*": {"input": 0.003, "output": 0.015, "cacheCreation": 0.00375, "cacheRead": 0.0003},
            "my-model": {"input": 0.001, "output": 0.002}
        }}"#;
        let t = PriceTable::builtin().with_overrides_json(text).unwrap().0;
        assert!(t.version().starts_with("builtin-2026-11+override-"));
        assert_eq!(t.version().len(), "builtin-2026-11+override-".len() + 8);
        let (e, kind) = t.lookup("my-model").unwrap();
        assert_eq!(kind, MatchKind::Exact);
        // Legacy derived defaults: 5m 1.25×, 1h 2×, read 0.1× input.
        assert_eq!(
            e.rates,
            r(1_000_000, 1_250_000, 2_000_000, 100_000, 2_000_000)
        );
        let (e, kind) = t.lookup("vendor-sonnet-x").unwrap();
        assert_eq!(kind, MatchKind::Wildcard("*sonnet*"));
        assert_eq!(
            e.rates,
            r(3_000_000, 3_750_000, 6_000_000, 300_000, 15_000_000)
        );
        // The operator's file wins over the built-in table: its exact ids and its more specific wildcards.
        assert_eq!(
            t.lookup("claude-sonnet-4-6").unwrap().1,
            MatchKind::Wildcard("*sonnet*")
        );
        assert_eq!(
            t.lookup("claude-sonnet-4-6-20990101").unwrap().1,
            MatchKind::Wildcard("*sonnet*")
        );
        // Models the file does not match keep their list price.
        assert_eq!(t.lookup("claude-opus-4-6").unwrap().1, MatchKind::Exact);
        // Same text ⇒ same version; different text ⇒ different version.
        let t2 = PriceTable::builtin().with_overrides_json(text).unwrap().0;
        assert_eq!(t.version(), t2.version());
        let t3 = PriceTable::builtin()
            .with_overrides_json(&text.replace("0.002", "0.0021"))
            .unwrap()
            .0;
        assert_ne!(t.version(), t3.version());
    }

    #[test]
    fn per_million_override_replaces_builtin() {
        let text = r#"{"version": "acme-7", "perMillion": {"claude-sonnet-4-5-20250929": {
            "input": 3.3, "output": 16.5, "cacheWrite5m": 4.125, "cacheWrite1h": 6.6, "cacheRead": 0.33,
            "longContext": {"threshold": 200000, "input": 6.6, "output": 24.75, "cacheWrite5m": 8.25,
                            "cacheWrite1h": 13.2, "cacheRead": 0.66}}},
            "_comment": "markup 10%"}"#;
        let t = PriceTable::builtin().with_overrides_json(text).unwrap().0;
        assert!(t.version().starts_with("builtin-2026-11+acme-7+override-"));
        let c = t
            .cost(
                "claude-sonnet-4-5-20250929",
                &usage(1000, 2000, 3000, 4000, 500),
            )
            .unwrap();
        assert_eq!(c.total, NanoUsd(40_920_000)); // 37_200_000 × 1.1
        let lc = t
            .cost("claude-sonnet-4-5-20250929", &usage(200_001, 0, 0, 0, 0))
            .unwrap();
        assert!(lc.long_context_applied);
        assert_eq!(lc.total, NanoUsd(1_320_006_600));
        // The undated alias keeps its built-in entry.
        assert_eq!(
            t.cost("claude-sonnet-4-5", &usage(1000, 2000, 3000, 4000, 500))
                .unwrap()
                .total,
            NanoUsd(37_200_000)
        );
    }

    #[test]
    fn override_errors_name_the_path() {
        let b = PriceTable::builtin();
        let e = b
            .with_overrides_json(r#"{"perMillion":{"claude-x":{"input":3,"output":15,"cacheWrite5m":3.75,"cacheWrite1h":6}}}"#)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"pricing.json: perMillion."claude-x".cacheRead: missing"#
        );
        let e = b
            .with_overrides_json(r#"{"modelPricing":{"m":{"input":-1,"output":1}}}"#)
            .unwrap_err();
        assert_eq!(e.path, r#"modelPricing."m".input"#);
        let e = b
            .with_overrides_json(r#"{"modelPricing":{"m":{"output":1}}}"#)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"pricing.json: modelPricing."m".input: missing"#
        );
        let e = b
            .with_overrides_json(
                r#"{"perMillion":{"m":{"input":1,"output":1,"cacheWrite5m":1,"cacheWrite1h":1,"cacheRead":1,"cacheWirte":1}}}"#,
            )
            .unwrap_err();
        assert_eq!(e.path, r#"perMillion."m".cacheWirte"#);
        let e = b
            .with_overrides_json(
                r#"{"perMillion":{"m":{"input":1,"output":1,"cacheWrite5m":1,"cacheWrite1h":1,"cacheRead":1,"longContext":{"input":1}}}}"#,
            )
            .unwrap_err();
        assert_eq!(e.path, r#"perMillion."m".longContext.threshold"#);
        // An unknown top-level key (the original's `metadata` block) is a warning, not an error.
        let (_, warnings) = b
            .with_overrides_json(r#"{"metadata":{"updated":"2024"},"modelPricing":{}}"#)
            .unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("\"metadata\": unknown key"),
            "{warnings:?}"
        );
        assert!(b.with_overrides_json("not json").is_err());
        assert!(b.with_overrides_json("[]").is_err());
        assert!(b
            .with_overrides_json(r#"{"modelPricing":{"m":{"input":"3","output":1}}}"#)
            .is_err());
        assert!(b
            .with_overrides_json(r#"{"modelPricing":{"m":{"input":1e300,"output":1}}}"#)
            .is_err());
        let dup = r#"{"modelPricing":{"M":{"input":1,"output":1}},
            "perMillion":{"m":{"input":1,"output":1,"cacheWrite5m":1,"cacheWrite1h":1,"cacheRead":1}}}"#;
        assert!(b.with_overrides_json(dup).is_err());
    }

    #[test]
    fn overrides_below_the_list_price_are_named_once_per_pattern() {
        // The original's pricing.json: `*haiku*` at Claude 3 Haiku's rates ($0.25/$1.25 per MTok).
        let text = r#"{"modelPricing":{"*haiku*":{"input":0.00025,"output":0.00125},
            "claude-sonnet-4-6":{"input":0.003,"output":0.015}}}"#;
        let (t, warnings) = PriceTable::builtin().with_overrides_json(text).unwrap();
        assert_eq!(
            warnings.len(),
            1,
            "the sonnet override equals its list price: {warnings:?}"
        );
        let w = &warnings[0];
        assert!(w.contains("\"*haiku*\""), "{w}");
        assert!(w.contains("claude-haiku-4-5"), "{w}");
        assert!(w.contains("$0.25/$1.25") && w.contains("$1/$5"), "{w}");
        // The override still wins.
        assert_eq!(t.lookup("claude-haiku-4-5").unwrap().0.rates.input, 250_000);
    }

    #[test]
    fn override_wildcard_specificity_and_tie_break() {
        let text = r#"{"perMillion":{
            "claude-*": {"input":1,"output":1,"cacheWrite5m":1,"cacheWrite1h":1,"cacheRead":1},
            "claude-sonnet-4-6*": {"input":9,"output":9,"cacheWrite5m":9,"cacheWrite1h":9,"cacheRead":9}}}"#;
        let t = PriceTable::builtin().with_overrides_json(text).unwrap().0;
        // Replaces the built-in family wildcard of the same key…
        assert_eq!(
            t.lookup("claude-sonnet-4-6-20990101")
                .unwrap()
                .0
                .rates
                .input,
            9_000_000
        );
        // …and the built-in exact id it matches: the operator's file wins.
        assert_eq!(
            t.lookup("claude-sonnet-4-6").unwrap().0.rates.input,
            9_000_000
        );
        // Among overrides, the generic wildcard only catches what no more specific override matches.
        assert_eq!(
            t.lookup("claude-sonnet-4-7").unwrap().1,
            MatchKind::Wildcard("claude-*")
        );
        assert_eq!(
            t.lookup("claude-opus-4-5-20990101").unwrap().1,
            MatchKind::Wildcard("claude-*")
        );
        // A model no override matches keeps its list price.
        assert_eq!(t.lookup("other-model"), None);
    }
}
