//! `ccgate_mock`: a fast mock of an Anthropic-compatible upstream, for CCGate's integration
//! tests and benchmarks.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let mock = ccgate_mock::start(ccgate_mock::MockConfig::default()).await?;
//! let base = mock.url(); // "http://127.0.0.1:PORT"; POST {base}/v1/messages
//! # let _ = base;
//! mock.shutdown();
//! # Ok(()) }
//! ```
//!
//! Behaviour is set mock-wide with [`MockConfig`] (also `POST /_mock/config`) and per request
//! with `x-mock-<field>` headers (see [`config`]).

pub mod body;
pub mod config;
pub mod hostile;
pub mod record;
pub mod render;
mod server;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::task::JoinHandle;

pub use config::{BreakMode, MockConfig, ToolMode};
pub use record::RecordedRequest;

use server::{Active, ListenerSlot, Shared};

/// A running mock server. Dropping it (or calling [`MockHandle::shutdown`]) closes the
/// listener and all open connections.
pub struct MockHandle {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    listener: ListenerSlot,
    task: Mutex<Option<JoinHandle<()>>>,
    /// Stops the dedicated runtime of [`start_background`].
    runtime_stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

/// Start a mock on `127.0.0.1:0` (a free port) in a background task of the current runtime.
pub async fn start(config: MockConfig) -> std::io::Result<MockHandle> {
    start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config).await
}

/// Start a mock on `addr`.
pub async fn start_on(addr: SocketAddr, config: MockConfig) -> std::io::Result<MockHandle> {
    let shared = Arc::new(Shared::new(config));
    let (addr, listener, task) = server::spawn(addr, shared.clone()).await?;
    Ok(MockHandle {
        addr,
        shared,
        listener,
        task: Mutex::new(Some(task)),
        runtime_stop: Mutex::new(None),
    })
}

/// Start a mock on `127.0.0.1:0` on its own thread with its own 2-worker tokio runtime
/// (usable from sync code; keeps the mock off the caller's runtime). The runtime stops on
/// shutdown/drop.
pub fn start_background(config: MockConfig) -> std::io::Result<MockHandle> {
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("ccgate-mock".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("ccgate-mock-worker")
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                let ok = start(config).await.map(|h| tx.send(Ok(h)).is_ok());
                if let Err(e) = ok {
                    let _ = tx.send(Err(e));
                    return;
                }
                let _ = stop_rx.await;
            });
        })?;
    let handle = rx
        .recv()
        .map_err(|_| std::io::Error::other("ccgate-mock runtime thread died"))??;
    *handle.runtime_stop.lock() = Some(stop_tx);
    Ok(handle)
}

impl MockHandle {
    /// Base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests recorded so far, oldest first (admin requests excluded; at most
    /// [`record::MAX_RECORDED`] are kept).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.recorder.snapshot()
    }

    /// The last recorded request.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.shared.recorder.last()
    }

    /// Forget recorded requests and reset [`MockHandle::request_count`].
    pub fn clear_requests(&self) {
        self.shared.recorder.clear();
    }

    /// Number of API requests received (counted even when recording is off).
    pub fn request_count(&self) -> u64 {
        self.shared.recorder.count()
    }

    /// Replace the mock-wide behaviour (takes effect for the next request).
    pub fn set_config(&self, config: MockConfig) {
        self.shared.active.store(Arc::new(Active::new(config)));
    }

    /// The current mock-wide behaviour.
    pub fn config(&self) -> MockConfig {
        self.shared.active.load().cfg.clone()
    }

    /// Stop the server: the listening socket is closed before this returns (new connections
    /// are refused) and open connections are dropped. Idempotent.
    pub fn shutdown(&self) {
        drop(self.listener.lock().take());
        if let Some(task) = self.task.lock().take() {
            task.abort();
        }
        if let Some(stop) = self.runtime_stop.lock().take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for MockHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for MockHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockHandle")
            .field("addr", &self.addr)
            .finish()
    }
}
