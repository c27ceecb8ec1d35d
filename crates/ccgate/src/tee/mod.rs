//! Step 6 of the request path: the tee. Upstream bytes go to the client as they arrive; usage is parsed on the
//! side; the [`settle::Settlement`] is finished when the body ends, however it ends.
//!
//! * SSE is forwarded **event by event**: a chunk is passed on up to its last complete event and the
//!   incomplete tail is held until the rest arrives (usually the next chunk). The client therefore never sees a
//!   half event, and a mid-stream failure can append a clean `event: error` (Anthropic) or error chunk (OpenAI).
//! * Separate deadlines: `idle` between chunks and `total` for the whole exchange (a single request timeout is
//!   the wrong tool for long streams).
//! * **Client disconnect**: when the client drops the body, the tee hands the upstream stream to a tracked task
//!   that keeps reading it to the end (bounded by `server.clientDisconnectDrainSeconds`) so the usage is exact,
//!   then records the request as `client_aborted`. Shutdown waits for these tasks before flushing the ledger.
//! * **Hostile upstreams** (mirror sites are untrusted): nothing is buffered without a cap. A JSON answer is held
//!   to its end within [`MAX_BUFFERED_BODY`]; an incomplete SSE event within [`MAX_HELD_EVENT`], as is each event
//!   the side parsers frame. Past a cap the answer ends with the protocol's error (or, for JSON, whose head is
//!   already out, a broken body) and is recorded as `upstream_body_too_large`. Caps on decoded bytes are enough
//!   (no ratio check on the compressed size): memory is what a bomb attacks, streamed bytes leave at the client's
//!   pace, and the total deadline bounds the CPU a stream can take, checked on every chunk because a decoder with
//!   buffered input is always ready and never lets a timer fire. The tee also spends tokio's cooperative budget
//!   per chunk, so one always-ready stream yields to the other requests of its worker.
//! * **Key redaction**: every byte for the client passes the upstream's [`Redactor`] (whole events, or the whole
//!   JSON document), so an upstream echoing our key cannot hand it to a tenant.

pub mod settle;

use crate::forward::client::{next_chunk, UpstreamBody, UpstreamError, UpstreamResponse};
use crate::forward::redact::Redactor;
use crate::state::Gateway;
use bytes::{Bytes, BytesMut};
use ccgate_meter::sse::SseFramer;
use ccgate_meter::usage::{usage_from_json_response, StreamMeter, StreamStatus};
use ccgate_meter::Usage;
use ccgate_openai::responses::ResponsesStream;
use ccgate_openai::StreamTranslator;
use http_body::{Body, Frame};
use settle::{Ending, Settlement};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

/// What the tee does with the bytes.
pub enum Mode {
    /// `/anthropic` SSE: bytes unchanged, metered on the side.
    AnthropicSse { meter: StreamMeter },
    /// `/anthropic` JSON: the body is held to its end (within [`MAX_BUFFERED_BODY`]): the usage is read from it,
    /// our key is cut out of its decoded strings, and a `modelMap` rename is mapped back. An upstream sends a
    /// non-streamed answer all at once, when it is complete, so holding it costs the client no latency.
    AnthropicJson { copy: Vec<u8> },
    /// `/openai` streaming: Anthropic SSE in, OpenAI chunks (chat) or Responses events out.
    OpenAiSse {
        framer: SseFramer,
        meter: StreamMeter,
        translator: Box<SseTranslator>,
    },
}

/// The translators of the two OpenAI APIs, which the tee drives the same way.
pub enum SseTranslator {
    /// Chat Completions chunks.
    Chat(StreamTranslator),
    /// Responses events (`response.created` … `response.completed`).
    Responses(ResponsesStream),
}

impl SseTranslator {
    fn on_event(&mut self, name: &str, data: &[u8], usage: &Usage, out: &mut Vec<u8>) {
        match self {
            SseTranslator::Chat(t) => t.on_event(name, data, usage, out),
            SseTranslator::Responses(t) => t.on_event(name, data, usage, out),
        }
    }

    fn on_upstream_error(&mut self, message: &str, kind: &str, out: &mut Vec<u8>) {
        match self {
            SseTranslator::Chat(t) => t.on_upstream_error(message, kind, out),
            SseTranslator::Responses(t) => t.on_upstream_error(message, kind, out),
        }
    }

    fn is_finished(&self) -> bool {
        match self {
            SseTranslator::Chat(t) => t.is_finished(),
            SseTranslator::Responses(t) => t.is_finished(),
        }
    }
}

/// Largest answer buffered, decoded: a JSON answer (both endpoints). Real ones are far smaller (128k output
/// tokens are well under 1 MiB of JSON); past it the upstream is sending something else, such as a gzip bomb.
pub const MAX_BUFFERED_BODY: usize = 32 << 20;

/// Largest incomplete SSE event held back, the same cap as the side parsers' ([`ccgate_meter::sse::MAX_EVENT_BYTES`]):
/// an upstream streaming an endless line must not grow the buffer without bound.
pub const MAX_HELD_EVENT: usize = ccgate_meter::sse::MAX_EVENT_BYTES;

/// Error class of an answer cut at a cap.
pub const TOO_LARGE_CLASS: &str = "upstream_body_too_large";

struct Inner {
    upstream: UpstreamBody,
    /// A chunk (or error) read ahead while looking for the end of the stream, handed out next.
    stashed: Option<Result<Bytes, UpstreamError>>,
    mode: Mode,
    /// Taken when the request is settled: at the stream's last event (before its bytes leave, so a crash cannot
    /// lose a row whose answer the client has), or at the end.
    settlement: Option<Settlement>,
    gw: Arc<Gateway>,
    /// Fires when the shutdown grace period is over (`Gateway::cut`).
    cut: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The stream was cut by the shutdown.
    was_cut: bool,
    /// The upstream's first usage (`message_start`) was journaled.
    progress_noted: bool,
    status: u16,
    idle: Duration,
    /// One timer for both deadlines: it fires at `min(last chunk + idle, total_deadline)`.
    timer: Pin<Box<Sleep>>,
    total_deadline: Instant,
    last_data: Instant,
    drain_limit: Duration,
    /// Bytes of an incomplete SSE event, held until it completes.
    held: BytesMut,
    /// Bytes to emit before ending (a synthesised error event).
    tail: Option<Bytes>,
    failure: Option<String>,
    upstream_done: bool,
    /// The upstream's `content-length`, and the bytes passed on to the client so far: hyper stops polling a body
    /// once it has written the length it announced, so reaching it means the client got the whole answer.
    content_length: Option<u64>,
    sent: u64,
    /// `(upstream model, client model)`: map a `modelMap` rename back in the answer.
    model_rewrite: Option<(String, String)>,
    redactor: Option<Arc<Redactor>>,
    /// The answer went past a cap (held event, framed event, or JSON body): it is ended, not read further.
    over_cap: bool,
    /// The body must end with an error rather than cleanly: a JSON answer that could not be completed (its 200
    /// head is out; a broken body is the only signal left).
    broken: bool,
    /// Usage of a JSON answer, read at its end (the body itself then goes to the client).
    json_usage: Option<Option<Usage>>,
}

pub struct Tee {
    inner: Option<Box<Inner>>,
}

pub struct TeeConfig {
    pub idle: Duration,
    pub total_remaining: Duration,
    pub drain_limit: Duration,
    /// `(upstream model, client model)` when a `modelMap` rename must be mapped back.
    pub model_rewrite: Option<(String, String)>,
    /// The upstream's key redactor.
    pub redactor: Option<Arc<Redactor>>,
}

impl Tee {
    pub fn new(
        response: UpstreamResponse,
        mode: Mode,
        settlement: Settlement,
        cfg: TeeConfig,
    ) -> Tee {
        let status = response.status().as_u16();
        let content_length = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let gw = settlement.gateway().clone();
        let cut = Box::pin(gw.cut.clone().cancelled_owned());
        Tee {
            inner: Some(Box::new(Inner {
                upstream: response.into_body(),
                stashed: None,
                mode,
                settlement: Some(settlement),
                gw,
                cut,
                was_cut: false,
                progress_noted: false,
                status,
                idle: cfg.idle,
                timer: Box::pin(tokio::time::sleep(cfg.idle.min(cfg.total_remaining))),
                total_deadline: Instant::now() + cfg.total_remaining,
                last_data: Instant::now(),
                drain_limit: cfg.drain_limit,
                held: BytesMut::new(),
                tail: None,
                failure: None,
                upstream_done: false,
                content_length,
                sent: 0,
                model_rewrite: cfg.model_rewrite,
                redactor: cfg.redactor,
                over_cap: false,
                broken: false,
                json_usage: None,
            })),
        }
    }
}

impl Inner {
    /// The next upstream data chunk (a read-ahead one first); trailers are skipped.
    fn poll_upstream(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, UpstreamError>>> {
        if let Some(r) = self.stashed.take() {
            return Poll::Ready(Some(r));
        }
        loop {
            match Pin::new(&mut self.upstream).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
            }
        }
    }

    /// The stream's last event went by, so the upstream's end is due.
    fn end_is_due(&self) -> bool {
        match &self.mode {
            Mode::AnthropicSse { meter } | Mode::OpenAiSse { meter, .. } => {
                meter.saw_message_stop()
            }
            Mode::AnthropicJson { .. } => false,
        }
    }

    /// Processes one upstream chunk; returns the bytes for the client (possibly empty). Sets `over_cap` when the
    /// answer went past a cap; the caller then ends it ([`Inner::on_over_cap`]).
    fn on_chunk(&mut self, chunk: Bytes) -> Bytes {
        if let Some(s) = &mut self.settlement {
            s.set_ttft();
        }
        let out = self.frame_chunk(chunk);
        if let (Mode::AnthropicSse { meter } | Mode::OpenAiSse { meter, .. }, Some(s)) =
            (&self.mode, &mut self.settlement)
        {
            let started = s.started();
            s.trust.timing.on_chunk(started, meter.output_chars());
        }
        if !self.progress_noted {
            if let (Mode::AnthropicSse { meter } | Mode::OpenAiSse { meter, .. }, Some(s)) =
                (&self.mode, &mut self.settlement)
            {
                if meter.saw_message_start() {
                    self.progress_noted = true;
                    s.note_progress(meter.usage());
                }
            }
        }
        out
    }

    fn frame_chunk(&mut self, chunk: Bytes) -> Bytes {
        match &mut self.mode {
            Mode::AnthropicJson { copy } => {
                if copy.len() + chunk.len() > MAX_BUFFERED_BODY {
                    self.over_cap = true;
                } else {
                    copy.extend_from_slice(&chunk);
                }
                Bytes::new()
            }
            Mode::AnthropicSse { meter } => {
                meter.push_bytes(&chunk);
                let out = release_complete_events(&mut self.held, chunk);
                if self.held.len() > MAX_HELD_EVENT || meter.framing_overflowed() {
                    self.over_cap = true;
                }
                match &self.model_rewrite {
                    Some((from, to)) if !out.is_empty() => {
                        // The name sits in message_start, the first event; one rewrite and we are done.
                        let rewritten = rewrite_first_model(&out, from, to);
                        if rewritten.is_some() || meter.saw_message_start() {
                            self.model_rewrite = None;
                        }
                        rewritten.map(Bytes::from).unwrap_or(out)
                    }
                    _ => out,
                }
            }
            Mode::OpenAiSse {
                framer,
                meter,
                translator,
            } => {
                let mut out = Vec::new();
                translate(framer, meter, translator, Some(&chunk), &mut out);
                if framer.overflowed() {
                    self.over_cap = true;
                }
                Bytes::from(out)
            }
        }
    }

    /// Bytes for the client, past the key redactor. SSE output is whole events (see [`release_complete_events`]),
    /// so a key cannot straddle two calls; a JSON answer was redacted as a document in [`Inner::on_eof`].
    fn emit(&mut self, out: Bytes) -> Bytes {
        let out = match (&self.redactor, &self.mode) {
            (Some(r), Mode::AnthropicSse { .. } | Mode::OpenAiSse { .. }) if !out.is_empty() => {
                r.redact_events(out)
            }
            _ => out,
        };
        self.sent += out.len() as u64;
        out
    }

    /// The upstream ended cleanly (EOF). Returns any bytes still owed to the client.
    fn on_eof(&mut self) -> Option<Bytes> {
        let held = (!self.held.is_empty()).then(|| self.held.split().freeze());
        match &mut self.mode {
            Mode::AnthropicJson { copy } => {
                let body = std::mem::take(copy);
                self.json_usage = Some(usage_from_json_response(&body).map(|(u, _)| u));
                if let Some(s) = &mut self.settlement {
                    s.trust.answer = crate::trust::observe::AnswerTraits::of_json(
                        &body,
                        s.trust.request.thinking,
                    );
                }
                let body = match self.model_rewrite.take() {
                    Some((from, to)) => rewrite_first_model(&body, &from, &to).unwrap_or(body),
                    None => body,
                };
                let body = Bytes::from(body);
                let body = match &self.redactor {
                    Some(r) => r.redact_document(body),
                    None => body,
                };
                (!body.is_empty()).then_some(body)
            }
            Mode::AnthropicSse { meter } => {
                meter.finish_bytes();
                if meter.saw_message_stop() || meter.error().is_some() {
                    held
                } else {
                    // A stream without message_stop leaves Claude Code waiting for "the rest": end it explicitly.
                    self.failure = Some("upstream closed the stream before message_stop".into());
                    let mut out = held.map(|h| h.to_vec()).unwrap_or_default();
                    out.extend_from_slice(&anthropic_error_event(
                        "api_error",
                        "upstream closed the stream before it was complete",
                    ));
                    Some(Bytes::from(out))
                }
            }
            Mode::OpenAiSse {
                framer,
                meter,
                translator,
            } => {
                let mut out = Vec::new();
                translate(framer, meter, translator, None, &mut out);
                if !translator.is_finished() {
                    self.failure = Some("upstream closed the stream before message_stop".into());
                    translator.on_upstream_error(
                        "upstream closed the stream before it was complete",
                        "server_error",
                        &mut out,
                    );
                }
                (!out.is_empty()).then(|| Bytes::from(out))
            }
        }
    }

    /// The answer went past a cap: ends it like a failure, and drops what was buffered.
    fn on_over_cap(&mut self) -> Option<Bytes> {
        self.over_cap = true;
        self.held = BytesMut::new();
        if let Mode::AnthropicJson { copy } = &mut self.mode {
            *copy = Vec::new();
        }
        let limit = match self.mode {
            Mode::AnthropicJson { .. } => MAX_BUFFERED_BODY,
            _ => MAX_HELD_EVENT,
        };
        self.on_failure(format!(
            "the upstream's answer went past the gateway's limit of {} MiB",
            limit >> 20
        ))
    }

    /// The upstream failed mid-stream (broken connection or a deadline): build the protocol's error ending.
    fn on_failure(&mut self, reason: String) -> Option<Bytes> {
        if let Some(s) = &self.settlement {
            s.note_upstream_failure(&reason);
        }
        let msg = format!("upstream stream interrupted: {reason}");
        self.failure = Some(reason);
        self.error_ending("api_error", &msg)
    }

    /// The shutdown grace period is over: end the stream now, with an `overloaded_error` the client may retry
    /// (elsewhere, or here after the restart), and settle it with the usage seen so far.
    fn on_cut(&mut self) -> Option<Bytes> {
        self.was_cut = true;
        self.failure = Some("the gateway is shutting down".into());
        self.error_ending(
            "overloaded_error",
            "the gateway is shutting down and ended this stream; retry the request",
        )
    }

    /// The protocol's error ending: an error event (Anthropic), an error chunk (OpenAI), or for a JSON answer,
    /// whose 200 head is out, a broken body (the only honest signal left).
    fn error_ending(&mut self, error_type: &str, msg: &str) -> Option<Bytes> {
        match &mut self.mode {
            Mode::AnthropicJson { .. } => {
                self.broken = true;
                None
            }
            Mode::AnthropicSse { .. } => {
                self.held.clear();
                Some(Bytes::from(anthropic_error_event(error_type, msg)))
            }
            Mode::OpenAiSse { translator, .. } => {
                let mut out = Vec::new();
                translator.on_upstream_error(msg, "server_error", &mut out);
                Some(Bytes::from(out))
            }
        }
    }

    /// Prices and records the request, once (later calls do nothing).
    fn settle(&mut self, client_gone: bool) {
        let Some(mut settlement) = self.settlement.take() else {
            return;
        };
        let (status, failure, over_cap) = (self.status, &self.failure, self.over_cap);
        let (usage, stream_ending, error_class) = match &self.mode {
            Mode::AnthropicJson { copy } => {
                let usage = self
                    .json_usage
                    .take()
                    .unwrap_or_else(|| usage_from_json_response(copy).map(|(u, _)| u));
                // count_tokens answers carry no usage and are free: nothing is missing there.
                let missing = usage.is_none() && settlement.record.billable;
                (
                    usage.unwrap_or_default(),
                    if missing { Ending::Partial } else { Ending::Ok },
                    missing.then_some("usage_missing"),
                )
            }
            Mode::AnthropicSse { meter } | Mode::OpenAiSse { meter, .. } => {
                let o = meter.outcome();
                let (blocks, unsigned) = meter.thinking_blocks();
                settlement.trust.answer = crate::trust::observe::AnswerTraits {
                    model: o.model.clone(),
                    thinking_blocks: blocks,
                    unsigned_thinking_blocks: unsigned,
                };
                match o.status {
                    StreamStatus::Complete => (o.usage, Ending::Ok, None),
                    StreamStatus::Partial => (o.usage, Ending::Partial, Some("stream_incomplete")),
                    StreamStatus::Error => (
                        o.usage,
                        Ending::UpstreamError,
                        Some("upstream_stream_error"),
                    ),
                }
            }
        };
        let (ending, class) = if self.was_cut {
            (Ending::Interrupted, Some(settle::SHUTDOWN_CLASS))
        } else if over_cap {
            (Ending::UpstreamError, Some(TOO_LARGE_CLASS))
        } else if failure.is_some() && stream_ending != Ending::Ok {
            (
                Ending::UpstreamError,
                Some(error_class.unwrap_or("upstream_stream_broken")),
            )
        } else if client_gone {
            (Ending::ClientAborted, error_class)
        } else {
            (stream_ending, error_class)
        };
        settlement.finish(status, &usage, ending, class);
    }
}

/// Frames upstream bytes (`None`: end of stream), meters each event, then translates it with the usage so far.
fn translate(
    framer: &mut SseFramer,
    meter: &mut StreamMeter,
    translator: &mut SseTranslator,
    chunk: Option<&[u8]>,
    out: &mut Vec<u8>,
) {
    let mut on_event = |ev: ccgate_meter::sse::SseEvent<'_>| {
        meter.on_event(ev.event, ev.data);
        translator.on_event(ev.event, ev.data, meter.usage(), out);
    };
    match chunk {
        Some(c) => framer.push(c, &mut on_event),
        None => framer.finish(&mut on_event),
    }
}

/// Passes on `chunk` up to its last complete SSE event; keeps the rest in `held`. Zero-copy when nothing is held
/// and the chunk ends on an event boundary (the common case).
fn release_complete_events(held: &mut BytesMut, chunk: Bytes) -> Bytes {
    if held.is_empty() {
        match last_event_end(&chunk) {
            Some(end) if end == chunk.len() => chunk,
            Some(end) => {
                held.extend_from_slice(&chunk[end..]);
                chunk.slice(..end)
            }
            None => {
                held.extend_from_slice(&chunk);
                Bytes::new()
            }
        }
    } else {
        let old = held.len();
        held.extend_from_slice(&chunk);
        // What was held holds no blank line, so only the new bytes (and the 3 before them, where a blank line may
        // start) are searched: an endless line must not cost a scan of everything held for every chunk.
        let from = old.saturating_sub(3);
        match last_event_end(&held[from..]) {
            Some(end) => held.split_to(from + end).freeze(),
            None => Bytes::new(),
        }
    }
}

/// Index just past the last blank line (`\n\n`, `\r\n\r\n` or `\r\r`) in `b`.
fn last_event_end(b: &[u8]) -> Option<usize> {
    let mut pos = b.len();
    while let Some(i) = memchr::memrchr2(b'\n', b'\r', &b[..pos]) {
        // b[i] is a line end; is it preceded by another line end (i.e. a blank line)?
        let prev = if b[i] == b'\n' && i > 0 && b[i - 1] == b'\r' {
            i.checked_sub(1)
        } else {
            Some(i)
        };
        if let Some(p) = prev {
            if p > 0 && (b[p - 1] == b'\n' || b[p - 1] == b'\r') {
                return Some(i + 1);
            }
        }
        pos = i;
    }
    None
}

/// Replaces the answer's model name `from` with `to`: the top-level `model` of a JSON body, or `message.model` of the
/// first `message_start` event in SSE bytes. `None` when that model is absent or is not `from`. The value is located
/// by the JSON parser, never by a text search: `"model"` inside a string (a quoted prompt, a tool input) is not the
/// key. Only that value's bytes change.
pub fn rewrite_first_model(bytes: &[u8], from: &str, to: &str) -> Option<Vec<u8>> {
    let span = if bytes.trim_ascii_start().starts_with(b"{") {
        model_span_if(bytes, bytes, from)?
    } else {
        bytes
            .split(|&c| c == b'\n' || c == b'\r')
            .filter_map(|line| line.strip_prefix(b"data:"))
            .find_map(|data| message_start_model(bytes, data, from))??
    };
    let to_json = serde_json::to_string(to).ok()?;
    let mut out = Vec::with_capacity(bytes.len() + to_json.len());
    out.extend_from_slice(&bytes[..span.start]);
    out.extend_from_slice(to_json.as_bytes());
    out.extend_from_slice(&bytes[span.end..]);
    Some(out)
}

/// For the data of a `message_start` event: `Some` with the span in `whole` of `message.model` when it is `from`.
/// `None` when `data` is not a `message_start` event, so the caller looks further.
fn message_start_model(
    whole: &[u8],
    data: &[u8],
    from: &str,
) -> Option<Option<std::ops::Range<usize>>> {
    let members = crate::api::scan::top_level(data).ok()?;
    let field = |name: &str| members.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
    if serde_json::from_str::<String>(field("type")?.get()).ok()? != "message_start" {
        return None;
    }
    Some(field("message").and_then(|m| model_span_if(whole, m.get().as_bytes(), from)))
}

/// The span in `whole` of the top-level `model` of the JSON object `obj` (a slice of `whole`), when it is `from`.
fn model_span_if(whole: &[u8], obj: &[u8], from: &str) -> Option<std::ops::Range<usize>> {
    let members = crate::api::scan::top_level(obj).ok()?;
    let (_, raw) = members.iter().find(|(k, _)| k == "model")?;
    if serde_json::from_str::<String>(raw.get()).ok()? != from {
        return None;
    }
    crate::api::scan::span_in(whole, raw).ok()
}

pub fn anthropic_error_event(error_type: &str, message: &str) -> Vec<u8> {
    let data =
        serde_json::json!({"type": "error", "error": {"type": error_type, "message": message}});
    format!("event: error\ndata: {data}\n\n").into_bytes()
}

impl Body for Tee {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        loop {
            if let Some(tail) = inner.tail.take() {
                let tail = inner.emit(tail);
                if inner.upstream_done && !inner.broken {
                    this.finish();
                }
                return Poll::Ready(Some(Ok(Frame::data(tail))));
            }
            if inner.upstream_done {
                let broken = inner.broken;
                this.finish();
                if broken {
                    return Poll::Ready(Some(Err(std::io::Error::other(
                        "upstream response broke",
                    ))));
                }
                return Poll::Ready(None);
            }
            if !inner.was_cut && inner.cut.as_mut().poll(cx).is_ready() {
                inner.tail = inner.on_cut();
                inner.upstream_done = true;
                continue;
            }
            if inner.timer.as_mut().poll(cx).is_ready() {
                // The timer is not pushed back on every chunk (that would re-arm it thousands of times per
                // second); when it fires, it checks which deadline really passed and re-arms if neither did.
                let now = Instant::now();
                if now >= inner.total_deadline {
                    inner.tail = inner.on_failure("total deadline exceeded".into());
                    inner.upstream_done = true;
                } else if now >= inner.last_data + inner.idle {
                    let idle = human_duration(inner.idle);
                    inner.tail = inner.on_failure(format!("no data from upstream for {idle}"));
                    inner.upstream_done = true;
                } else {
                    let next = (inner.last_data + inner.idle).min(inner.total_deadline);
                    inner.timer.as_mut().reset(next);
                }
                continue;
            }
            // An upstream whose bytes are always ready (a decoder with buffered input) never lets the timer above
            // fire: the total deadline is also checked here, on every chunk.
            let now = Instant::now();
            if now >= inner.total_deadline {
                inner.tail = inner.on_failure("total deadline exceeded".into());
                inner.upstream_done = true;
                continue;
            }
            // One unit of the task's cooperative budget per chunk: when it runs out, the task yields (tokio wakes
            // it again) and the worker's other connections get their turn.
            let coop = match tokio::task::coop::poll_proceed(cx) {
                Poll::Ready(c) => c,
                Poll::Pending => return Poll::Pending,
            };
            match inner.poll_upstream(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    coop.made_progress();
                    inner.last_data = now;
                    let mut out = inner.on_chunk(chunk);
                    if inner.over_cap {
                        inner.tail = inner.on_over_cap();
                        inner.upstream_done = true;
                        if out.is_empty() {
                            continue;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(inner.emit(out)))));
                    }
                    if out.is_empty() {
                        continue;
                    }
                    if inner.end_is_due() {
                        // Look for the end now: finishing with this frame lets hyper send the chunked
                        // terminator in the same write as the last event.
                        match inner.poll_upstream(cx) {
                            Poll::Ready(None) => {
                                if let Some(tail) = inner.on_eof() {
                                    out = concat(&out, &tail);
                                }
                                inner.upstream_done = true;
                                let out = inner.emit(out);
                                this.finish();
                                return Poll::Ready(Some(Ok(Frame::data(out))));
                            }
                            Poll::Ready(Some(r)) => inner.stashed = Some(r),
                            Poll::Pending => {}
                        }
                        // The answer is complete but its end has not arrived: record it now, before its last
                        // event leaves (a crash after the client has its answer must not lose the row).
                        inner.settle(false);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(inner.emit(out)))));
                }
                Poll::Ready(Some(Err(e))) => {
                    coop.made_progress();
                    inner.tail = inner.on_failure(e.to_string());
                    inner.upstream_done = true;
                }
                Poll::Ready(None) => {
                    coop.made_progress();
                    inner.tail = inner.on_eof();
                    inner.upstream_done = true;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_none()
    }
}

impl Tee {
    /// The upstream is done and everything owed to the client is out: record the request.
    fn finish(&mut self) {
        if let Some(mut inner) = self.inner.take() {
            inner.settle(false);
        }
    }
}

fn concat(a: &[u8], b: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(a.len() + b.len());
    v.extend_from_slice(a);
    v.extend_from_slice(b);
    Bytes::from(v)
}

impl Drop for Tee {
    fn drop(&mut self) {
        let Some(mut inner) = self.inner.take() else {
            return;
        };
        if inner.upstream_done || inner.settlement.is_none() {
            // Ended, or settled at its last event: nothing left to meter.
            inner.settle(false);
            return;
        }
        if inner.content_length.is_some_and(|len| inner.sent >= len) {
            // Every byte of a fixed-length answer was passed on and hyper, having written the announced length,
            // dropped the body before its end-of-stream: a complete exchange, not a client hang-up.
            let _ = inner.on_eof();
            inner.settle(false);
            return;
        }
        // The client hung up mid-body: keep reading the upstream for exact usage, on a tracked task.
        let tasks = inner.gw.tasks.clone();
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            inner.settle(true);
            return;
        };
        let drain = async move {
            let deadline = (Instant::now() + inner.drain_limit).min(inner.total_deadline);
            let cut = inner.gw.cut.clone();
            loop {
                if cut.is_cancelled() {
                    inner.was_cut = true;
                    break;
                }
                // Checked on every chunk, not only when the upstream makes us wait: an always-ready upstream
                // (a decoder with buffered input) would otherwise keep this task busy past any deadline.
                if Instant::now() >= deadline {
                    break;
                }
                let next = match inner.stashed.take() {
                    Some(r) => Ok(Some(r)),
                    None => tokio::select! {
                        r = tokio::time::timeout_at(deadline, next_chunk(&mut inner.upstream)) => r,
                        _ = cut.cancelled() => continue,
                    },
                };
                match next {
                    Ok(Some(Ok(chunk))) => {
                        let _ = inner.on_chunk(chunk);
                        if inner.over_cap {
                            let _ = inner.on_over_cap();
                            break;
                        }
                    }
                    Ok(Some(Err(_))) | Err(_) => break,
                    Ok(None) => {
                        let _ = inner.on_eof();
                        inner.failure = None;
                        break;
                    }
                }
                // Yields to the worker's other tasks whenever this one has used its budget.
                tokio::task::consume_budget().await;
            }
            inner.settle(true);
        };
        handle.spawn(tasks.track_future(drain));
    }
}

/// Why [`read_full`] gave up.
#[derive(Debug)]
pub enum ReadError {
    /// The body decoded to more than [`MAX_BUFFERED_BODY`].
    TooLarge,
    /// A deadline passed or the body broke (worded for the tenant).
    Failed(String),
}

/// Reads a whole 2xx body (the `/openai` non-streaming path) of at most [`MAX_BUFFERED_BODY`] decoded bytes, with
/// the idle and total deadlines.
pub async fn read_full(
    response: UpstreamResponse,
    idle: Duration,
    total: Duration,
) -> Result<Bytes, ReadError> {
    let mut body = response.into_body();
    let mut buf = BytesMut::new();
    let deadline = Instant::now() + total;
    loop {
        // Checked on every chunk: the timeouts below only get to fire when the body makes us wait.
        if Instant::now() >= deadline {
            return Err(ReadError::Failed("total deadline exceeded".into()));
        }
        let next = tokio::time::timeout(idle, next_chunk(&mut body));
        match tokio::time::timeout_at(deadline, next).await {
            Err(_) => return Err(ReadError::Failed("total deadline exceeded".into())),
            Ok(Err(_)) => {
                return Err(ReadError::Failed(format!(
                    "no data from upstream for {}",
                    human_duration(idle)
                )))
            }
            Ok(Ok(None)) => return Ok(buf.freeze()),
            Ok(Ok(Some(Ok(chunk)))) => {
                if buf.len() + chunk.len() > MAX_BUFFERED_BODY {
                    return Err(ReadError::TooLarge);
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(Ok(Some(Err(e)))) => return Err(ReadError::Failed(e.to_string())),
        }
        tokio::task::consume_budget().await;
    }
}

/// `300 ms`, `5 s`, `2.5 s`: deadlines as an operator configured them.
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Usage of a JSON answer, for paths that buffer the body themselves.
pub fn json_usage(body: &[u8]) -> Option<Usage> {
    usage_from_json_response(body).map(|(u, _)| u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_only_complete_events() {
        let mut held = BytesMut::new();
        let out = release_complete_events(
            &mut held,
            Bytes::from_static(b"event: a\ndata: 1\n\nevent: b\nda"),
        );
        assert_eq!(&out[..], b"event: a\ndata: 1\n\n");
        let out = release_complete_events(&mut held, Bytes::from_static(b"ta: 2\n"));
        assert!(out.is_empty());
        let out = release_complete_events(
            &mut held,
            Bytes::from_static(b"\nevent: c\ndata: 3\r\n\r\n"),
        );
        assert_eq!(&out[..], b"event: b\ndata: 2\n\nevent: c\ndata: 3\r\n\r\n");
        assert!(held.is_empty());
    }

    #[test]
    fn model_rewrite() {
        let b = br#"event: message_start
data: {"type":"message_start","message":{"model": "sonnet-x","content":[]}}

"#;
        let out = rewrite_first_model(b, "sonnet-x", "claude-sonnet-4-6").unwrap();
        assert!(String::from_utf8(out)
            .unwrap()
            .contains(r#""model": "claude-sonnet-4-6""#));
        assert!(rewrite_first_model(br#"{"model":"other"}"#, "sonnet-x", "y").is_none());
    }

    #[test]
    fn model_rewrite_ignores_model_inside_strings() {
        // SSE: the first `"model": "sonnet-x"` in the text is inside a string, before the real key.
        let b = concat!(
            "event: message_start\n",
            r#"data: {"type":"message_start","note":"{\"model\": \"sonnet-x\"}","message":{"id":"m","content":[],"#,
            r#""x":"\"model\":\"sonnet-x\"","model":"sonnet-x","usage":{}}}"#,
            "\n\n"
        );
        let out = String::from_utf8(
            rewrite_first_model(b.as_bytes(), "sonnet-x", "claude-sonnet-4-6").unwrap(),
        )
        .unwrap();
        assert_eq!(
            out,
            b.replace(r#""model":"sonnet-x""#, r#""model":"claude-sonnet-4-6""#)
        );
        let data = out.lines().nth(1).unwrap().strip_prefix("data: ").unwrap();
        let v: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["message"]["model"], "claude-sonnet-4-6");
        assert_eq!(v["note"], r#"{"model": "sonnet-x"}"#);

        // JSON answer: a text block quoting `"model":"sonnet-x"` comes before the top-level key.
        let b = br#"{"content":[{"type":"text","text":"\"model\":\"sonnet-x\""}], "model" : "sonnet-x","usage":{}}"#;
        let out = rewrite_first_model(b, "sonnet-x", "claude-sonnet-4-6").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model"], "claude-sonnet-4-6");
        assert_eq!(v["content"][0]["text"], r#""model":"sonnet-x""#);

        // Only `model` strings count: a `model` key of another event or nested object is not the answer's.
        let other = "event: ping\ndata: {\"type\":\"ping\",\"model\":\"sonnet-x\"}\n\n";
        assert!(rewrite_first_model(other.as_bytes(), "sonnet-x", "y").is_none());
        assert!(
            rewrite_first_model(br#"{"message":{"model":"sonnet-x"}}"#, "sonnet-x", "y").is_none()
        );
        // An unnamed message_start event (`data:` only) is found by its type.
        let unnamed =
            "data:{\"type\":\"message_start\",\"message\":{\"model\":\"sonnet-x\"}}\r\n\r\n";
        let out = rewrite_first_model(unnamed.as_bytes(), "sonnet-x", "y").unwrap();
        assert_eq!(
            out,
            b"data:{\"type\":\"message_start\",\"message\":{\"model\":\"y\"}}\r\n\r\n"
        );
    }

    #[test]
    fn last_event_end_variants() {
        assert_eq!(last_event_end(b"a\n\nb"), Some(3));
        assert_eq!(last_event_end(b"a\r\n\r\n"), Some(5));
        assert_eq!(last_event_end(b"a\nb\n"), None);
        assert_eq!(last_event_end(b"\n\n"), Some(2));
        assert_eq!(last_event_end(b"a\r\rb"), Some(3));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// However the bytes are chunked, what is released plus what is held is the input, in order; what is
        /// released always ends on an event boundary, and what is held never holds a complete event.
        #[test]
        fn release_keeps_every_byte_and_holds_only_an_incomplete_event(
            bytes in proptest::collection::vec(proptest::prop_oneof![
                4 => proptest::prelude::any::<u8>(),
                3 => proptest::strategy::Just(b'\n'),
                1 => proptest::strategy::Just(b'\r'),
            ], 0..1024),
            cuts in proptest::collection::vec(proptest::prelude::any::<proptest::sample::Index>(), 0..16),
        ) {
            let mut pos: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            pos.sort_unstable();
            let mut held = BytesMut::new();
            let mut out = Vec::new();
            let mut last = 0;
            for p in pos.into_iter().chain(std::iter::once(bytes.len())) {
                let released = release_complete_events(&mut held, Bytes::copy_from_slice(&bytes[last..p]));
                if !released.is_empty() {
                    proptest::prop_assert_eq!(last_event_end(&released), Some(released.len()));
                }
                out.extend_from_slice(&released);
                proptest::prop_assert_eq!(last_event_end(&held), None);
                last = p;
            }
            out.extend_from_slice(&held);
            proptest::prop_assert_eq!(out, bytes);
        }
    }
}
