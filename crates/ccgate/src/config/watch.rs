//! Hot reload: the config folder is polled every 500 ms (robust across editors that replace files, network
//! mounts and container volumes, where inotify events go missing). A change is validated in full; a valid
//! config is swapped in atomically, an invalid one is logged with the same message `ccgate config validate`
//! prints, and the last good config stays in force.

use super::load::{load_dir, PRICING_FILE, SERVER_FILE, TENANTS_FILE, UPSTREAMS_FILE};
use crate::state::Gateway;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

type Fingerprint = Vec<(Option<SystemTime>, u64, u64)>;

fn fingerprint(dir: &Path) -> Fingerprint {
    [SERVER_FILE, UPSTREAMS_FILE, TENANTS_FILE, PRICING_FILE]
        .iter()
        .map(|f| {
            let p = dir.join(f);
            match std::fs::metadata(&p) {
                Ok(m) => {
                    // Content hash too: mtime granularity can hide two quick edits.
                    let hash = std::fs::read(&p).map(|b| fnv(&b)).unwrap_or(0);
                    (m.modified().ok(), m.len(), hash)
                }
                Err(_) => (None, 0, 0),
            }
        })
        .collect()
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x100000001b3)
    })
}

pub fn spawn(gw: Arc<Gateway>) {
    let dir = gw.config_dir.clone();
    tokio::spawn(async move {
        let mut last = fingerprint(&dir);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = gw.shutdown.cancelled() => return,
            }
            let now = {
                let dir = dir.clone();
                match tokio::task::spawn_blocking(move || fingerprint(&dir)).await {
                    Ok(f) => f,
                    Err(_) => continue,
                }
            };
            if now == last {
                continue;
            }
            last = now;
            reload(&gw);
        }
    });
}

/// Reads the config folder and applies it if valid; otherwise logs why and keeps the running config (shown by
/// `/health` and the dashboard until the files are fixed). The poller calls it on a change, SIGHUP on demand.
pub fn reload(gw: &Gateway) {
    let dir = &gw.config_dir;
    let outcome = match load_dir(dir) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                tracing::warn!("{w}");
            }
            // The ledger is opened once: a changed store or instance name must not look applied.
            let restart_needed = {
                let running = gw.rt();
                loaded.config.storage != running.config.storage
                    || loaded.config.server.instance_id != running.config.server.instance_id
            };
            if restart_needed {
                tracing::warn!(
                    "storage.url and server.instanceId are read at start only: the change applies at the next start"
                );
            }
            gw.apply(loaded).map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    let mut rejected = gw.rejected_config.lock();
    match outcome {
        Ok(()) => {
            tracing::info!("configuration reloaded");
            *rejected = None;
        }
        Err(e) => {
            tracing::error!("config reload rejected, keeping the last good config: {e}");
            // `since` is when the files first stopped matching the running config.
            let since = rejected.as_ref().map_or_else(chrono::Utc::now, |r| r.since);
            *rejected = Some(crate::state::RejectedConfig { error: e, since });
        }
    }
}

/// SIGHUP reloads the config at once, as the poller would on a change (`systemctl reload ccgate`). Without this
/// handler SIGHUP's default action would end the process.
pub fn spawn_sighup(gw: Arc<Gateway>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; config changes still apply within a second");
                return;
            }
        };
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    got = hup.recv() => if got.is_none() { return },
                    _ = gw.shutdown.cancelled() => return,
                }
                tracing::info!("SIGHUP: reloading the configuration");
                let gw = gw.clone();
                // Reading and validating the files is blocking work.
                let _ = tokio::task::spawn_blocking(move || reload(&gw)).await;
            }
        });
    }
    #[cfg(not(unix))]
    let _ = gw;
}
