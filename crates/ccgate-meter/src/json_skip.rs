//! Finds where a JSON object or array ends, 64 bytes at a time.
//!
//! Used by the gateway's lazy scan of `/anthropic` request bodies, and by the `/openai` reader to find a
//! subtree it has already checked. A Claude Code request is ~75 KB, almost all of it inside `system`, `messages` and `tools`, and the gateway
//! needs none of it: only where each top-level value ends, so that it can read the few top-level fields it does
//! need. Walking those bytes one at a time (and calling memchr once per string, for ~1,600 mostly short strings)
//! cost ~340k instructions per request. This module does the walk the way simdjson's first stage does: per
//! 64-byte block it builds bitmasks of quotes, backslashes and brackets with SIMD compares, works out which quotes
//! are escaped and which bytes lie inside strings with a few integer operations, and then visits only the
//! brackets outside strings.
//!
//! What it checks: brackets pair up (`{` with `}`, `[` with `]`) outside strings, strings end, and nesting stays
//! under [`MAX_DEPTH`]. What it does not: scalars and separators between the brackets. A malformed value deep in
//! `messages` reaches the upstream, which answers its own 400, as it would have without the gateway.

use std::fmt;

/// Deeper nesting than this is refused. serde_json (and with it most upstreams) stops at 128.
pub const MAX_DEPTH: usize = 256;

const BLOCK: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipError {
    /// A closing bracket that does not match the innermost open one, at this byte.
    Mismatched(usize),
    /// The input ended inside a string.
    UnterminatedString,
    /// The input ended before the container closed.
    UnexpectedEnd,
    /// Nesting deeper than [`MAX_DEPTH`], at this byte.
    TooDeep(usize),
}

impl fmt::Display for SkipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipError::Mismatched(at) => write!(f, "mismatched bracket at byte {at}"),
            SkipError::UnterminatedString => f.write_str("unterminated string"),
            SkipError::UnexpectedEnd => f.write_str("unexpected end of body"),
            SkipError::TooDeep(at) => write!(f, "nesting deeper than {MAX_DEPTH} at byte {at}"),
        }
    }
}

/// `bytes[start]` must be `{` or `[`; returns the index just past its matching bracket.
pub fn skip_container(bytes: &[u8], start: usize) -> Result<usize, SkipError> {
    debug_assert!(matches!(bytes.get(start), Some(b'{' | b'[')));
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
        {
            // SAFETY: the CPU has both features.
            unsafe { skip_avx2(bytes, start) }
        } else {
            // SAFETY: SSE2 is part of x86_64.
            unsafe { skip_sse2(bytes, start) }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    skip_with::<Scalar>(bytes, start)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,pclmulqdq")]
unsafe fn skip_avx2(bytes: &[u8], start: usize) -> Result<usize, SkipError> {
    skip_with::<Avx2>(bytes, start)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
unsafe fn skip_sse2(bytes: &[u8], start: usize) -> Result<usize, SkipError> {
    skip_with::<Sse2>(bytes, start)
}

/// The walk, compiled once per instruction set (inlined into the `target_feature` functions above, so that
/// the classifier inlines into it).
#[inline(always)]
fn skip_with<C: Classify>(bytes: &[u8], start: usize) -> Result<usize, SkipError> {
    // Closing bracket expected at each open level.
    let mut stack = [0u8; MAX_DEPTH];
    let mut depth = 0usize;
    // All ones when the previous block ended inside a string.
    let mut in_string = 0u64;
    // 1 when the previous block ended on an unpaired backslash (its next byte is escaped).
    let mut carry_escape = 0u64;
    let mut pos = start;
    let mut tail = [b' '; BLOCK];
    while pos < bytes.len() {
        let block: &[u8; BLOCK] = match bytes.get(pos..pos + BLOCK) {
            Some(b) => b.try_into().unwrap_or(&tail),
            None => {
                let rest = &bytes[pos..];
                tail[..rest.len()].copy_from_slice(rest);
                &tail
            }
        };
        // SAFETY: `skip_container` picks `C` by what the CPU has.
        let m = unsafe { C::classify(block) };
        // Most blocks of a request hold no backslash: skip the arithmetic for them.
        let escaped = if m.backslash | carry_escape == 0 {
            0
        } else {
            escaped_bytes(m.backslash, &mut carry_escape)
        };
        // SAFETY: as above.
        let inside = unsafe { C::prefix_xor(m.quote & !escaped) } ^ in_string;
        in_string = ((inside as i64) >> 63) as u64;
        let mut brackets = m.bracket & !inside & !escaped;
        while brackets != 0 {
            let i = brackets.trailing_zeros() as usize;
            brackets &= brackets - 1;
            let c = block[i];
            if c == b'{' || c == b'[' {
                if depth == MAX_DEPTH {
                    return Err(SkipError::TooDeep(pos + i));
                }
                // `{` + 2 is `}`, `[` + 2 is `]`.
                stack[depth] = c + 2;
                depth += 1;
            } else {
                if depth == 0 || stack[depth - 1] != c {
                    return Err(SkipError::Mismatched(pos + i));
                }
                depth -= 1;
                if depth == 0 {
                    return Ok(pos + i + 1);
                }
            }
        }
        pos += BLOCK;
    }
    Err(if in_string != 0 {
        SkipError::UnterminatedString
    } else {
        SkipError::UnexpectedEnd
    })
}

/// Bit i set: byte i of the block is a quote / a backslash / a bracket.
struct Masks {
    quote: u64,
    backslash: u64,
    bracket: u64,
}

/// Bytes escaped by a backslash (the byte after each odd-length run of backslashes), as in simdjson's
/// `find_escaped_branchless`. `carry` says whether the block starts escaped, and is updated for the next one.
fn escaped_bytes(backslash: u64, carry: &mut u64) -> u64 {
    const EVEN_BITS: u64 = 0x5555_5555_5555_5555;
    let backslash = backslash & !*carry;
    let follows_escape = (backslash << 1) | *carry;
    let odd_starts = backslash & !EVEN_BITS & !follows_escape;
    let (even_starts, overflow) = odd_starts.overflowing_add(backslash);
    *carry = overflow as u64;
    let invert = even_starts << 1;
    (EVEN_BITS ^ invert) & follows_escape
}

/// Bit i is the xor of bits 0..=i: set from an opening quote up to (not including) its closing quote.
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// One instruction set's way to build the masks of a block.
trait Classify {
    /// # Safety
    /// The CPU must have the instruction set.
    unsafe fn classify(block: &[u8; BLOCK]) -> Masks;
    /// # Safety
    /// As for `classify`.
    unsafe fn prefix_xor(x: u64) -> u64;
}

/// The reference the SIMD versions are tested against, and the code on other architectures.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
struct Scalar;

impl Classify for Scalar {
    unsafe fn classify(block: &[u8; BLOCK]) -> Masks {
        let mut m = Masks {
            quote: 0,
            backslash: 0,
            bracket: 0,
        };
        for (i, &c) in block.iter().enumerate() {
            let bit = 1u64 << i;
            match c {
                b'"' => m.quote |= bit,
                b'\\' => m.backslash |= bit,
                b'{' | b'}' | b'[' | b']' => m.bracket |= bit,
                _ => {}
            }
        }
        m
    }

    unsafe fn prefix_xor(x: u64) -> u64 {
        prefix_xor(x)
    }
}

// `x | 0x20` maps `[` (0x5b) to `{` (0x7b) and `]` (0x5d) to `}` (0x7d), and no other byte to either, so two
// compares find all four brackets.

#[cfg(target_arch = "x86_64")]
struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Classify for Avx2 {
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn classify(block: &[u8; BLOCK]) -> Masks {
        use std::arch::x86_64::*;
        let p = block.as_ptr() as *const __m256i;
        let quote = _mm256_set1_epi8(b'"' as i8);
        let backslash = _mm256_set1_epi8(b'\\' as i8);
        let case = _mm256_set1_epi8(0x20);
        let open = _mm256_set1_epi8(b'{' as i8);
        let close = _mm256_set1_epi8(b'}' as i8);
        let mut m = Masks {
            quote: 0,
            backslash: 0,
            bracket: 0,
        };
        for k in 0..2 {
            let v = _mm256_loadu_si256(p.add(k));
            let shift = 32 * k;
            let folded = _mm256_or_si256(v, case);
            let brackets = _mm256_or_si256(
                _mm256_cmpeq_epi8(folded, open),
                _mm256_cmpeq_epi8(folded, close),
            );
            m.quote |= (_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, quote)) as u32 as u64) << shift;
            m.backslash |=
                (_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, backslash)) as u32 as u64) << shift;
            m.bracket |= (_mm256_movemask_epi8(brackets) as u32 as u64) << shift;
        }
        m
    }

    /// A carry-less multiply by all ones is the prefix xor, in one instruction.
    #[inline]
    #[target_feature(enable = "pclmulqdq")]
    unsafe fn prefix_xor(x: u64) -> u64 {
        use std::arch::x86_64::*;
        let product = _mm_clmulepi64_si128(_mm_set_epi64x(0, x as i64), _mm_set1_epi8(-1), 0);
        _mm_cvtsi128_si64(product) as u64
    }
}

#[cfg(target_arch = "x86_64")]
struct Sse2;

#[cfg(target_arch = "x86_64")]
impl Classify for Sse2 {
    #[inline]
    #[target_feature(enable = "sse2")]
    unsafe fn classify(block: &[u8; BLOCK]) -> Masks {
        use std::arch::x86_64::*;
        let p = block.as_ptr() as *const __m128i;
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let case = _mm_set1_epi8(0x20);
        let open = _mm_set1_epi8(b'{' as i8);
        let close = _mm_set1_epi8(b'}' as i8);
        let mut m = Masks {
            quote: 0,
            backslash: 0,
            bracket: 0,
        };
        for k in 0..4 {
            let v = _mm_loadu_si128(p.add(k));
            let shift = 16 * k;
            let folded = _mm_or_si128(v, case);
            let brackets =
                _mm_or_si128(_mm_cmpeq_epi8(folded, open), _mm_cmpeq_epi8(folded, close));
            m.quote |= (_mm_movemask_epi8(_mm_cmpeq_epi8(v, quote)) as u32 as u64) << shift;
            m.backslash |= (_mm_movemask_epi8(_mm_cmpeq_epi8(v, backslash)) as u32 as u64) << shift;
            m.bracket |= (_mm_movemask_epi8(brackets) as u32 as u64) << shift;
        }
        m
    }

    unsafe fn prefix_xor(x: u64) -> u64 {
        prefix_xor(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Where the container at `start` ends, byte by byte: the reference for `skip_container`. Like it, a
    /// backslash escapes the next byte even outside strings (where JSON allows none).
    fn skip_slowly(b: &[u8], start: usize) -> Result<usize, SkipError> {
        let mut stack = Vec::new();
        let mut i = start;
        let mut in_string = false;
        while i < b.len() {
            let c = b[i];
            if in_string {
                match c {
                    b'\\' => i += 1,
                    b'"' => in_string = false,
                    _ => {}
                }
            } else {
                match c {
                    b'\\' => i += 1,
                    b'"' => in_string = true,
                    b'{' | b'[' => {
                        if stack.len() == MAX_DEPTH {
                            return Err(SkipError::TooDeep(i));
                        }
                        stack.push(c + 2);
                    }
                    b'}' | b']' => {
                        if stack.pop() != Some(c) {
                            return Err(SkipError::Mismatched(i));
                        }
                        if stack.is_empty() {
                            return Ok(i + 1);
                        }
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        Err(if in_string {
            SkipError::UnterminatedString
        } else {
            SkipError::UnexpectedEnd
        })
    }

    #[test]
    fn simd_masks_match_the_scalar_ones() {
        let mut block = [0u8; BLOCK];
        for round in 0..256usize {
            for (i, b) in block.iter_mut().enumerate() {
                *b = (i * 31 + round * 7) as u8 ^ (round as u8);
            }
            block[round % BLOCK] = b'"';
            block[(round * 3) % BLOCK] = b'\\';
            block[(round * 5) % BLOCK] = b'[';
            block[(round * 11) % BLOCK] = b'}';
            // SAFETY: Scalar needs nothing; SSE2 is part of x86_64; AVX2 and PCLMULQDQ are checked.
            unsafe {
                let want = Scalar::classify(&block);
                let x = want.quote.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                #[cfg(target_arch = "x86_64")]
                {
                    let got = Sse2::classify(&block);
                    assert_eq!(
                        (got.quote, got.backslash, got.bracket),
                        (want.quote, want.backslash, want.bracket)
                    );
                    assert_eq!(Sse2::prefix_xor(x), prefix_xor(x));
                    if std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("pclmulqdq")
                    {
                        let got = Avx2::classify(&block);
                        assert_eq!(
                            (got.quote, got.backslash, got.bracket),
                            (want.quote, want.backslash, want.bracket)
                        );
                        assert_eq!(Avx2::prefix_xor(x), prefix_xor(x));
                    }
                }
                let _ = x;
            }
        }
    }

    /// Every instruction set's walk (the dispatching `skip_container` covers only the best one here).
    fn skip_every_way(b: &[u8], start: usize) -> Result<usize, SkipError> {
        let want = skip_with::<Scalar>(b, start);
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: SSE2 is part of x86_64.
            assert_eq!(unsafe { skip_sse2(b, start) }, want);
        }
        assert_eq!(skip_container(b, start), want);
        want
    }

    #[test]
    fn skips_containers() {
        let cases: &[(&[u8], Result<usize, SkipError>)] = &[
            (b"{}", Ok(2)),
            (b"[] ,", Ok(2)),
            (br#"{"a":"}]","b":[1,{"c":"\"{"}]} tail"#, Ok(30)),
            (br#"["\\"]"#, Ok(6)),
            (br#"["\\\"]"]"#, Ok(9)),
            (b"[1,2}", Err(SkipError::Mismatched(4))),
            (br#"{"a":"x}"#, Err(SkipError::UnterminatedString)),
            (b"[[[", Err(SkipError::UnexpectedEnd)),
        ];
        for (input, want) in cases {
            assert_eq!(
                skip_every_way(input, 0),
                *want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
            assert_eq!(skip_slowly(input, 0), *want);
        }
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert_eq!(
            skip_container(deep.as_bytes(), 0),
            Err(SkipError::TooDeep(MAX_DEPTH))
        );
    }

    #[test]
    fn escapes_and_quotes_across_block_edges() {
        // Runs of backslashes of every length, placed so that they straddle the 64-byte edges.
        for pad in 0..130 {
            for run in 0..6 {
                let mut s = String::from("[");
                s.push_str(&" ".repeat(pad));
                s.push('"');
                s.push_str(&"\\".repeat(run * 2));
                if run % 2 == 1 {
                    s.push_str("\\\"");
                }
                s.push_str("]\"");
                s.push_str(&" ".repeat(pad % 7));
                s.push_str("] rest");
                let b = s.as_bytes();
                assert_eq!(skip_every_way(b, 0), skip_slowly(b, 0), "{s:?}");
                assert_eq!(skip_container(b, 0), Ok(s.len() - 5), "{s:?}");
            }
        }
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[\"\\\\{}\\[\\]a \u{e9}\u{1F600}\n]{0,40}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::from),
                prop::collection::btree_map("[\"\\\\{}a]{0,6}", inner, 0..8)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn finds_the_end_serde_finds(v in json_value(), pretty: bool, offset in 0usize..70) {
            let container = serde_json::json!([v, {"k": v}]);
            let text = if pretty {
                serde_json::to_string_pretty(&container).unwrap()
            } else {
                serde_json::to_string(&container).unwrap()
            };
            let mut bytes = vec![b' '; offset];
            bytes.extend_from_slice(text.as_bytes());
            bytes.extend_from_slice(b", \"next\": [\"]\"]}");
            prop_assert_eq!(skip_every_way(&bytes, offset), Ok(offset + text.len()));
        }

        #[test]
        fn agrees_with_the_slow_walk_on_any_bytes(
            bytes in prop::collection::vec(prop::sample::select(b"{}[]\"\\ a,:".to_vec()), 1..300),
        ) {
            let mut input = vec![b'['];
            input.extend_from_slice(&bytes);
            prop_assert_eq!(skip_every_way(&input, 0), skip_slowly(&input, 0));
        }
    }
}
