//! Case-insensitive `*` glob matching, shared by tenant allow-lists, price-table keys and upstream `models` lists.
//!
//! The grammar is deliberately tiny: `*` matches any run of characters (including none), anywhere and any number
//! of times; every other character is a literal compared case-insensitively. There is no `?`, no character class and
//! no escaping, so an operator can never be surprised by a metacharacter inside a model id (ids contain `.`, `-`,
//! `@`, `:` and `[1m]`-style suffixes, all of which are literals here).
//!
//! Matching is allocation-free and runs in `O(pattern × text)` worst case (the classic greedy algorithm with
//! backtracking to the last star), which is linear for the patterns people actually write.

/// `true` if `text` matches `pattern` (case-insensitive, `*` = any run of characters).
///
/// A pattern without `*` is an exact, case-insensitive comparison. The empty pattern matches only the empty text;
/// `*` matches everything, including the empty text.
pub fn matches(pattern: &str, text: &str) -> bool {
    if !pattern.as_bytes().contains(&b'*') {
        return eq_ignore_case(pattern, text);
    }
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0usize, 0usize);
    // Position in `pattern` just after the last `*` seen, and the text position that star currently absorbs up to.
    let mut star: Option<usize> = None;
    let mut star_ti = 0usize;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            pi += 1;
            star = Some(pi);
            star_ti = ti;
            continue;
        }
        if pi < p.len() {
            let (pc, pl) = char_at(pattern, pi);
            let (tc, tl) = char_at(text, ti);
            if chars_eq(pc, tc) {
                pi += pl;
                ti += tl;
                continue;
            }
        }
        match star {
            Some(after_star) => {
                // Let the last star absorb one more character of text and retry from just after it.
                let (_, tl) = char_at(text, star_ti);
                star_ti += tl;
                ti = star_ti;
                pi = after_star;
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// Number of literal (non-`*`) characters in `pattern`.
///
/// When several wildcard keys match one model, the one with the most literal characters is the most specific
/// (`claude-sonnet-4-5*` beats `*sonnet*`, which beats `*`).
pub fn specificity(pattern: &str) -> usize {
    pattern.chars().filter(|&c| c != '*').count()
}

/// `true` if `pattern` contains a `*` (i.e. is a wildcard rather than an exact id).
pub fn is_wildcard(pattern: &str) -> bool {
    pattern.as_bytes().contains(&b'*')
}

/// Decodes the char starting at byte `i`. Callers only pass char boundaries (we always advance by whole chars and
/// `*` is ASCII), so the fallback is unreachable in practice; it keeps the function panic-free regardless.
#[inline]
fn char_at(s: &str, i: usize) -> (char, usize) {
    match s.get(i..).and_then(|rest| rest.chars().next()) {
        Some(c) => (c, c.len_utf8()),
        None => ('\u{FFFD}', 1),
    }
}

#[inline]
fn chars_eq(a: char, b: char) -> bool {
    if a == b {
        return true;
    }
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(&b);
    }
    a.to_lowercase().eq(b.to_lowercase())
}

fn eq_ignore_case(a: &str, b: &str) -> bool {
    if a.len() == b.len() && a.eq_ignore_ascii_case(b) {
        return true;
    }
    if a.is_ascii() && b.is_ascii() {
        return false;
    }
    let mut ai = a.chars();
    let mut bi = b.chars();
    loop {
        match (ai.next(), bi.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if chars_eq(x, y) => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_without_star() {
        assert!(matches("claude-sonnet-4-5", "claude-sonnet-4-5"));
        assert!(matches("Claude-Sonnet-4-5", "claude-SONNET-4-5"));
        assert!(!matches("claude-sonnet-4-5", "claude-sonnet-4-5-20250929"));
        assert!(!matches("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"));
    }

    #[test]
    fn infix_and_multiple_stars() {
        assert!(matches("*sonnet*", "claude-sonnet-4-5"));
        assert!(matches("*SONNET*", "claude-sonnet-4-5"));
        assert!(matches("*sonnet*", "sonnet"));
        assert!(!matches("*sonnet*", "claude-opus-4-6"));
        assert!(matches("claude-*-4-5*", "claude-sonnet-4-5-20250929"));
        assert!(matches("claude-*-4-5*", "claude-haiku-4-5"));
        assert!(!matches("claude-*-4-5*", "claude-opus-4-6"));
        assert!(matches("a*b*c", "abc"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYYcd"));
        assert!(matches("a**c", "abbbc"));
        // Needs backtracking: the first candidate "-4" is not the right one.
        assert!(matches("*-4-5", "claude-4-4-5"));
        assert!(matches("claude-sonnet-4-5*", "claude-sonnet-4-5@20250929"));
    }

    #[test]
    fn star_and_empty() {
        assert!(matches("*", ""));
        assert!(matches("*", "anything at all"));
        assert!(matches("**", "x"));
        assert!(matches("", ""));
        assert!(!matches("", "x"));
        assert!(!matches("x", ""));
        assert!(matches("x*", "x"));
        assert!(!matches("x*", ""));
    }

    #[test]
    fn no_other_metacharacters() {
        assert!(matches("claude-sonnet-4-5[1m]", "claude-sonnet-4-5[1m]"));
        assert!(!matches("claude-sonnet-4-5[1m]", "claude-sonnet-4-51"));
        assert!(!matches("a?c", "abc"));
        assert!(matches("a.c", "A.C"));
        assert!(!matches("a.c", "abc"));
    }

    #[test]
    fn unicode_is_safe() {
        assert!(matches("*é*", "caféine"));
        assert!(matches("*É*", "caféine"));
        assert!(matches("日本*", "日本語"));
        assert!(!matches("日本*", "本語"));
        assert!(matches("*語", "日本語"));
    }

    #[test]
    fn specificity_counts_literals() {
        assert_eq!(specificity("*"), 0);
        assert_eq!(specificity(""), 0);
        assert_eq!(specificity("*sonnet*"), 6);
        assert!(specificity("claude-sonnet-4-5*") > specificity("*sonnet*"));
        assert!(is_wildcard("a*"));
        assert!(!is_wildcard("a"));
    }
}
