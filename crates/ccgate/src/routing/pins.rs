//! Session pins: once a session had to leave its rendezvous upstream (a failure moved it), it stays on the
//! upstream that served it, so its prompt cache is not rebuilt twice (once on the way out, once on the way back).
//! Pins expire after [`PIN_TTL`] (longer than the 1-hour cache TTL); without a pin, instances agree by rendezvous
//! hashing alone. On a shared PostgreSQL store every change is also published to the other instances
//! ([`super::shared_pins`]), so they agree on where a moved session lives.

use parking_lot::RwLock;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

pub const PIN_TTL: Duration = Duration::from_secs(2 * 3600);
const SHARDS: usize = 32;
/// Bound per shard; the oldest pins go first when it is reached.
const MAX_PER_SHARD: usize = 8192;

/// A pin set (`Some(upstream)`) or dropped (`None`: the session is back on its hashed upstream), for the others.
pub type PinChange = (String, Option<String>);

#[derive(Default)]
pub struct SessionPins {
    shards: [RwLock<HashMap<String, (String, Instant)>>; SHARDS],
    /// Where changes made here are published (set when the store is shared).
    outbox: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<PinChange>>,
}

impl SessionPins {
    fn shard(&self, session: &str) -> &RwLock<HashMap<String, (String, Instant)>> {
        let mut h = DefaultHasher::new();
        session.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// The upstream id this session is pinned to, if the pin is fresh.
    pub fn get(&self, session: &str) -> Option<String> {
        let shard = self.shard(session).read();
        let (id, at) = shard.get(session)?;
        (at.elapsed() < PIN_TTL).then(|| id.clone())
    }

    /// Records that `upstream_id` served `session`; `rendezvous_choice` is where hashing alone would send it.
    /// Only a departure from the hashed choice is remembered (or a pin refreshed), so the common case writes nothing.
    pub fn record(&self, session: &str, upstream_id: &str, rendezvous_choice: Option<&str>) {
        let pinned = self.get(session);
        if pinned.is_none() && rendezvous_choice == Some(upstream_id) {
            return;
        }
        if pinned.as_deref() == Some(upstream_id)
            && self
                .shard(session)
                .read()
                .get(session)
                .is_some_and(|(_, at)| at.elapsed() < PIN_TTL / 2)
        {
            return;
        }
        let mut shard = self.shard(session).write();
        if shard.len() >= MAX_PER_SHARD {
            shard.retain(|_, (_, at)| at.elapsed() < PIN_TTL);
            if shard.len() >= MAX_PER_SHARD {
                if let Some(oldest) = shard
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone())
                {
                    shard.remove(&oldest);
                }
            }
        }
        let change = if rendezvous_choice == Some(upstream_id) {
            shard.remove(session).map(|_| None)
        } else {
            shard.insert(
                session.to_string(),
                (upstream_id.to_string(), Instant::now()),
            );
            Some(Some(upstream_id.to_string()))
        };
        drop(shard);
        if let (Some(change), Some(outbox)) = (change, self.outbox.get()) {
            let _ = outbox.send((session.to_string(), change));
        }
    }

    /// From now on, changes made here are sent to `outbox`.
    pub fn publish_to(&self, outbox: tokio::sync::mpsc::UnboundedSender<PinChange>) {
        let _ = self.outbox.set(outbox);
    }

    /// A change another instance made, `age` ago: applied here without publishing it again.
    pub fn apply_remote(&self, session: &str, upstream_id: Option<&str>, age: Duration) {
        let mut shard = self.shard(session).write();
        match upstream_id {
            None => {
                shard.remove(session);
            }
            Some(id) if age < PIN_TTL => {
                let at = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
                if shard.len() < MAX_PER_SHARD || shard.contains_key(session) {
                    shard.insert(session.to_string(), (id.to_string(), at));
                }
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_only_departures() {
        let p = SessionPins::default();
        p.record("s", "a", Some("a"));
        assert_eq!(p.get("s"), None);
        p.record("s", "b", Some("a"));
        assert_eq!(p.get("s").as_deref(), Some("b"));
    }
}
