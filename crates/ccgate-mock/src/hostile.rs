//! A hostile upstream, for testing what the gateway does with one: decompression bombs and endless SSE lines
//! (generated lazily, so a 1 GiB bomb costs the mock a few kilobytes), the request's key echoed back in the forms
//! a tenant could decode, and headers that would act on a browser.

use std::io::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll};

use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine as _;
use bytes::Bytes;
use flate2::write::DeflateEncoder;
use flate2::{Compression, Crc};
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use crate::body::BoxError;

/// Headers no gateway should pass to a browser (`content-type` is added only to non-SSE answers).
pub const HOSTILE_HEADERS: &[(&str, &str)] = &[
    ("set-cookie", "session=stolen; Path=/; HttpOnly"),
    ("access-control-allow-origin", "*"),
    ("access-control-allow-credentials", "true"),
    ("content-security-policy", "default-src * 'unsafe-inline'"),
    ("refresh", "0; url=https://evil.example/"),
    (
        "strict-transport-security",
        "max-age=31536000; includeSubDomains",
    ),
    ("x-frame-options", "ALLOWALL"),
    ("anthropic-organization-id", "org-mirror-account"),
];

pub const HOSTILE_CONTENT_TYPE: &str = "text/html; charset=utf-8";

pub fn add_hostile_headers(h: &mut HeaderMap, sse: bool) {
    for (k, v) in HOSTILE_HEADERS {
        h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    if !sse {
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(HOSTILE_CONTENT_TYPE),
        );
    }
}

/// The key a request carried (`x-api-key`, else `Authorization: Bearer`).
pub fn request_key(headers: &HeaderMap) -> Option<String> {
    if let Some(k) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(k.to_string());
    }
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|k| k.trim().to_string())
}

/// Every character `\u`-escaped (`every` = 1), or every `every`-th one: JSON text that decodes to `key`.
pub fn json_escaped(key: &str, every: usize) -> String {
    key.chars()
        .enumerate()
        .map(|(i, c)| {
            if i % every.max(1) == 0 {
                let mut units = [0u16; 2];
                c.encode_utf16(&mut units)
                    .iter()
                    .map(|u| format!("\\u{u:04x}"))
                    .collect()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The placeholders of [`substitute`] and what each becomes, for `key`.
pub fn placeholders(key: &str) -> Vec<(String, String)> {
    let mut out = vec![
        ("{{key}}".to_string(), key.to_string()),
        ("{{key_json}}".to_string(), json_escaped(key, 1)),
        ("{{key_mixed}}".to_string(), json_escaped(key, 2)),
    ];
    for (i, prefix) in ["", "x", "xy"].iter().enumerate() {
        let blob = format!("{prefix}{key}");
        out.push((format!("{{{{key_b64_{i}}}}}"), STANDARD.encode(&blob)));
        out.push((format!("{{{{key_b64url_{i}}}}}"), URL_SAFE.encode(&blob)));
    }
    out
}

/// Replaces the key placeholders in `bytes`; `bytes` unchanged (not copied) when there are none.
pub fn substitute(bytes: Bytes, key: &str) -> Bytes {
    if memchr_find(&bytes, b"{{key").is_none() {
        return bytes;
    }
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    for (ph, value) in placeholders(key) {
        text = text.replace(&ph, &value);
    }
    Bytes::from(text)
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A body made of a head, a segment repeated `count` times (for ever when `None`), and a tail. The segment is one
/// shared buffer, so an endless or 1 GiB body costs nothing to produce.
pub struct RepeatBody {
    head: Option<Bytes>,
    segment: Bytes,
    remaining: Option<u64>,
    tail: Option<Bytes>,
}

const PLAIN_SEGMENT: usize = 64 * 1024;
const GZIP_SEGMENT: usize = 1024 * 1024;

impl RepeatBody {
    /// `prefix`, `fill` bytes of `A`, then `suffix` (`fill` = `None`: endless, no suffix); gzipped if `gzip`,
    /// each repeated segment compressed once (about 1000:1).
    pub fn new(prefix: &[u8], fill: Option<u64>, suffix: &[u8], gzip: bool) -> RepeatBody {
        Self::of_units(prefix, b"A", fill, suffix, gzip)
    }

    /// Like [`RepeatBody::new`], the fill made of whole copies of `unit` (e.g. complete SSE events); `fill` is
    /// rounded down to whole units.
    pub fn of_units(
        prefix: &[u8],
        unit: &[u8],
        fill: Option<u64>,
        suffix: &[u8],
        gzip: bool,
    ) -> RepeatBody {
        let unit = if unit.is_empty() { b"A" } else { unit };
        let per_seg = ((if gzip { GZIP_SEGMENT } else { PLAIN_SEGMENT }) / unit.len()).max(1);
        let seg_len = (per_seg * unit.len()) as u64;
        let (count, rem) = match fill {
            Some(n) => (Some(n / seg_len), ((n % seg_len) as usize) / unit.len()),
            None => (None, 0),
        };
        let segment_plain = unit.repeat(per_seg);
        let mut last_plain = unit.repeat(rem);
        last_plain.extend_from_slice(suffix);
        if !gzip {
            return RepeatBody {
                head: Some(Bytes::copy_from_slice(prefix)),
                segment: Bytes::from(segment_plain),
                remaining: count,
                tail: fill.map(|_| Bytes::from(last_plain)),
            };
        }
        // A gzip member whose deflate stream is made of independently compressed parts: each part is flushed to a
        // byte boundary and refers to nothing before it, so its bytes can be sent any number of times.
        let mut head = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        head.extend_from_slice(&deflate_part(prefix, false));
        let tail = count.map(|count| {
            let mut crc = Crc::new();
            crc.update(prefix);
            let mut seg_crc = Crc::new();
            seg_crc.update(&segment_plain);
            for _ in 0..count {
                crc.combine(&seg_crc);
            }
            crc.update(&last_plain);
            let mut t = deflate_part(&last_plain, true);
            t.extend_from_slice(&crc.sum().to_le_bytes());
            t.extend_from_slice(&crc.amount().to_le_bytes());
            Bytes::from(t)
        });
        RepeatBody {
            head: Some(Bytes::from(head)),
            segment: Bytes::from(deflate_part(&segment_plain, false)),
            remaining: count,
            tail,
        }
    }
}

fn deflate_part(data: &[u8], last: bool) -> Vec<u8> {
    let mut enc = DeflateEncoder::new(Vec::new(), Compression::best());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(data);
    if last {
        enc.finish().unwrap_or_default()
    } else {
        // A sync flush ends the part on a byte boundary without ending the stream.
        let _ = enc.flush();
        std::mem::take(enc.get_mut())
    }
}

impl RepeatBody {
    pub fn poll_next(
        &mut self,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(h) = self.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(h))));
        }
        match &mut self.remaining {
            None => return Poll::Ready(Some(Ok(Frame::data(self.segment.clone())))),
            Some(n) if *n > 0 => {
                *n -= 1;
                return Poll::Ready(Some(Ok(Frame::data(self.segment.clone()))));
            }
            Some(_) => {}
        }
        Poll::Ready(self.tail.take().map(|t| Ok(Frame::data(t))))
    }

    pub fn is_end(&self) -> bool {
        self.head.is_none() && self.remaining == Some(0) && self.tail.is_none()
    }
}

impl Body for RepeatBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.get_mut().poll_next(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.is_end()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn collect(mut b: RepeatBody) -> Vec<u8> {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut out = Vec::new();
        while let Poll::Ready(Some(Ok(f))) = b.poll_next(&mut cx) {
            out.extend_from_slice(f.data_ref().unwrap());
        }
        out
    }

    #[test]
    fn gzip_bomb_decodes_to_the_announced_size() {
        let fill = 3 * GZIP_SEGMENT as u64 + 5;
        let body = collect(RepeatBody::new(b"{\"t\":\"", Some(fill), b"\"}", true));
        assert!(body.len() < 20_000, "compressed: {}", body.len());
        let mut dec = flate2::read::GzDecoder::new(&body[..]);
        let mut plain = Vec::new();
        dec.read_to_end(&mut plain).unwrap();
        assert_eq!(plain.len() as u64, 6 + fill + 2);
        assert!(plain.starts_with(b"{\"t\":\"AAA"));
        assert!(plain.ends_with(b"AAA\"}"));
    }

    #[test]
    fn plain_body_and_placeholders() {
        let body = collect(RepeatBody::new(b"<", Some(70_000), b">", false));
        assert_eq!(body.len(), 70_002);
        let s = substitute(
            Bytes::from_static(b"a {{key}} b {{key_json}} {{key_b64_1}}"),
            "sk-1",
        );
        let s = String::from_utf8(s.to_vec()).unwrap();
        assert!(
            s.starts_with("a sk-1 b \\u0073\\u006b\\u002d\\u0031 "),
            "{s}"
        );
        assert!(s.ends_with(&STANDARD.encode("xsk-1")), "{s}");
        let v: serde_json::Value =
            serde_json::from_str(&format!("\"{}\"", json_escaped("sk-ant-0", 2))).unwrap();
        assert_eq!(v, "sk-ant-0");
    }
}
