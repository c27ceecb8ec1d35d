//! `reasoning_effort` → Anthropic `thinking` (+ `output_config.effort`), docs/protocols.md §4.3.

use crate::error::TranslateError;
use crate::input::J;
use crate::json::wrong_type;
use crate::options::ThinkingBudgets;
use ccgate_meter::ModelCaps;

/// Smallest `budget_tokens` Anthropic accepts (§2.9).
pub(crate) const MIN_BUDGET: u32 = 1024;

/// OpenAI `reasoning_effort` values, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Effort {
    None,
    Minimal,
    Low,
    Medium,
    High,
    XHigh,
    Max,
}

impl Effort {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Self::None,
            "minimal" => Self::Minimal,
            "low" => Self::Low,
            "medium" => Self::Medium,
            "high" => Self::High,
            "xhigh" => Self::XHigh,
            "max" => Self::Max,
            _ => return None,
        })
    }

    /// Anthropic `output_config.effort` name; `minimal` has none and maps to `low` (§4.3).
    fn anthropic_name(self) -> &'static str {
        match self {
            Self::None | Self::Minimal | Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::XHigh => "xhigh",
            Self::Max => "max",
        }
    }
}

/// Validates `reasoning_effort`. Unknown values are a 400 (OpenAI does the same).
pub(crate) fn parse_effort(value: Option<&J<'_>>) -> Result<Option<Effort>, TranslateError> {
    match value {
        None => Ok(None),
        Some(J::Str(s)) => Effort::parse(s).map(Some).ok_or_else(|| {
            TranslateError::invalid(
                "reasoning_effort",
                format!(
                    "Invalid value for 'reasoning_effort': '{s}'. Supported values are 'none', 'minimal', 'low', 'medium', 'high', 'xhigh' and 'max'"
                ),
            )
        }),
        Some(other) => Err(wrong_type("reasoning_effort", "a string", other)),
    }
}

/// How thinking is configured for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Thinking {
    Off,
    /// `{"type":"adaptive"}` + `output_config.effort`.
    Adaptive {
        effort: &'static str,
    },
    /// `{"type":"enabled","budget_tokens":N}`.
    Budget {
        budget: u32,
    },
}

/// The §4.3 table. Models without thinking ignore `reasoning_effort` (clients send it by default
/// for every model; a 400 would break them for no gain). On adaptive models the effort is capped
/// at `caps.max_effort` (`xhigh`/`max` "where supported, else" the highest level that is).
pub(crate) fn plan(
    effort: Option<Effort>,
    caps: &ModelCaps,
    budgets: &ThinkingBudgets,
) -> Thinking {
    let Some(effort) = effort.filter(|e| *e != Effort::None) else {
        return Thinking::Off;
    };
    if !caps.thinking {
        return Thinking::Off;
    }
    if caps.adaptive_thinking {
        let cap = Effort::parse(caps.max_effort)
            .filter(|e| *e >= Effort::High)
            .unwrap_or(Effort::High);
        return Thinking::Adaptive {
            effort: effort.min(cap).anthropic_name(),
        };
    }
    let budget = match effort {
        Effort::None | Effort::Minimal => budgets.minimal,
        Effort::Low => budgets.low,
        Effort::Medium => budgets.medium,
        Effort::High => budgets.high,
        Effort::XHigh => budgets.xhigh,
        Effort::Max => budgets.max,
    };
    Thinking::Budget {
        budget: budget.max(MIN_BUDGET),
    }
}

/// Fits a budget plan to `max_tokens` (§4.3: `budget_tokens < max_tokens`, raise `max_tokens` to
/// budget + answer allowance). The allowance is what the client asked for as `max_tokens` (or the
/// model default): the client meant that many answer tokens, and thinking counts towards
/// `max_tokens` upstream. Returns the new `(thinking, max_tokens)`; thinking turns off when the
/// model's output limit leaves no room for the minimum budget.
pub(crate) fn fit_budget(thinking: Thinking, max_tokens: u32, model_max: u32) -> (Thinking, u32) {
    let Thinking::Budget { budget } = thinking else {
        return (thinking, max_tokens);
    };
    let mut max = max_tokens;
    if max <= budget {
        max = budget
            .saturating_add(max_tokens)
            .min(model_max)
            .max(max_tokens);
    }
    let budget = budget.min(max.saturating_sub(1));
    if budget < MIN_BUDGET {
        return (Thinking::Off, max_tokens);
    }
    (Thinking::Budget { budget }, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(adaptive: bool, thinking: bool, max_effort: &'static str) -> ModelCaps {
        ModelCaps {
            max_output_tokens: 64000,
            default_max_tokens: 8192,
            adaptive_thinking: adaptive,
            thinking,
            exclusive_temperature_top_p: true,
            fixed_sampling: false,
            prefill: false,
            structured_outputs: true,
            max_effort,
        }
    }

    #[test]
    fn table_adaptive() {
        let b = ThinkingBudgets::default();
        let c = caps(true, true, "high");
        let p = |e| plan(Some(e), &c, &b);
        assert_eq!(p(Effort::None), Thinking::Off);
        assert_eq!(p(Effort::Minimal), Thinking::Adaptive { effort: "low" });
        assert_eq!(p(Effort::Low), Thinking::Adaptive { effort: "low" });
        assert_eq!(p(Effort::Medium), Thinking::Adaptive { effort: "medium" });
        assert_eq!(p(Effort::High), Thinking::Adaptive { effort: "high" });
        assert_eq!(p(Effort::XHigh), Thinking::Adaptive { effort: "high" });
        assert_eq!(p(Effort::Max), Thinking::Adaptive { effort: "high" });
        let c = caps(true, true, "max");
        assert_eq!(
            plan(Some(Effort::XHigh), &c, &b),
            Thinking::Adaptive { effort: "xhigh" }
        );
        assert_eq!(
            plan(Some(Effort::Max), &c, &b),
            Thinking::Adaptive { effort: "max" }
        );
        let c = caps(true, true, "xhigh");
        assert_eq!(
            plan(Some(Effort::Max), &c, &b),
            Thinking::Adaptive { effort: "xhigh" }
        );
    }

    #[test]
    fn table_budget() {
        let b = ThinkingBudgets::default();
        let c = caps(false, true, "high");
        let budgets: Vec<_> = [
            Effort::Minimal,
            Effort::Low,
            Effort::Medium,
            Effort::High,
            Effort::XHigh,
            Effort::Max,
        ]
        .into_iter()
        .map(|e| plan(Some(e), &c, &b))
        .collect();
        assert_eq!(
            budgets,
            [1024, 1024, 2048, 4096, 8192, 16384].map(|budget| Thinking::Budget { budget })
        );
        assert_eq!(
            plan(Some(Effort::High), &caps(false, false, "high"), &b),
            Thinking::Off
        );
        assert_eq!(plan(None, &c, &b), Thinking::Off);
    }

    #[test]
    fn budget_fitting() {
        let t = Thinking::Budget { budget: 4096 };
        assert_eq!(fit_budget(t, 8192, 64000), (t, 8192));
        assert_eq!(fit_budget(t, 512, 64000), (t, 4608));
        assert_eq!(fit_budget(t, 4096, 64000), (t, 8192));
        // Model limit leaves less than the budget: shrink the budget.
        assert_eq!(
            fit_budget(t, 1000, 3000),
            (Thinking::Budget { budget: 2999 }, 3000)
        );
        // No room for the minimum budget at all.
        assert_eq!(fit_budget(t, 500, 1000), (Thinking::Off, 500));
        let a = Thinking::Adaptive { effort: "low" };
        assert_eq!(fit_budget(a, 100, 1000), (a, 100));
    }

    #[test]
    fn effort_validation() {
        assert!(parse_effort(Some(&J::Str("extreme".into()))).is_err());
        assert!(parse_effort(Some(&J::Bool(true))).is_err());
        assert_eq!(parse_effort(None).unwrap(), None);
    }
}
