//! Identifier rewriting for tool names and tool-call ids (docs/protocols.md §4.2 steps 5–6, §2.9).
//!
//! Anthropic accepts tool names matching `^[a-zA-Z0-9_-]{1,128}$` and ids matching
//! `^[a-zA-Z0-9_-]+$`. Transcripts from other providers and MCP-style clients use other characters
//! (`server.tool`, `call:1`). Naive replacement makes `foo/bar` and `foo_bar` collide, so every
//! rewrite goes through a per-request two-way map that guarantees distinct outputs.

use crate::hashing::{HashMap, HashSet};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Longest tool name Anthropic accepts.
pub(crate) const MAX_TOOL_NAME: usize = 128;

/// True when `s` is non-empty, at most `max_len` bytes and only `[a-zA-Z0-9_-]`.
pub(crate) fn is_valid_ident(s: &str, max_len: usize) -> bool {
    !s.is_empty()
        && s.len() <= max_len
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Replaces every disallowed character (a whole multi-byte char counts once) with `_`.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// First 8 hex digits of SHA-256: a stable, readable disambiguator.
fn short_hash(s: &str) -> String {
    let digest = Sha256::digest(s.as_bytes());
    hex::encode(&digest[..4])
}

/// `base` cut to `max` bytes; `base` is ASCII after [`sanitize`], so any cut is a char boundary.
fn cut(base: &str, max: usize) -> &str {
    &base[..base.len().min(max)]
}

/// Produces an upstream identifier for `original` that is valid and not in `taken`.
/// Tries, in order: the sanitised name, sanitised + `_<hash8>`, then a counter.
fn fresh(original: &str, max_len: usize, taken: impl Fn(&str) -> bool) -> String {
    let base = sanitize(original);
    let first = if base.is_empty() {
        "x".to_owned()
    } else {
        cut(&base, max_len).to_owned()
    };
    if !taken(&first) {
        return first;
    }
    let suffix = short_hash(original);
    let hashed = format!("{}_{suffix}", cut(&base, max_len.saturating_sub(9)));
    if !taken(&hashed) {
        return hashed;
    }
    let mut n: u64 = 2;
    loop {
        let tail = format!("_{suffix}_{n}");
        let candidate = format!("{}{tail}", cut(&base, max_len.saturating_sub(tail.len())));
        if !taken(&candidate) {
            return candidate;
        }
        n += 1;
    }
}

/// Two-way map for tool names: client name ⇄ upstream name.
///
/// Call [`NameMap::reserve`] for every name of the request first, so valid names keep their
/// spelling and rewritten names avoid them; [`NameMap::map`] then never yields a collision.
///
/// Almost every name is valid and maps to itself, so those are kept once, in a set; only the
/// rewritten names (and internal ones) pay for a two-way map.
#[derive(Debug, Default, Clone)]
pub(crate) struct NameMap {
    /// Client names that are also their upstream names.
    same: HashSet<String>,
    /// client → upstream, for rewritten names.
    renamed_to_upstream: HashMap<String, String>,
    /// upstream → client, for rewritten names and upstream-only ones.
    renamed_to_client: HashMap<String, String>,
}

impl NameMap {
    /// Whether an upstream name is in use.
    fn upstream_taken(&self, name: &str) -> bool {
        self.same.contains(name) || self.renamed_to_client.contains_key(name)
    }

    /// Room for `n` more names that map to themselves, so reserving a request's tools grows the set once.
    pub(crate) fn expect(&mut self, n: usize) {
        self.same.reserve(n);
    }

    /// Claims a name that is already valid, so it maps to itself.
    pub(crate) fn reserve(&mut self, name: &str) {
        if is_valid_ident(name, MAX_TOOL_NAME)
            && !self.renamed_to_upstream.contains_key(name)
            && !self.upstream_taken(name)
        {
            self.same.insert(name.to_owned());
        }
    }

    /// Upstream name for a client name, allocating one on first use.
    pub(crate) fn map(&mut self, client: &str) -> String {
        if self.same.contains(client) {
            return client.to_owned();
        }
        if let Some(u) = self.renamed_to_upstream.get(client) {
            return u.clone();
        }
        if is_valid_ident(client, MAX_TOOL_NAME) && !self.upstream_taken(client) {
            self.same.insert(client.to_owned());
            return client.to_owned();
        }
        let upstream = fresh(client, MAX_TOOL_NAME, |c| self.upstream_taken(c));
        self.renamed_to_upstream
            .insert(client.to_owned(), upstream.clone());
        self.renamed_to_client
            .insert(upstream.clone(), client.to_owned());
        upstream
    }

    /// Allocates an upstream-only name (the structured-output tool) that no client name uses.
    pub(crate) fn allocate_internal(&mut self, wanted: &str) -> String {
        let name = if self.upstream_taken(wanted) {
            fresh(wanted, MAX_TOOL_NAME, |c| self.upstream_taken(c))
        } else {
            wanted.to_owned()
        };
        self.renamed_to_client.insert(name.clone(), name.clone());
        name
    }

    /// upstream → client for the names that were actually rewritten; the response side restores
    /// them (§4.2 step 6).
    pub(crate) fn renamed(&self) -> BTreeMap<String, String> {
        self.renamed_to_upstream
            .iter()
            .filter(|(c, u)| c != u)
            .map(|(c, u)| (u.clone(), c.clone()))
            .collect()
    }
}

/// Tool-call id rewriting (§4.2 step 5). Ids are request-internal (responses carry fresh
/// upstream ids), so no reverse map is needed; but one mapping must serve both the `tool_use` and
/// its `tool_result`. A client id reused in a later assistant turn (some providers number calls
/// `call_0`, `call_1`… per turn) gets a fresh upstream id, because Anthropic requires unique ids;
/// a `tool` message answers the most recent call with its id.
#[derive(Debug, Default, Clone)]
pub(crate) struct IdMap<'r> {
    /// client id → upstream id of its most recent call.
    current: HashMap<&'r str, Cow<'r, str>>,
    used: HashSet<Cow<'r, str>>,
}

/// No practical limit exists for ids; this only bounds pathological inputs.
const MAX_ID: usize = 256;

impl<'r> IdMap<'r> {
    /// Registers a new occurrence of a client tool-call id and returns its upstream id (the client's
    /// own spelling, borrowed, when it is valid and not used yet).
    pub(crate) fn new_call(&mut self, client: &'r str) -> Cow<'r, str> {
        let upstream = if is_valid_ident(client, MAX_ID) && !self.used.contains(client) {
            Cow::Borrowed(client)
        } else {
            Cow::Owned(fresh(client, MAX_ID, |c| self.used.contains(c)))
        };
        self.used.insert(upstream.clone());
        self.current.insert(client, upstream.clone());
        upstream
    }

    /// Upstream id of the most recent call with this client id, if any.
    pub(crate) fn lookup(&self, client: &str) -> Option<&Cow<'r, str>> {
        self.current.get(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_unchanged_and_no_collisions() {
        let mut m = NameMap::default();
        for n in ["foo_bar", "foo/bar", "foo.bar", "get_weather"] {
            m.reserve(n);
        }
        assert_eq!(m.map("foo_bar"), "foo_bar");
        assert_eq!(m.map("get_weather"), "get_weather");
        let a = m.map("foo/bar");
        let b = m.map("foo.bar");
        assert_ne!(a, "foo_bar");
        assert_ne!(a, b);
        assert!(is_valid_ident(&a, MAX_TOOL_NAME) && is_valid_ident(&b, MAX_TOOL_NAME));
        assert_eq!(m.map("foo/bar"), a, "stable");
        let r = m.renamed();
        assert_eq!(r.get(&a).map(String::as_str), Some("foo/bar"));
        assert_eq!(r.get(&b).map(String::as_str), Some("foo.bar"));
        assert!(!r.contains_key("foo_bar"));
    }

    #[test]
    fn odd_names() {
        let mut m = NameMap::default();
        let long = "a".repeat(300);
        for n in ["", "日本語", "___", "_", &long] {
            let u = m.map(n);
            assert!(is_valid_ident(&u, MAX_TOOL_NAME), "{n:?} -> {u:?}");
        }
        // "日本語" sanitises to "___", which then must not steal the valid "___".
        let mut m = NameMap::default();
        m.reserve("___");
        let u = m.map("日本語");
        assert_ne!(u, "___");
        assert_eq!(m.map("___"), "___");
    }

    #[test]
    fn internal_name_avoids_client_names() {
        let mut m = NameMap::default();
        m.reserve("json_response");
        m.map("json_response");
        let internal = m.allocate_internal("json_response");
        assert_ne!(internal, "json_response");
    }

    #[test]
    fn ids_reused_across_turns_get_fresh_ids() {
        let mut ids = IdMap::default();
        let a = ids.new_call("call_0");
        assert_eq!(a, "call_0");
        assert_eq!(ids.lookup("call_0").map(|c| c.as_ref()), Some("call_0"));
        let b = ids.new_call("call_0");
        assert_ne!(a, b);
        assert_eq!(ids.lookup("call_0"), Some(&b));
        let c = ids.new_call("call:1");
        assert!(is_valid_ident(&c, 256));
        assert!(ids.lookup("nope").is_none());
    }
}
