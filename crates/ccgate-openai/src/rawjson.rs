//! A strict, borrowing JSON reader for the request fast path ([`crate::fast`]).
//!
//! [`parse`] builds a tree whose strings are the still-escaped tokens of the input, so text can be
//! copied into the translated body without being unescaped and escaped again, and whose objects and
//! arrays remember their source text, so a subtree (a tool schema, a `cache_control` object) can be
//! copied whole.
//!
//! The reader accepts a **subset** of what `serde_json` accepts, with the same meaning. Whenever a
//! document is not plainly equivalent under both readers it answers `None`, and the caller falls
//! back to the `serde_json::Value` path, which produces the exact result or 400. Refused here:
//! * anything `serde_json` rejects (syntax, control characters in strings, bad escapes, lone
//!   surrogates, numbers out of range);
//! * duplicate keys in any object (`Value` keeps the last one; copying the text would keep both);
//! * nesting deeper than [`MAX_DEPTH`] (`serde_json` stops at 128);
//! * numbers whose `f64` conversion by `serde_json` might not be exact (more than 15 significant
//!   digits, or a decimal exponent beyond ±22), and integers of more than 18 digits: copied text
//!   must mean exactly what the re-serialised `Value` would.

use serde_json::Value;
use std::borrow::Cow;

/// Deepest nesting accepted (objects and arrays), well below `serde_json`'s limit of 128.
pub(crate) const MAX_DEPTH: usize = 100;

/// A JSON string token as it appears in the input.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JsonStr<'a> {
    /// The token with its quotes and escapes: valid JSON as it stands.
    pub quoted: &'a str,
    /// Whether the token contains a backslash escape.
    escaped: bool,
}

impl<'a> JsonStr<'a> {
    /// The text between the quotes, still escaped.
    fn inner(&self) -> &'a str {
        &self.quoted[1..self.quoted.len() - 1]
    }

    /// The string value. `None` cannot happen for tokens produced by [`parse`]; callers treat it as
    /// "not for the fast path".
    pub(crate) fn decoded(&self) -> Option<Cow<'a, str>> {
        if self.escaped {
            unescape(self.inner()).map(Cow::Owned)
        } else {
            Some(Cow::Borrowed(self.inner()))
        }
    }

    /// Whether the value equals `s`.
    pub(crate) fn is(&self, s: &str) -> bool {
        if self.escaped {
            self.decoded().is_some_and(|d| d == s)
        } else {
            // Bytes, not `inner()`: the quotes are ASCII, so no char-boundary checks are needed.
            let q = self.quoted.as_bytes();
            q.len() == s.len() + 2 && &q[1..q.len() - 1] == s.as_bytes()
        }
    }

    /// Whether the value is the empty string.
    pub(crate) fn is_empty(&self) -> bool {
        self.quoted.len() == 2
    }

    /// [`crate::json::is_blank`] of the value, usually decided by the first character.
    pub(crate) fn is_blank(&self) -> Option<bool> {
        for c in self.inner().chars() {
            if c == '\\' {
                return self.decoded().map(|d| crate::json::is_blank(&d));
            }
            if !c.is_whitespace() {
                return Some(false);
            }
        }
        Some(true)
    }
}

/// The value of a string token's inside. Tokens from [`parse`] hold only the escapes it validated
/// (surrogates in pairs); `None` for anything else, which callers treat as "not for the fast path".
fn unescape(inner: &str) -> Option<String> {
    let mut out = String::with_capacity(inner.len());
    let mut rest = inner;
    while let Some(at) = memchr::memchr(b'\\', rest.as_bytes()) {
        out.push_str(&rest[..at]);
        let esc = rest.as_bytes().get(at + 1)?;
        rest = &rest[at + 2..];
        let c = match esc {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(rest.as_bytes())?;
                rest = &rest[4..];
                if (0xD800..0xDC00).contains(&hi) {
                    let lo = hex4(rest.strip_prefix("\\u")?.as_bytes())?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return None;
                    }
                    rest = &rest[6..];
                    char::from_u32(
                        0x10000 + ((u32::from(hi) - 0xD800) << 10) + (u32::from(lo) - 0xDC00),
                    )?
                } else {
                    char::from_u32(u32::from(hi))?
                }
            }
            _ => return None,
        };
        out.push(c);
    }
    out.push_str(rest);
    Some(out)
}

/// The value of the four hex digits that start `s` (a `\\u` escape's), for the reader and the decoder alike.
fn hex4(s: &[u8]) -> Option<u16> {
    s.get(..4)?.iter().try_fold(0u16, |n, &d| {
        Some(n * 16 + (d as char).to_digit(16)? as u16)
    })
}

/// A parsed JSON value borrowing from the input.
#[derive(Debug, Clone)]
pub(crate) enum Raw<'a> {
    Null,
    Bool(bool),
    /// The number token, exactly as written.
    Num(&'a str),
    Str(JsonStr<'a>),
    Arr {
        span: &'a str,
        items: Vec<Raw<'a>>,
    },
    /// Members in input order; keys are unique.
    Obj {
        span: &'a str,
        members: Vec<(JsonStr<'a>, Raw<'a>)>,
    },
}

impl<'a> Raw<'a> {
    /// The value's JSON text in the input (for literals, their canonical spelling).
    pub(crate) fn span(&self) -> &'a str {
        match self {
            Raw::Null => "null",
            Raw::Bool(true) => "true",
            Raw::Bool(false) => "false",
            Raw::Num(s) => s,
            Raw::Str(s) => s.quoted,
            Raw::Arr { span, .. } | Raw::Obj { span, .. } => span,
        }
    }

    /// Member `key` of an object (`None` for other values), like `Value::get`.
    pub(crate) fn get(&self, key: &str) -> Option<&Raw<'a>> {
        match self {
            Raw::Obj { members, .. } => members.iter().find(|(k, _)| k.is(key)).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Member `key`, absent when missing or `null`, like [`crate::json::field`].
    pub(crate) fn field(&self, key: &str) -> Option<&Raw<'a>> {
        self.get(key).filter(|v| !matches!(v, Raw::Null))
    }

    pub(crate) fn as_str(&self) -> Option<&JsonStr<'a>> {
        match self {
            Raw::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_array(&self) -> Option<&[Raw<'a>]> {
        match self {
            Raw::Arr { items, .. } => Some(items),
            _ => None,
        }
    }

    pub(crate) fn is_object(&self) -> bool {
        matches!(self, Raw::Obj { .. })
    }

    /// Whether this is the string `s`.
    pub(crate) fn is_str(&self, s: &str) -> bool {
        self.as_str().is_some_and(|j| j.is(s))
    }

    /// The same value as a `serde_json::Value` (parsed from its text, so exactly what the slow path
    /// holds for it). `None` cannot happen for values produced by [`parse`].
    pub(crate) fn to_value(&self) -> Option<Value> {
        serde_json::from_str(self.span()).ok()
    }
}

/// Parses a whole document, or `None` when it is outside the accepted subset (see the module
/// documentation). Every level is checked, but containers deeper than [`BUILD_DEPTH`] come back
/// empty (their `span` is all anyone reads of them).
pub(crate) fn parse(text: &str) -> Option<Raw<'_>> {
    Parser::new(text, BUILD_DEPTH).document()
}

/// The deepest container a translation looks into: a tool call's `function` object (body →
/// `messages` → message → `tool_calls` → call → `function`). Deeper ones (the insides of tool
/// schemas, of tool arguments, of image parts) are only ever copied as text, so building them
/// would be allocation for nothing.
const BUILD_DEPTH: usize = 6;

/// [`BUILD_DEPTH`] under the top-level `tools`: a tool (3) → `function` (4) → `parameters` (5), whose
/// members are read for `type` and whose values (`properties`, `required`, …) are only copied as text.
/// A Claude Code request carries two dozen schemas, so their insides are most of the tree otherwise.
const TOOLS_BUILD_DEPTH: usize = 5;

/// Whether `text` is one JSON object in the accepted subset (every check of [`parse`], nothing built).
pub(crate) fn is_object_document(text: &str) -> bool {
    matches!(Parser::new(text, 0).document(), Some(Raw::Obj { .. }))
}

/// [`parse`] with every container built, for tests of the reader itself.
#[cfg(test)]
fn parse_full(text: &str) -> Option<Raw<'_>> {
    Parser::new(text, usize::MAX).document()
}

/// Like [`parse`] (same checks of the whole document), but only the top-level container gets its
/// members or items: nested containers come back empty. For reading one top-level field cheaply.
pub(crate) fn parse_shallow(text: &str) -> Option<Raw<'_>> {
    Parser::new(text, 1).document()
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
    /// Containers deeper than this are checked but left empty.
    build_depth: usize,
    /// Keys of the objects being read, innermost last, for the duplicate check.
    keys: Vec<JsonStr<'a>>,
    /// Members and items of the containers being built, innermost last. Each container takes its own run off
    /// the top when it closes, into a vector of exactly its size: one allocation per container, where pushing
    /// into a fresh vector grew it two or three times.
    members: Vec<(JsonStr<'a>, Raw<'a>)>,
    items: Vec<Raw<'a>>,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, build_depth: usize) -> Self {
        Self {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            depth: 0,
            build_depth,
            keys: Vec::new(),
            members: Vec::new(),
            items: Vec::new(),
        }
    }

    fn document(mut self) -> Option<Raw<'a>> {
        self.skip_ws();
        let v = self.value()?;
        self.skip_ws();
        (self.pos == self.bytes.len()).then_some(v)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn value(&mut self) -> Option<Raw<'a>> {
        match self.peek()? {
            b'{' | b'[' if self.depth >= self.build_depth => self.checked_only(),
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string().map(Raw::Str),
            b't' => self.literal("true", Raw::Bool(true)),
            b'f' => self.literal("false", Raw::Bool(false)),
            b'n' => self.literal("null", Raw::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// A container below the build depth, which is only checked. Clients send the same tool schemas (and
    /// often the same tool-call arguments) on every turn, so a large subtree that passed is remembered per
    /// thread by its exact bytes, and the next time it is recognised by one comparison instead of being read
    /// token by token. A complete JSON value's bytes decide where it ends, so input that starts with a
    /// remembered subtree holds exactly that subtree there. The check depends on nothing but the bytes and the
    /// depth it starts at (for [`MAX_DEPTH`]), so a remembered subtree passes again at the same or a shallower
    /// depth.
    fn checked_only(&mut self) -> Option<Raw<'a>> {
        let start = self.pos;
        let rest = &self.bytes[start..];
        if let Some(len) = checked::find(rest, self.depth) {
            self.pos = start + len;
            let span = self.text.get(start..self.pos)?;
            return Some(if rest[0] == b'{' {
                Raw::Obj {
                    span,
                    members: Vec::new(),
                }
            } else {
                Raw::Arr {
                    span,
                    items: Vec::new(),
                }
            });
        }
        let v = self.container()?;
        checked::insert(&self.bytes[start..self.pos], self.depth);
        Some(v)
    }

    /// The object or array at `pos`.
    fn container(&mut self) -> Option<Raw<'a>> {
        if self.peek()? == b'{' {
            self.object()
        } else {
            self.array()
        }
    }

    fn literal(&mut self, word: &str, v: Raw<'a>) -> Option<Raw<'a>> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Some(v)
        } else {
            None
        }
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// After a member or element: `,` (then whitespace) or the closing bracket. Returns whether the
    /// container continues.
    fn next_or_close(&mut self, close: u8) -> Option<bool> {
        self.skip_ws();
        match self.peek()? {
            b',' => {
                self.pos += 1;
                self.skip_ws();
                Some(true)
            }
            c if c == close => {
                self.pos += 1;
                Some(false)
            }
            _ => None,
        }
    }

    fn object(&mut self) -> Option<Raw<'a>> {
        let start = self.pos;
        self.enter()?;
        let build = self.depth <= self.build_depth;
        let keys_start = self.keys.len();
        let members_start = self.members.len();
        self.pos += 1;
        self.skip_ws();
        if self.peek()? == b'}' {
            self.pos += 1;
        } else {
            loop {
                if self.peek()? != b'"' {
                    return None;
                }
                let key = self.string()?;
                self.skip_ws();
                if self.peek()? != b':' {
                    return None;
                }
                self.pos += 1;
                self.skip_ws();
                let outer_build_depth = self.build_depth;
                if self.depth == 1 && key.quoted == "\"tools\"" {
                    self.build_depth = self.build_depth.min(TOOLS_BUILD_DEPTH);
                }
                let v = self.value();
                self.build_depth = outer_build_depth;
                let v = v?;
                self.keys.push(key);
                if build {
                    self.members.push((key, v));
                }
                if !self.next_or_close(b'}')? {
                    break;
                }
            }
        }
        self.depth -= 1;
        if has_duplicate_keys(&self.keys[keys_start..])? {
            return None;
        }
        self.keys.truncate(keys_start);
        Some(Raw::Obj {
            span: &self.text[start..self.pos],
            members: self.members.drain(members_start..).collect(),
        })
    }

    fn array(&mut self) -> Option<Raw<'a>> {
        let start = self.pos;
        self.enter()?;
        let build = self.depth <= self.build_depth;
        let items_start = self.items.len();
        self.pos += 1;
        self.skip_ws();
        if self.peek()? == b']' {
            self.pos += 1;
        } else {
            loop {
                let v = self.value()?;
                if build {
                    self.items.push(v);
                }
                if !self.next_or_close(b']')? {
                    break;
                }
            }
        }
        self.depth -= 1;
        Some(Raw::Arr {
            span: &self.text[start..self.pos],
            items: self.items.drain(items_start..).collect(),
        })
    }

    fn string(&mut self) -> Option<JsonStr<'a>> {
        let start = self.pos;
        if let Some(end) = short_plain_string_end(self.bytes, start + 1) {
            self.pos = end + 1;
            return Some(JsonStr {
                quoted: self.text.get(start..=end)?,
                escaped: false,
            });
        }
        let mut i = start + 1;
        let mut escaped = false;
        loop {
            i = find_string_stop(self.bytes, i, &mut escaped);
            match self.bytes.get(i) {
                Some(b'"') => {
                    self.pos = i + 1;
                    return Some(JsonStr {
                        quoted: self.text.get(start..=i)?,
                        escaped,
                    });
                }
                Some(b'\\') => {
                    escaped = true;
                    self.pos = i;
                    self.escape()?;
                    i = self.pos;
                }
                // A control character (serde_json rejects it), or the end of the input.
                _ => return None,
            }
        }
    }

    /// One escape sequence at `pos` (the backslash), validated as `serde_json` validates escapes
    /// of strings: surrogates must come in leading/trailing pairs.
    fn escape(&mut self) -> Option<()> {
        match *self.bytes.get(self.pos + 1)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {
                self.pos += 2;
                Some(())
            }
            b'u' => {
                let n = hex4(self.bytes.get(self.pos + 2..)?)?;
                self.pos += 6;
                match n {
                    0xDC00..=0xDFFF => None,
                    0xD800..=0xDBFF => {
                        if self.bytes.get(self.pos..self.pos + 2)? != b"\\u" {
                            return None;
                        }
                        let n2 = hex4(self.bytes.get(self.pos + 2..)?)?;
                        self.pos += 6;
                        (0xDC00..=0xDFFF).contains(&n2).then_some(())
                    }
                    _ => Some(()),
                }
            }
            _ => None,
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Option<Raw<'a>> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let int_digits = match self.peek()? {
            b'0' => {
                self.pos += 1;
                1
            }
            b'1'..=b'9' => self.digits(),
            _ => return None,
        };
        let mut frac_digits = 0;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            frac_digits = self.digits();
            if frac_digits == 0 {
                return None;
            }
        }
        let mut exponent: Option<i64> = None;
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            let negative = match self.peek() {
                Some(b'-') => {
                    self.pos += 1;
                    true
                }
                Some(b'+') => {
                    self.pos += 1;
                    false
                }
                _ => false,
            };
            let exp_start = self.pos;
            let n = self.digits();
            if n == 0 || n > 4 {
                return None;
            }
            let e: i64 = self.text[exp_start..self.pos].parse().ok()?;
            exponent = Some(if negative { -e } else { e });
        }
        let token = &self.text[start..self.pos];
        let exact = match exponent {
            None if frac_digits == 0 => int_digits <= 18,
            e => {
                // serde_json computes significand × 10^scale: exact when the significand fits in
                // f64's 53 bits and 10^scale is an exact f64 (|scale| ≤ 22).
                let scale = e.unwrap_or(0) - frac_digits as i64;
                let significant = token
                    .bytes()
                    .take_while(|b| !matches!(b, b'e' | b'E'))
                    .filter(u8::is_ascii_digit)
                    .skip_while(|b| *b == b'0')
                    .count();
                significant <= 15 && scale.abs() <= 22
            }
        };
        exact.then_some(Raw::Num(token))
    }
}

/// Subtrees that passed [`Parser::checked_only`]'s full check, per thread.
mod checked {
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// Smaller subtrees are cheaper to check than to look up.
    pub(super) const MIN_LEN: usize = 128;
    /// Subtrees are found by a fingerprint of their first bytes (at most [`MIN_LEN`], so every remembered
    /// subtree has them), then compared in full.
    const KEY_LEN: usize = 64;
    /// Remembered subtrees sharing a fingerprint: bounds the comparisons one lookup can cost.
    const MAX_PER_KEY: usize = 8;
    /// Past either bound the memory is dropped and refilled by the next requests.
    const MAX_ENTRIES: usize = 1024;
    const MAX_BYTES: usize = 4 << 20;

    #[derive(Default)]
    struct Checked {
        /// By fingerprint of the first [`KEY_LEN`] bytes: each subtree's bytes and the deepest starting depth
        /// it passed at.
        entries: HashMap<u64, Vec<Entry>>,
        count: usize,
        bytes: usize,
    }

    struct Entry {
        bytes: Box<[u8]>,
        max_depth: usize,
    }

    thread_local! {
        static CHECKED: RefCell<Checked> = RefCell::new(Checked::default());
    }

    fn fingerprint(prefix: &[u8; KEY_LEN]) -> u64 {
        let mut h = 0u64;
        for w in prefix.chunks_exact(8) {
            let w = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
            h = (h.rotate_left(23) ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
        h
    }

    fn key(bytes: &[u8]) -> Option<u64> {
        if bytes.len() < MIN_LEN {
            return None;
        }
        bytes.first_chunk::<KEY_LEN>().map(fingerprint)
    }

    /// Length of the remembered subtree that `rest` starts with, if one passed at `depth` or deeper.
    pub(super) fn find(rest: &[u8], depth: usize) -> Option<usize> {
        let key = key(rest)?;
        CHECKED
            .try_with(|c| {
                c.borrow().entries.get(&key).and_then(|bucket| {
                    bucket.iter().find_map(|e| {
                        (depth <= e.max_depth && rest.starts_with(&e.bytes))
                            .then_some(e.bytes.len())
                    })
                })
            })
            .ok()
            .flatten()
    }

    /// Remembers `subtree`, which passed the full check starting at `depth`.
    pub(super) fn insert(subtree: &[u8], depth: usize) {
        let Some(key) = key(subtree) else {
            return;
        };
        let _ = CHECKED.try_with(|c| {
            let mut c = c.borrow_mut();
            if let Some(bucket) = c.entries.get_mut(&key) {
                if let Some(e) = bucket.iter_mut().find(|e| *e.bytes == *subtree) {
                    e.max_depth = e.max_depth.max(depth);
                    return;
                }
                if bucket.len() >= MAX_PER_KEY {
                    return;
                }
            }
            if c.count >= MAX_ENTRIES || c.bytes + subtree.len() > MAX_BYTES {
                c.entries.clear();
                c.count = 0;
                c.bytes = 0;
            }
            c.count += 1;
            c.bytes += subtree.len();
            c.entries.entry(key).or_default().push(Entry {
                bytes: subtree.into(),
                max_depth: depth,
            });
        });
    }
}

/// Keys must be unique (see the module documentation). `None` when a key cannot be decoded.
fn has_duplicate_keys(keys: &[JsonStr<'_>]) -> Option<bool> {
    if keys.len() < 2 {
        return Some(false);
    }
    if keys.len() <= 16 && !keys.iter().any(|k| k.escaped) {
        return Some(
            keys.iter()
                .enumerate()
                .any(|(i, k)| keys[..i].iter().any(|p| p.quoted == k.quoted)),
        );
    }
    let mut decoded: Vec<Cow<'_, str>> = Vec::with_capacity(keys.len());
    for k in keys {
        decoded.push(k.decoded()?);
    }
    decoded.sort_unstable();
    Some(decoded.windows(2).any(|w| w[0] == w[1]))
}

/// Index of the first byte at or after `from` where a string's plain run stops: a `"`, a control character, or
/// a backslash that does not start one of the two-byte escapes (`\"` `\\` `\/` `\b` `\f` `\n` `\r` `\t`);
/// `bytes.len()` when there is none. The two-byte escapes are valid wherever they appear, so they are stepped
/// over here, inside the block loop, and `escaped` is set: a prompt's `\n`s no longer each cost a return to the
/// reader and a fresh scan. Sixteen bytes at a time with SSE2 (part of every x86_64 CPU), thirty-two with AVX2
/// for long runs, and byte by byte for the tail and on other targets.
fn find_string_stop(bytes: &[u8], from: usize, escaped: &mut bool) -> usize {
    #[allow(unused_mut)]
    let mut i = from;
    #[cfg(target_arch = "x86_64")]
    {
        // Most strings (keys, names, short values) end within their first 16 bytes: one SSE2 block, and only
        // longer runs go on to the wider AVX2 loop (whose call and set-up would cost more than they save here).
        if i + 16 <= bytes.len() {
            match scan_sse2(bytes, i, 1, escaped) {
                Ok(found) => return found,
                Err(rest) => i = rest,
            }
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 was just detected on this CPU.
                match unsafe { scan_avx2(bytes, i, escaped) } {
                    Ok(found) => return found,
                    Err(rest) => i = rest,
                }
            }
        }
        match scan_sse2(bytes, i, usize::MAX, escaped) {
            Ok(found) => return found,
            Err(rest) => i = rest,
        }
    }
    while let Some(&b) = bytes.get(i) {
        if b == b'\\' && bytes.get(i + 1).is_some_and(|&n| is_two_byte_escape(n)) {
            *escaped = true;
            i += 2;
            continue;
        }
        if b == b'"' || b == b'\\' || b < 0x20 {
            return i;
        }
        i += 1;
    }
    bytes.len()
}

/// Index of the closing quote of a string whose inside starts at `from`, when one 16-byte block shows it before
/// any backslash or control character. Keys and most values are that short and plain, and this check is inlined
/// into the reader, so they do not pay for [`find_string_stop`]'s calls; `None` sends the rest there.
#[inline(always)]
fn short_plain_string_end(bytes: &[u8], from: usize) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        if from + 16 > bytes.len() {
            return None;
        }
        let mask = sse2_stop_mask(bytes, from);
        if mask == 0 {
            return None;
        }
        let at = from + mask.trailing_zeros() as usize;
        (bytes.get(at) == Some(&b'"')).then_some(at)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (bytes, from);
        None
    }
}

/// The byte after a backslash in a two-byte escape.
fn is_two_byte_escape(b: u8) -> bool {
    matches!(b, b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't')
}

/// A block's hits (`mask`, bit k for `bytes[block + k]`, a block `width` bytes wide), walked in order: two-byte
/// escapes are stepped over; anything else stops the scan. `Err(next)` when the block holds no stop, `next`
/// being where the scan goes on (past an escape that ends beyond the block, or the next block).
#[inline(always)]
fn walk_hits(
    bytes: &[u8],
    block: usize,
    width: usize,
    mut mask: u64,
    escaped: &mut bool,
) -> Result<usize, usize> {
    while mask != 0 {
        let at = block + mask.trailing_zeros() as usize;
        if bytes[at] != b'\\' || !bytes.get(at + 1).is_some_and(|&n| is_two_byte_escape(n)) {
            return Ok(at);
        }
        *escaped = true;
        let next = at + 2 - block;
        if next >= width {
            return Err(block + next);
        }
        mask &= !0u64 << next;
    }
    Err(block + width)
}

/// `Ok(index)` of the first stop (see [`find_string_stop`]) found in whole 16-byte blocks from `from`, at most
/// `max_blocks` of them, or `Err(index)` where the scan goes on (the tail shorter than 16 bytes, or the block
/// after the last one scanned).
#[cfg(target_arch = "x86_64")]
fn scan_sse2(
    bytes: &[u8],
    from: usize,
    max_blocks: usize,
    escaped: &mut bool,
) -> Result<usize, usize> {
    let mut i = from;
    let mut blocks = 0;
    while i + 16 <= bytes.len() && blocks < max_blocks {
        let mask = sse2_stop_mask(bytes, i);
        if mask == 0 {
            i += 16;
        } else {
            match walk_hits(bytes, i, 16, u64::from(mask), escaped) {
                Ok(stop) => return Ok(stop),
                Err(next) => i = next,
            }
        }
        blocks += 1;
    }
    Err(i)
}

/// Bit k set when `bytes[at + k]` (k < 16) is `"`, a backslash or a control character. Panics unless
/// `at + 16 <= bytes.len()`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn sse2_stop_mask(bytes: &[u8], at: usize) -> u32 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    let block = &bytes[at..at + 16];
    // SAFETY: SSE2 is in the x86_64 baseline, so these intrinsics are always available; the load reads the 16
    // bytes of `block` (unaligned loads are allowed).
    unsafe {
        let x = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        // x <= 0x1f (unsigned) exactly when min(x, 0x1f) == x.
        let control = _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8(0x1f)), x);
        let hits = _mm_or_si128(
            _mm_or_si128(
                _mm_cmpeq_epi8(x, _mm_set1_epi8(b'"' as i8)),
                _mm_cmpeq_epi8(x, _mm_set1_epi8(b'\\' as i8)),
            ),
            control,
        );
        _mm_movemask_epi8(hits) as u32
    }
}

/// [`scan_sse2`] 32 bytes at a time and without a block limit, for CPUs with AVX2 (most x86_64 servers): the
/// prompts and tool results that make up most of a Claude Code request are long strings.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scan_avx2(bytes: &[u8], from: usize, escaped: &mut bool) -> Result<usize, usize> {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_min_epu8, _mm256_movemask_epi8,
        _mm256_or_si256, _mm256_set1_epi8,
    };
    let mut i = from;
    let quote = _mm256_set1_epi8(b'"' as i8);
    let backslash = _mm256_set1_epi8(b'\\' as i8);
    let max_control = _mm256_set1_epi8(0x1f);
    while i + 32 <= bytes.len() {
        // SAFETY: the loop condition keeps the 32 bytes at `i..i + 32` inside `bytes` (unaligned loads are
        // allowed).
        let x = unsafe { _mm256_loadu_si256(bytes.as_ptr().add(i).cast::<__m256i>()) };
        // x <= 0x1f (unsigned) exactly when min(x, 0x1f) == x.
        let control = _mm256_cmpeq_epi8(_mm256_min_epu8(x, max_control), x);
        let hits = _mm256_or_si256(
            _mm256_or_si256(_mm256_cmpeq_epi8(x, quote), _mm256_cmpeq_epi8(x, backslash)),
            control,
        );
        let mask = _mm256_movemask_epi8(hits) as u32;
        if mask == 0 {
            i += 32;
        } else {
            match walk_hits(bytes, i, 32, u64::from(mask), escaped) {
                Ok(stop) => return Ok(stop),
                Err(next) => i = next,
            }
        }
    }
    Err(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same_as_serde(text: &str) {
        let Some(raw) = parse_full(text) else {
            return;
        };
        let expected: Value = serde_json::from_str(text).expect("accepted by serde_json");
        assert_eq!(raw.to_value(), Some(expected.clone()), "{text}");
        assert_eq!(to_value_by_hand(&raw), expected, "{text}");
    }

    /// Builds the Value from the tree itself (keys and strings decoded by [`JsonStr::decoded`]).
    fn to_value_by_hand(raw: &Raw<'_>) -> Value {
        match raw {
            Raw::Null => Value::Null,
            Raw::Bool(b) => Value::Bool(*b),
            Raw::Num(n) => serde_json::from_str(n).unwrap(),
            Raw::Str(s) => Value::String(s.decoded().unwrap().into_owned()),
            Raw::Arr { items, .. } => Value::Array(items.iter().map(to_value_by_hand).collect()),
            Raw::Obj { members, .. } => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.decoded().unwrap().into_owned(), to_value_by_hand(v)))
                    .collect(),
            ),
        }
    }

    fn decoded_token(token: &str) -> Option<String> {
        Some(parse_full(token)?.as_str()?.decoded()?.into_owned())
    }

    /// Every char as a `\\uXXXX` escape (surrogate pairs above U+FFFF), in upper or lower case.
    fn all_escaped(s: &str, upper: bool) -> String {
        let mut out = String::from("\"");
        for unit in s.encode_utf16() {
            if upper {
                out.push_str(&format!("\\u{unit:04X}"));
            } else {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn unescaping_matches_serde_json() {
        for token in [
            r#""plain""#,
            r#""a\"b\\c\/d\b\f\n\r\t""#,
            r#""\u0041\u00e9\u4e2d\ud83d\ude00 tail""#,
            r#""\uD83D\uDE00 mixed \u00E9 \u0000""#,
            r#""ends in an escape\\""#,
            r#""\\u0041 is not an escape""#,
        ] {
            let expected: String = serde_json::from_str(token).unwrap();
            assert_eq!(decoded_token(token), Some(expected), "{token}");
        }
        for bad in [r#""\ud83d alone""#, r#""\ude00""#, r#""\u+041""#, r#""\x""#] {
            assert!(serde_json::from_str::<String>(bad).is_err(), "{bad}");
            assert_eq!(decoded_token(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_string_unescapes_as_serde_json_reads_it(s in proptest::prelude::any::<String>()) {
            for token in [serde_json::to_string(&s).unwrap(), all_escaped(&s, true), all_escaped(&s, false)] {
                proptest::prop_assert_eq!(decoded_token(&token), Some(s.clone()), "{}", token);
            }
        }
    }

    #[test]
    fn containers_below_the_build_depth_keep_only_their_span() {
        let text = r#"{"a":[{"b":{"c":[{"d":{"e":1}}]}}]}"#;
        let raw = parse(text).unwrap();
        // Depth 1 root, 2 `a`, 3 its object, 4 `b`, 5 `c`, 6 its object, 7 `d`: not built.
        let six = raw.get("a").and_then(Raw::as_array).unwrap()[0]
            .get("b")
            .and_then(|b| b.get("c"))
            .and_then(Raw::as_array)
            .unwrap()[0]
            .clone();
        let seven = six.get("d").unwrap();
        assert_eq!(seven.span(), r#"{"e":1}"#);
        assert!(seven.get("e").is_none());
        assert_eq!(parse_full(text).unwrap().to_value(), raw.to_value());
        // Checks still cover every level.
        assert!(parse(r#"{"a":[{"b":{"c":[{"d":{"e":1,"e":2}}]}}]}"#).is_none());
        let raw_control = "{\"a\":[{\"b\":{\"c\":[{\"d\":{\"e\":\"x\u{1}y\"}}]}}]}";
        assert!(parse(raw_control).is_none());
        assert!(parse(&raw_control.replace('\u{1}', "")).is_some());
    }

    #[test]
    fn remembered_subtrees_pass_only_as_they_would_have() {
        // `is_object_document` builds nothing, so every container goes through `checked_only`.
        let long = "x".repeat(checked::MIN_LEN);
        let good = format!(
            r#"{{"type":"object","properties":{{"q":{{"type":"string","description":"{long}"}}}}}}"#
        );
        let wrapped = format!(r#"{{"a":[{{"b":{{"c":[{{"d":{good}}}]}}}}]}}"#);
        for _ in 0..3 {
            assert!(is_object_document(&good));
            let raw = parse(&wrapped).unwrap();
            let d = raw.get("a").and_then(Raw::as_array).unwrap()[0]
                .get("b")
                .and_then(|b| b.get("c"))
                .and_then(Raw::as_array)
                .unwrap()[0]
                .get("d")
                .unwrap()
                .span();
            assert_eq!(d, good);
        }
        // One byte off is another subtree, checked in full: a duplicate key, a raw control character, a
        // difference only at the end (same fingerprint as `good`), a subtree cut short at the input's end.
        let dup = good.replace(r#""type":"string","#, r#""type":"string","type":"x","#);
        let control = good.replacen('x', "\u{1}", 1);
        let late = format!(
            "{}\u{1}{}",
            &good[..good.len() - 5],
            &good[good.len() - 4..]
        );
        let unclosed = good[..good.len() - 1].to_owned();
        for bad in [dup, control, late, unclosed] {
            assert!(bad.len() >= checked::MIN_LEN);
            for _ in 0..2 {
                assert!(!is_object_document(&bad), "{bad}");
                assert!(parse(&wrapped.replace(&good, &bad)).is_none());
            }
        }
        // Nesting that was fine where a subtree was first seen is refused deeper down.
        let nested = format!("{}\"{long}\"{}", "[".repeat(60), "]".repeat(60));
        assert!(is_object_document(&format!(r#"{{"n":{nested}}}"#)));
        let deeper = format!("{}{nested}{}", "[".repeat(45), "]".repeat(45));
        assert!(!is_object_document(&format!(r#"{{"n":{deeper}}}"#)));
    }

    #[test]
    fn stops_are_found_in_every_position() {
        // Byte by byte: the reference for the SIMD blocks.
        let naive = |b: &[u8], from: usize| {
            let mut escaped = false;
            let mut i = from;
            while i < b.len() {
                if b[i] == b'\\' && b.get(i + 1).is_some_and(|n| b"\"\\/bfnrt".contains(n)) {
                    escaped = true;
                    i += 2;
                    continue;
                }
                if b[i] == b'"' || b[i] == b'\\' || b[i] < 0x20 {
                    return (i, escaped);
                }
                i += 1;
            }
            (b.len(), escaped)
        };
        // Up to 80 bytes: two AVX2 blocks, SSE2 blocks and the byte tail, found from any start, with escapes
        // (valid and not) placed across every block edge, alone and in runs.
        for len in 0..80 {
            for at in 0..len {
                for bad in [0u8, 0x1f, b'\n', b'"', b'\\', 0x20, b'!', 0x7f, 0xc3, 0xff] {
                    for after in [b'"', b'n', b'\\', b'u', b'x', b'/'] {
                        for fill in [b'a', 0x21, 0xe9, 0x5b, 0x5d, b'\\'] {
                            let mut v = vec![fill; len];
                            if fill == b'\\' {
                                // Runs of escapes: `\n\n\n…`.
                                for pair in v.chunks_mut(2) {
                                    pair[pair.len() - 1] = b'n';
                                    pair[0] = b'\\';
                                }
                            }
                            v[at] = bad;
                            if at + 1 < len {
                                v[at + 1] = after;
                            }
                            let starts =
                                [0, 1, 15, 17, 31, 33, at.saturating_sub(1), at, at + 1, len];
                            for from in starts.into_iter().filter(|&f| f <= len) {
                                let mut escaped = false;
                                let got = find_string_stop(&v, from, &mut escaped);
                                assert_eq!((got, escaped), naive(&v, from), "{v:?} from {from}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn accepts_plain_documents_with_serde_meaning() {
        for text in [
            r#"{"a":[1,-2,3.5,-0,0.25e2,1E-3,true,false,null,"x"],"b":{"c":"d\n\"\\\/\b\f\r\t\u00e9\ud83d\ude00"}}"#,
            " [ ] ",
            "{}",
            r#""\u0000""#,
            "123456789012345678",
            "-0.000000000000001",
            "0.000123456789012345",
            r#"{"k\u0065y":1,"key2":2}"#,
            "\"日本語\"",
        ] {
            assert!(parse(text).is_some(), "{text}");
            same_as_serde(text);
        }
    }

    #[test]
    fn refuses_what_serde_refuses_or_might_read_differently() {
        for text in [
            "",
            "{",
            "[1,]",
            r#"{"a":1,}"#,
            "01",
            "1.",
            "-",
            "tru",
            "nul",
            "[1] x",
            "\"\u{1}\"",
            r#""\x""#,
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ud800\u0041""#,
            r#"{"a":1,"a":2}"#,
            r#"{"a":1,"\u0061":2}"#,
            "1e400",
            "0.30000000000000004",
            "1234567890123456789",
            "1e23",
            "0.1234567890123456",
            "{\"a\" 1}",
        ] {
            assert!(parse(text).is_none(), "{text:?}");
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(parse(&deep).is_none());
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_some());
    }

    #[test]
    fn shallow_reads_the_top_level_and_checks_everything() {
        let raw = parse_shallow(r#"{"model":"m","messages":[{"a":1}],"o":{"x":[]}}"#).unwrap();
        assert!(raw.get("model").unwrap().is_str("m"));
        assert_eq!(raw.get("messages").unwrap().as_array().unwrap().len(), 0);
        assert_eq!(raw.get("o").unwrap().span(), r#"{"x":[]}"#);
        assert!(parse_shallow(r#"{"model":"m","messages":[{"a":1,"a":2}]}"#).is_none());
        assert!(parse_shallow(r#"{"model":"m","messages":[{"a":"\ud800"}]}"#).is_none());
        assert!(parse_shallow(r#"{"model":"m","x":1e999}"#).is_none());
    }

    #[test]
    fn tokens_and_spans() {
        let text = r#"{"t": "a\nb", "o": {"x": [1, 2]}, "n": null}"#;
        let raw = parse(text).unwrap();
        assert_eq!(raw.get("t").unwrap().span(), r#""a\nb""#);
        assert_eq!(
            raw.get("t").unwrap().as_str().unwrap().decoded().unwrap(),
            "a\nb"
        );
        assert_eq!(raw.get("o").unwrap().span(), r#"{"x": [1, 2]}"#);
        assert!(raw.get("n").is_some() && raw.field("n").is_none());
        let blank = parse(r#"[" \n\t", " \u00a0", "\u3000x", ""]"#).unwrap();
        let b: Vec<_> = blank
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().is_blank().unwrap())
            .collect();
        assert_eq!(b, [true, true, false, true]);
    }

    #[test]
    fn long_strings_with_specials_at_every_offset() {
        for n in 0..80 {
            let s = format!("\"{}\\n{}\"", "a".repeat(n), "b".repeat(80 - n));
            same_as_serde(&s);
            assert!(parse(&s).is_some());
            let ctl = format!("\"{}\u{1f}\"", "a".repeat(n));
            assert!(parse(&ctl).is_none());
        }
    }
}
