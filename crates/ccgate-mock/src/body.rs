//! Response bodies: a full buffer, or a paced SSE stream with fault injection and optional gzip.

use std::future::Future as _;
use std::io::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use crate::config::BreakMode;
use crate::render::{overloaded_event, ping_event};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Body of every mock response.
pub enum MockBody {
    Full(Option<Bytes>),
    Sse(Box<SseBody>),
    /// Hostile answers: bombs and endless lines ([`crate::hostile`]).
    Repeat(Box<crate::hostile::RepeatBody>),
}

impl MockBody {
    pub fn empty() -> Self {
        MockBody::Full(None)
    }

    pub fn full(b: impl Into<Bytes>) -> Self {
        let b = b.into();
        if b.is_empty() {
            MockBody::Full(None)
        } else {
            MockBody::Full(Some(b))
        }
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            MockBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            MockBody::Sse(s) => s.poll_next(cx),
            MockBody::Repeat(r) => r.poll_next(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            MockBody::Full(b) => b.is_none(),
            MockBody::Sse(s) => s.done,
            MockBody::Repeat(r) => r.is_end(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MockBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            MockBody::Sse(_) | MockBody::Repeat(_) => SizeHint::default(),
        }
    }
}

/// Gzip a whole buffer.
pub fn gzip_all(data: &[u8]) -> Bytes {
    let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 2 + 32), Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(data);
    Bytes::from(enc.finish().unwrap_or_default())
}

/// Options of an SSE stream.
#[derive(Clone, Debug, Default)]
pub struct SseOptions {
    pub delay: Option<Duration>,
    pub ping_every: Option<u32>,
    pub fail_after: Option<u32>,
    pub break_mode: BreakMode,
    pub gzip: bool,
}

enum Phase {
    Running,
    /// Injected disconnect: wait a moment so the events already written get flushed, then fail.
    Breaking(Pin<Box<Sleep>>),
    /// Emit the gzip trailer (if any) and end.
    Finishing,
}

/// SSE stream: `first` (message_start), then `events`, with pings, pacing and faults.
pub struct SseBody {
    first: Option<Bytes>,
    events: Arc<[Bytes]>,
    idx: usize,
    emitted: u32,
    since_ping: u32,
    opts: SseOptions,
    sleep: Option<Pin<Box<Sleep>>>,
    gz: Option<GzEncoder<Vec<u8>>>,
    phase: Phase,
    done: bool,
}

impl SseBody {
    /// Applies `f` to every event (e.g. the hostile mock's key placeholders).
    pub fn map_events(&mut self, f: impl Fn(Bytes) -> Bytes) {
        self.first = self.first.take().map(&f);
        self.events = self.events.iter().cloned().map(&f).collect();
    }

    pub fn new(first: Bytes, events: Arc<[Bytes]>, opts: SseOptions) -> Self {
        let gz = opts
            .gzip
            .then(|| GzEncoder::new(Vec::new(), Compression::fast()));
        SseBody {
            first: Some(first),
            events,
            idx: 0,
            emitted: 0,
            since_ping: 0,
            opts,
            sleep: None,
            gz,
            phase: Phase::Running,
            done: false,
        }
    }

    fn remaining(&self) -> usize {
        usize::from(self.first.is_some()) + self.events.len() - self.idx
    }

    fn encode(&mut self, b: Bytes) -> Bytes {
        match &mut self.gz {
            None => b,
            Some(gz) => {
                let _ = gz.write_all(&b);
                let _ = gz.flush(); // sync flush: the event is decodable right away
                Bytes::from(std::mem::take(gz.get_mut()))
            }
        }
    }

    fn finish(&mut self) -> Option<Bytes> {
        let gz = self.gz.take()?;
        gz.finish().ok().filter(|v| !v.is_empty()).map(Bytes::from)
    }

    fn emit(&mut self, event: Bytes) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.emitted += 1;
        if let Some(d) = self.opts.delay {
            if self.remaining() > 0 {
                self.sleep = Some(Box::pin(tokio::time::sleep(d)));
            }
        }
        let data = self.encode(event);
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(s) = &mut self.sleep {
            if s.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.sleep = None;
        }
        match &mut self.phase {
            Phase::Breaking(s) => {
                if s.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.done = true;
                return Poll::Ready(Some(Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "ccgate-mock: injected disconnect",
                )))));
            }
            Phase::Finishing => {
                self.done = true;
                return Poll::Ready(self.finish().map(|b| Ok(Frame::data(b))));
            }
            Phase::Running => {}
        }

        // Fault injection after N events.
        if let Some(n) = self.opts.fail_after {
            if self.emitted >= n && self.remaining() > 0 {
                match self.opts.break_mode {
                    BreakMode::Disconnect => {
                        let s = Box::pin(tokio::time::sleep(Duration::from_millis(10)));
                        self.phase = Phase::Breaking(s);
                        return self.poll_next(cx);
                    }
                    BreakMode::ErrorEvent => {
                        self.phase = Phase::Finishing;
                        let data = self.encode(overloaded_event());
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
            }
        }

        if let Some(first) = self.first.take() {
            self.since_ping += 1;
            return self.emit(first);
        }
        if self.idx >= self.events.len() {
            self.done = true;
            return Poll::Ready(self.finish().map(|b| Ok(Frame::data(b))));
        }
        if let Some(k) = self.opts.ping_every {
            if k > 0 && self.since_ping >= k {
                self.since_ping = 0;
                return self.emit(ping_event());
            }
        }
        let ev = self.events[self.idx].clone();
        self.idx += 1;
        self.since_ping += 1;
        self.emit(ev)
    }
}
