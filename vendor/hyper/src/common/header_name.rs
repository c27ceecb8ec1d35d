//! CCGate patch: header names of parsed messages come from a small per-thread cache.
//!
//! `HeaderName::from_bytes` copies every name that is not one of http's standard ones into a fresh
//! allocation. A gateway parses the same few dozen such names on every message (`x-api-key`,
//! `anthropic-version`, `anthropic-ratelimit-*`, `request-id`, ...), and then clones them into the
//! forwarded message, where each clone of a heap name promotes it to a shared, reference-counted
//! buffer: ~12 allocations per proxied request. Here the first time a thread meets a name, it is
//! leaked once into a `&'static str`, and later messages get a `HeaderName` over that static text,
//! which clones and drops for free.
//!
//! The cache is direct-mapped with `SLOTS` slots per thread and never evicts: a name whose slot is
//! taken by another goes through `HeaderName::from_bytes` as before. So what is leaked is bounded
//! by `SLOTS * MAX_LEN` bytes per thread that parses messages, whatever names peers send; a peer
//! sending many random names only fills the slots, after which names cost what they cost before.

use std::cell::RefCell;

use http::header::{HeaderName, InvalidHeaderName};

const SLOTS: usize = 256;
/// Longer names are not cached.
const MAX_LEN: usize = 64;

thread_local! {
    static CACHE: RefCell<Vec<Option<HeaderName>>> = const { RefCell::new(Vec::new()) };
}

/// `HeaderName::from_bytes(bytes)`, from the cache when possible.
pub(crate) fn header_name(bytes: &[u8]) -> Result<HeaderName, InvalidHeaderName> {
    if bytes.is_empty() || bytes.len() > MAX_LEN {
        return HeaderName::from_bytes(bytes);
    }
    let slot = slot_of(bytes);
    let cached = CACHE.try_with(|cache| {
        let mut cache = cache.try_borrow_mut().ok()?;
        if cache.is_empty() {
            cache.resize(SLOTS, None);
        }
        match &cache[slot] {
            // Names are stored lower-cased, as `from_bytes` makes them; the input is too, nearly always (a
            // plain comparison), but may be in any case.
            Some(name)
                if name.as_str().as_bytes() == bytes
                    || name.as_str().as_bytes().eq_ignore_ascii_case(bytes) =>
            {
                Some(Ok(name.clone()))
            }
            Some(_) => None,
            None => {
                let name = match HeaderName::from_bytes(bytes) {
                    Ok(name) => name,
                    Err(e) => return Some(Err(e)),
                };
                let text: &'static str = Box::leak(name.as_str().to_owned().into_boxed_str());
                let name = HeaderName::from_static(text);
                cache[slot] = Some(name.clone());
                Some(Ok(name))
            }
        }
    });
    match cached {
        Ok(Some(result)) => result,
        _ => HeaderName::from_bytes(bytes),
    }
}

/// Case-insensitive hash of a name from its length and its first and last eight bytes.
fn slot_of(bytes: &[u8]) -> usize {
    const FOLD: u64 = 0x2020_2020_2020_2020;
    let word = |b: &[u8]| -> u64 {
        let mut w = [0u8; 8];
        w[..b.len()].copy_from_slice(b);
        u64::from_le_bytes(w) | FOLD
    };
    let n = bytes.len();
    let (head, tail) = if n >= 8 {
        (word(&bytes[..8]), word(&bytes[n - 8..]))
    } else {
        (word(bytes), 0)
    };
    let h = (head ^ tail.rotate_left(29) ^ n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> 56) as usize % SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_names_as_from_bytes() {
        for name in [
            &b"content-type"[..],
            b"Content-Type",
            b"x-api-key",
            b"X-Api-Key",
            b"anthropic-ratelimit-requests-remaining",
            b"anthropic-ratelimit-requests-limit",
            b"a",
            b"x_y",
        ] {
            for _ in 0..3 {
                assert_eq!(header_name(name).unwrap(), HeaderName::from_bytes(name).unwrap());
            }
        }
        assert!(header_name(b"bad name").is_err());
        assert!(header_name(b"").is_err());
        let long = vec![b'x'; MAX_LEN + 1];
        assert_eq!(header_name(&long).unwrap(), HeaderName::from_bytes(&long).unwrap());
    }

    #[test]
    fn every_valid_name_byte_survives_from_static() {
        for b in 0..=255u8 {
            if let Ok(name) = HeaderName::from_bytes(&[b]) {
                let text: &'static str = Box::leak(name.as_str().to_owned().into_boxed_str());
                assert_eq!(HeaderName::from_static(text), name);
            }
        }
    }

    #[test]
    fn a_taken_slot_falls_back_without_mixing_names_up() {
        let mut seen = std::collections::HashMap::new();
        for i in 0..(SLOTS * 4) {
            let name = format!("x-custom-{i}");
            let got = header_name(name.as_bytes()).unwrap();
            assert_eq!(got.as_str(), name);
            seen.insert(slot_of(name.as_bytes()), ());
        }
        assert!(seen.len() > SLOTS / 2);
    }
}
