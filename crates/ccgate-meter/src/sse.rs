//! Incremental Server-Sent-Events framing over raw bytes.
//!
//! The gateway forwards the upstream's bytes to the client untouched and parses a copy on the side. TCP/HTTP chunk
//! boundaries fall anywhere: inside a multi-byte UTF-8 character, between `\r` and `\n`, inside a field name. Decoding
//! each chunk as text on its own corrupts CJK text and loses lines split across chunks (docs/protocols.md §6), so this
//! framer works on bytes, keeps only the incomplete tail of the current line, and never decodes `data` at all: the
//! consumer gets `&[u8]` and hands it straight to `serde_json::from_slice` (which validates UTF-8 itself).
//!
//! # API
//!
//! ```
//! use ccgate_meter::sse::SseFramer;
//! let mut framer = SseFramer::new();
//! let mut names = Vec::new();
//! let mut on_event = |ev: ccgate_meter::sse::SseEvent<'_>| {
//!     // Filter by name first: JSON is only parsed for the few events a consumer cares about.
//!     if ev.is("message_delta") {
//!         let _v: serde_json::Value = serde_json::from_slice(ev.data).unwrap_or_default();
//!     }
//!     names.push(ev.event.to_owned());
//! };
//! framer.push(b"event: message_delta\ndata: {\"type\":", &mut on_event);
//! framer.push(b"\"message_delta\"}\n\n", &mut on_event);
//! framer.finish(&mut on_event);
//! drop(on_event);
//! assert_eq!(names, ["message_delta"]);
//! ```
//!
//! Events are delivered through a callback that borrows the framer's internal buffers, so no event is allocated; the
//! buffers (`line tail`, `event name`, `data`) are reused, which makes the framer allocation-free in steady state.
//!
//! # Grammar (WHATWG "event stream interpretation")
//!
//! * Lines end with `\n`, `\r\n` or a lone `\r`; a leading UTF-8 BOM on the first line is dropped.
//! * An empty line dispatches the event being built. An event with no `data:` field is not dispatched (spec rule).
//! * `:` at the start of a line is a comment. `field:value` with one optional space after the colon stripped; a line
//!   without a colon is a field with an empty value.
//! * `event` sets the name (default `"message"`); each `data` line is appended, joined with `\n`; `id`, `retry` and
//!   unknown fields are ignored.
//!
//! Deviation from the spec: [`SseFramer::finish`] dispatches a trailing event that lacks the final blank line (the spec
//! discards it). For metering, an upstream that closes right after its last `data:` line must still be counted.
//!
//! # Memory bound
//!
//! A line or an event's data larger than [`SseFramer::max_event_bytes`] ([`MAX_EVENT_BYTES`], 16 MiB, by default) is
//! not buffered: the event is dropped, counted in [`SseFramer::oversized_events`], and [`SseFramer::overflowed`]
//! turns true so the caller can stop metering the stream or flag it. This keeps a misbehaving upstream (or a gzip body
//! that slipped through, §6) from growing the side-parser without bound. The decision depends only on the byte
//! stream, never on how it was chunked.
//!
//! Each push searches only its own chunk for line ends; the held tail of an incomplete line is never searched again,
//! so framing costs O(bytes) whatever the chunking (a 200 MB line in small chunks must not cost quadratic time).

use memchr::memchr2_iter;

/// Default cap on one line and on one event's accumulated `data`: far above any real Anthropic event, small enough
/// that a stream without line ends cannot exhaust memory.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One dispatched SSE event, borrowing the framer's buffers for the duration of the callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The `event:` name, `"message"` when the event had none. A name that is not valid UTF-8 is reported as `""`.
    pub event: &'a str,
    /// All `data:` lines of the event joined with `\n` (no trailing newline). Raw bytes, not decoded.
    pub data: &'a [u8],
}

impl SseEvent<'_> {
    /// Cheap name test, meant to run before any JSON parsing.
    #[inline]
    pub fn is(&self, name: &str) -> bool {
        self.event == name
    }
}

/// Incremental SSE framer. See the module documentation for the grammar and the callback-based API.
#[derive(Debug, Clone)]
pub struct SseFramer {
    /// Bytes of the current, not yet terminated line.
    line: Vec<u8>,
    /// Current event name (raw bytes); empty means "message".
    event: Vec<u8>,
    /// Current event data, lines joined with `\n`.
    data: Vec<u8>,
    /// At least one `data` field was seen for the current event (distinguishes `data:` from no data at all).
    has_data: bool,
    /// The previous chunk ended with `\r`: a `\n` at the start of the next chunk belongs to that line end.
    pending_cr: bool,
    /// No line has been completed yet (BOM stripping applies).
    first_line: bool,
    /// The current line exceeded the cap and is being skipped up to its end.
    skipping_line: bool,
    /// The current event exceeded the cap and will not be dispatched.
    event_oversized: bool,
    max_event_bytes: usize,
    oversized_events: u64,
}

impl Default for SseFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl SseFramer {
    pub fn new() -> Self {
        Self::with_max_event_bytes(MAX_EVENT_BYTES)
    }

    /// A framer whose per-line and per-event data cap is `max` bytes.
    pub fn with_max_event_bytes(max: usize) -> Self {
        SseFramer {
            line: Vec::new(),
            event: Vec::new(),
            data: Vec::new(),
            has_data: false,
            pending_cr: false,
            first_line: true,
            skipping_line: false,
            event_oversized: false,
            max_event_bytes: max,
            oversized_events: 0,
        }
    }

    /// The per-line / per-event cap in bytes.
    pub fn max_event_bytes(&self) -> usize {
        self.max_event_bytes
    }

    /// Number of events dropped because a line or their data exceeded the cap.
    pub fn oversized_events(&self) -> u64 {
        self.oversized_events
    }

    /// `true` once an event was dropped for exceeding the cap: the stream was not framed completely, so a consumer
    /// that meters or translates it should treat its view as incomplete.
    pub fn overflowed(&self) -> bool {
        self.oversized_events > 0 || self.skipping_line || self.event_oversized
    }

    /// Bytes currently buffered (incomplete line plus the event under construction).
    pub fn buffered_bytes(&self) -> usize {
        self.line.len() + self.data.len() + self.event.len()
    }

    /// Feeds one chunk; every event completed by it is passed to `out`, in order.
    pub fn push<F: FnMut(SseEvent<'_>)>(&mut self, chunk: &[u8], out: &mut F) {
        let mut rest = chunk;
        if self.pending_cr {
            if rest.is_empty() {
                return;
            }
            self.pending_cr = false;
            if rest[0] == b'\n' {
                rest = &rest[1..];
            }
        }
        // The data of an event whose single `data:` line lies in this chunk is handed out from the chunk itself;
        // it is copied into `self.data` only if the chunk ends before the event does.
        let mut borrowed = None;
        let mut start = 0;
        // One searcher for the whole chunk: set up once, not once per line.
        for pos in memchr2_iter(b'\n', b'\r', rest) {
            if pos < start {
                continue; // the `\n` of a `\r\n` already consumed
            }
            let line_bytes = &rest[start..pos];
            let mut next = pos + 1;
            if rest[pos] == b'\r' {
                match rest.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    // `\r` is the last byte of the chunk: the `\n` may start the next one.
                    None => self.pending_cr = true,
                }
            }
            if self.line.is_empty() && !self.skipping_line {
                // Fast path: the whole line is inside this chunk; process it in place.
                self.complete_line(line_bytes, Some(&mut borrowed), out);
            } else {
                self.append_tail(line_bytes);
                let line = std::mem::take(&mut self.line);
                self.complete_line(&line, None::<&mut Option<&[u8]>>, out);
                self.line = line;
                self.line.clear();
            }
            start = next;
        }
        if let Some(data) = borrowed {
            self.data.extend_from_slice(data);
        }
        if start < rest.len() {
            self.append_tail(&rest[start..]);
        }
    }

    /// Signals end of stream: an unterminated last line is processed, and an event still under construction is
    /// dispatched even without its blank line (see the module docs). The framer is then reset for reuse.
    pub fn finish<F: FnMut(SseEvent<'_>)>(&mut self, out: &mut F) {
        if !self.line.is_empty() || self.skipping_line {
            let line = std::mem::take(&mut self.line);
            self.complete_line(&line, None::<&mut Option<&[u8]>>, out);
            self.line = line;
            self.line.clear();
        }
        self.dispatch(None, out);
        self.pending_cr = false;
        self.first_line = true;
    }

    fn append_tail(&mut self, bytes: &[u8]) {
        if self.skipping_line {
            return;
        }
        if self.line.len() + bytes.len() > self.max_event_bytes {
            self.skipping_line = true;
            self.line.clear();
            return;
        }
        self.line.extend_from_slice(bytes);
    }

    /// Processes one complete line. `borrowed` is given when `line` lies in the caller's chunk: the event's data
    /// may then stay there (see [`SseFramer::push`]) instead of being copied.
    fn complete_line<'c, F: FnMut(SseEvent<'_>)>(
        &mut self,
        mut line: &'c [u8],
        borrowed: Option<&mut Option<&'c [u8]>>,
        out: &mut F,
    ) {
        // Length check before BOM stripping, so the buffered and in-place paths agree byte for byte.
        if std::mem::take(&mut self.skipping_line) || line.len() > self.max_event_bytes {
            self.first_line = false;
            self.event_oversized = true;
            return;
        }
        if std::mem::take(&mut self.first_line) && line.starts_with(BOM) {
            line = &line[BOM.len()..];
        }
        if line.is_empty() {
            let data = borrowed.and_then(Option::take);
            self.dispatch(data, out);
            return;
        }
        if line[0] == b':' {
            return; // comment / keep-alive
        }
        // The two fields every Anthropic event has are recognised by their prefix; others by their first colon.
        let (field, value): (&[u8], &[u8]) = if let Some(v) = line.strip_prefix(b"data:") {
            (b"data", v)
        } else if let Some(v) = line.strip_prefix(b"event:") {
            (b"event", v)
        } else {
            match memchr::memchr(b':', line) {
                Some(i) => (&line[..i], &line[i + 1..]),
                None => (line, &b""[..]),
            }
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        match field {
            b"data" => {
                if self.event_oversized {
                    return;
                }
                let held = borrowed.as_ref().and_then(|b| b.map(<[u8]>::len));
                let extra = value.len() + usize::from(self.has_data);
                if self.data.len() + held.unwrap_or(0) + extra > self.max_event_bytes {
                    self.event_oversized = true;
                    self.data.clear();
                    if let Some(b) = borrowed {
                        *b = None;
                    }
                    return;
                }
                match borrowed {
                    // The event's first data line: keep it where it is.
                    Some(b) if !self.has_data => *b = Some(value),
                    _ => {
                        if let Some(earlier) = borrowed.and_then(Option::take) {
                            self.data.extend_from_slice(earlier);
                        }
                        if self.has_data {
                            self.data.push(b'\n');
                        }
                        self.data.extend_from_slice(value);
                    }
                }
                self.has_data = true;
            }
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(value);
            }
            _ => {} // id, retry, unknown fields
        }
    }

    /// Ends the event being built. `borrowed` is its data when that still lies in the caller's chunk.
    fn dispatch<F: FnMut(SseEvent<'_>)>(&mut self, borrowed: Option<&[u8]>, out: &mut F) {
        if self.event_oversized {
            self.oversized_events += 1;
        } else if self.has_data {
            let name = if self.event.is_empty() {
                "message"
            } else {
                std::str::from_utf8(&self.event).unwrap_or("")
            };
            out(SseEvent {
                event: name,
                data: borrowed.unwrap_or(&self.data),
            });
        }
        self.event.clear();
        self.data.clear();
        self.has_data = false;
        self.event_oversized = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Ev = (String, Vec<u8>);

    fn collect(framer: &mut SseFramer, chunks: &[&[u8]]) -> Vec<Ev> {
        let mut evs = Vec::new();
        let mut cb = |e: SseEvent<'_>| evs.push((e.event.to_owned(), e.data.to_vec()));
        for c in chunks {
            framer.push(c, &mut cb);
        }
        framer.finish(&mut cb);
        evs
    }

    fn whole(text: &[u8]) -> Vec<Ev> {
        collect(&mut SseFramer::new(), &[text])
    }

    fn ev(name: &str, data: &str) -> Ev {
        (name.to_owned(), data.as_bytes().to_vec())
    }

    #[test]
    fn basic_anthropic_events() {
        let s = b"event: message_start\ndata: {\"a\":1}\n\nevent: ping\ndata: {}\n\n";
        assert_eq!(
            whole(s),
            vec![ev("message_start", "{\"a\":1}"), ev("ping", "{}")]
        );
    }

    #[test]
    fn line_endings() {
        let crlf = b"event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\rdata: 3\n\n";
        assert_eq!(
            whole(crlf),
            vec![ev("a", "1"), ev("b", "2"), ev("message", "3")]
        );
    }

    #[test]
    fn crlf_split_across_chunks() {
        let mut f = SseFramer::new();
        let evs = collect(&mut f, &[b"data: x\r", b"\n\r", b"\n"]);
        assert_eq!(evs, vec![ev("message", "x")]);
    }

    #[test]
    fn multiline_data_comments_and_ignored_fields() {
        let s = b": keep-alive\nid: 7\nretry: 1000\nevent: e\ndata: l1\ndata:l2\ndata:  l3\nfoo: bar\n\n";
        assert_eq!(whole(s), vec![ev("e", "l1\nl2\n l3")]);
    }

    #[test]
    fn empty_data_and_no_data() {
        // `data:` with an empty value dispatches an empty event; no data field at all dispatches nothing.
        assert_eq!(
            whole(b"event: x\n\ndata:\n\ndata\n\n"),
            vec![ev("message", ""), ev("message", "")]
        );
        assert_eq!(whole(b"data\ndata\n\n"), vec![ev("message", "\n")]);
    }

    #[test]
    fn utf8_split_inside_char() {
        let text = "event: content_block_delta\ndata: {\"text\":\"日本語\"}\n\n".as_bytes();
        let cut = text.iter().position(|&b| b >= 0x80).unwrap() + 1;
        let evs = collect(&mut SseFramer::new(), &[&text[..cut], &text[cut..]]);
        assert_eq!(
            evs,
            vec![ev("content_block_delta", "{\"text\":\"日本語\"}")]
        );
    }

    #[test]
    fn finish_dispatches_trailing_event() {
        assert_eq!(
            whole(b"event: message_stop\ndata: {}"),
            vec![ev("message_stop", "{}")]
        );
        assert_eq!(
            whole(b"event: message_stop\ndata: {}\n"),
            vec![ev("message_stop", "{}")]
        );
        assert_eq!(whole(b""), vec![]);
    }

    #[test]
    fn bom_is_stripped_on_first_line_only() {
        let s = b"\xEF\xBB\xBFdata: a\n\n\xEF\xBB\xBFdata: b\n\n";
        assert_eq!(whole(s), vec![ev("message", "a")]);
    }

    #[test]
    fn oversized_event_is_dropped_not_buffered() {
        let mut f = SseFramer::with_max_event_bytes(16);
        let evs = collect(
            &mut f,
            &[
                b"data: 0123456789",
                b"0123456789\n\ndata: ok\n\ndata: 0123456789\ndata: 0123456789\n\n",
            ],
        );
        assert_eq!(evs, vec![ev("message", "ok")]);
        assert_eq!(f.oversized_events(), 2);
        assert!(f.buffered_bytes() == 0);
    }

    #[test]
    fn steady_state_does_not_grow() {
        let mut f = SseFramer::new();
        let chunk = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n";
        let mut n = 0;
        for _ in 0..1000 {
            f.push(&chunk[..10], &mut |_| n += 1);
            f.push(&chunk[10..], &mut |_| n += 1);
        }
        assert_eq!(n, 1000);
        assert_eq!(f.buffered_bytes(), 0);
    }

    /// A 20 MB line (no line end) in chunks of 1 B to 64 KiB: the framer overflows at the cap, never holds more
    /// than the cap, and the time stays linear (a quadratic rescan of the held tail would not finish here).
    #[test]
    fn huge_line_overflows_at_the_cap_in_linear_time() {
        let line = vec![b'x'; 20 * 1024 * 1024];
        let mut whole = b"data: ".to_vec();
        whole.extend_from_slice(&line);
        for chunk in [1usize, 7, 4096, 64 * 1024] {
            let mut f = SseFramer::new();
            let started = std::time::Instant::now();
            let mut max_held = 0;
            let mut evs = 0;
            let mut overflowed_at = None;
            let mut fed = 0;
            for c in whole.chunks(chunk) {
                f.push(c, &mut |_| evs += 1);
                fed += c.len();
                max_held = max_held.max(f.buffered_bytes());
                if overflowed_at.is_none() && f.overflowed() {
                    overflowed_at = Some(fed);
                }
            }
            assert!(
                max_held <= MAX_EVENT_BYTES,
                "chunk {chunk}: held {max_held}"
            );
            let at = overflowed_at.expect("a 20 MB line must overflow");
            assert!(
                at > MAX_EVENT_BYTES && at <= MAX_EVENT_BYTES + chunk,
                "chunk {chunk}: overflowed after {at} bytes"
            );
            // The line ends: the oversized event is dropped, not dispatched, and the framer recovers.
            f.push(b"\n\ndata: ok\n\n", &mut |e| {
                assert_eq!(e.data, b"ok");
                evs += 1;
            });
            f.finish(&mut |_| evs += 1);
            assert_eq!((evs, f.oversized_events()), (1, 1), "chunk {chunk}");
            assert!(f.overflowed());
            assert_eq!(f.buffered_bytes(), 0);
            // Generous: linear work is well under a second even unoptimised; a rescan per 1-byte push is hours.
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "chunk {chunk}: {:?}",
                started.elapsed()
            );
        }
    }

    #[test]
    fn overflowed_is_false_for_normal_streams() {
        let mut f = SseFramer::new();
        collect(&mut f, &[b"event: a\ndata: 1\n\n"]);
        assert!(!f.overflowed());
    }

    fn sse_line() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just(String::new()),
            "[a-z_]{0,12}".prop_map(|s| format!("event: {s}")),
            "[ -~é日\u{1F600}]{0,20}".prop_map(|s| format!("data: {s}")),
            "[ -~é]{0,10}".prop_map(|s| format!("data:{s}")),
            Just("data".to_owned()),
            "[ -~]{0,10}".prop_map(|s| format!(": {s}")),
            "[0-9]{1,4}".prop_map(|s| format!("id: {s}")),
            "[a-z]{1,5}:[ -~]{0,5}".prop_map(|s| s),
        ]
    }

    fn sse_text() -> impl Strategy<Value = Vec<u8>> {
        (
            any::<bool>(),
            proptest::collection::vec(
                (
                    sse_line(),
                    prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
                ),
                0..30,
            ),
            any::<bool>(),
        )
            .prop_map(|(bom, lines, trailing)| {
                let mut s = Vec::new();
                if bom {
                    s.extend_from_slice(BOM);
                }
                for (l, end) in lines {
                    s.extend_from_slice(l.as_bytes());
                    s.extend_from_slice(end.as_bytes());
                }
                if trailing {
                    s.extend_from_slice(b"data: tail");
                }
                s
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn chunking_never_changes_events(text in sse_text(), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12)) {
            let expected = whole(&text);
            let mut pos: Vec<usize> = cuts.iter().map(|i| i.index(text.len() + 1)).collect();
            pos.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut last = 0;
            for p in pos {
                chunks.push(&text[last..p]); // may be empty: empty chunks must be harmless too
                last = p;
            }
            chunks.push(&text[last..]);
            prop_assert_eq!(collect(&mut SseFramer::new(), &chunks), expected.clone());
            // Byte-by-byte as the extreme case.
            let singles: Vec<&[u8]> = text.chunks(1).collect();
            prop_assert_eq!(collect(&mut SseFramer::new(), &singles), expected.clone());
            // Also with a small cap: oversize decisions must not depend on chunking either.
            let small = |chunks: &[&[u8]]| {
                let mut f = SseFramer::with_max_event_bytes(12);
                let evs = collect(&mut f, chunks);
                (evs, f.oversized_events())
            };
            prop_assert_eq!(small(&singles), small(&[&text[..]]));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// Hostile input: arbitrary bytes in arbitrary chunks never panic, and no buffer ever holds more than the
        /// cap, whatever the stream (endless lines, huge events, stray `\r`).
        #[test]
        fn arbitrary_bytes_never_panic_and_stay_under_the_cap(
            bytes in proptest::collection::vec(prop_oneof![
                4 => any::<u8>(),
                2 => Just(b'\n'),
                1 => Just(b'\r'),
                2 => Just(b':'),
                1 => Just(b'd'),
            ], 0..400),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..16),
            cap in 1usize..64,
        ) {
            let mut pos: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            pos.sort_unstable();
            let mut f = SseFramer::with_max_event_bytes(cap);
            let mut delivered = 0usize;
            let mut last = 0;
            for p in pos.into_iter().chain(std::iter::once(bytes.len())) {
                f.push(&bytes[last..p], &mut |ev: SseEvent<'_>| {
                    assert!(ev.data.len() <= cap);
                    delivered += 1;
                });
                prop_assert!(f.line.len() <= cap, "line {} > {cap}", f.line.len());
                prop_assert!(f.data.len() <= cap, "data {} > {cap}", f.data.len());
                prop_assert!(f.event.len() <= cap, "event {} > {cap}", f.event.len());
                last = p;
            }
            f.finish(&mut |_| delivered += 1);
            prop_assert_eq!(f.buffered_bytes(), 0);
            // An overflow is reported whenever a line was longer than the cap.
            let longest = bytes
                .split(|&c| c == b'\n' || c == b'\r')
                .map(<[u8]>::len)
                .max()
                .unwrap_or(0);
            if longest > cap + BOM.len() {
                prop_assert!(f.oversized_events() > 0);
            }
        }
    }
}
