//! Session pins shared by the instances of one PostgreSQL store (table `session_pins`): a failover that moves a
//! Claude Code session on one instance moves it on all of them, so its prompt cache is built once.
//!
//! Pins change rarely (only when a failure moves a session, or it moves back), so instances do not ask the database
//! per request: each publishes its changes as they happen and polls for the others' every [`POLL`]. A pin made on
//! one instance is therefore followed by the others within about [`POLL`] plus one write.

use super::pins::{PinChange, SessionPins, PIN_TTL};
use sqlx::{PgPool, Row};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How often an instance reads the pins the others made.
pub const POLL: Duration = Duration::from_millis(500);
/// Rows are read again this far back: a pin's `updated_at` is taken before its transaction commits, so a row can
/// become visible after a poll that already looked past its time.
const OVERLAP: Duration = Duration::from_secs(5);

/// Publishes this instance's pin changes and applies the others', until `shutdown`.
pub fn spawn(
    pool: PgPool,
    pins: Arc<SessionPins>,
    instance_id: String,
    shutdown: CancellationToken,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    pins.publish_to(tx);
    tokio::spawn(publish(
        pool.clone(),
        rx,
        instance_id.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(follow(pool, pins, instance_id, shutdown));
}

async fn publish(
    pool: PgPool,
    mut rx: mpsc::UnboundedReceiver<PinChange>,
    instance_id: String,
    shutdown: CancellationToken,
) {
    loop {
        let change = tokio::select! {
            _ = shutdown.cancelled() => return,
            c = rx.recv() => match c { Some(c) => c, None => return },
        };
        let (session, upstream) = change;
        // A failed write is retried a few times; a pin that never reaches the others only costs a cache rebuild.
        for attempt in 0..5u32 {
            let r = sqlx::query(
                "INSERT INTO session_pins (session_key, upstream_id, updated_at, instance_id) VALUES ($1, $2, now(), $3)
                 ON CONFLICT (session_key) DO UPDATE SET upstream_id = excluded.upstream_id,
                   updated_at = excluded.updated_at, instance_id = excluded.instance_id",
            )
            .bind(&session)
            // An empty id marks a pin dropped (the session is back on its hashed upstream).
            .bind(upstream.as_deref().unwrap_or(""))
            .bind(&instance_id)
            .execute(&pool)
            .await;
            match r {
                Ok(_) => break,
                Err(e) if attempt == 4 => {
                    tracing::warn!(error = %e, "session pins: could not share a pin with the other instances");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200 << attempt)).await,
            }
        }
    }
}

async fn follow(
    pool: PgPool,
    pins: Arc<SessionPins>,
    instance_id: String,
    shutdown: CancellationToken,
) {
    let mut interval = tokio::time::interval(POLL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Seconds since the epoch (database clock) of the newest row seen.
    let mut seen: Option<f64> = None;
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        ticks += 1;
        let rows = sqlx::query(
            "SELECT session_key, upstream_id, EXTRACT(EPOCH FROM updated_at)::float8 AS at,
                    EXTRACT(EPOCH FROM now() - updated_at)::float8 AS age
             FROM session_pins
             WHERE instance_id <> $1 AND updated_at > COALESCE(to_timestamp($2), now() - make_interval(secs => $3))
             ORDER BY updated_at",
        )
        .bind(&instance_id)
        .bind(seen.map(|s| s - OVERLAP.as_secs_f64()))
        .bind(PIN_TTL.as_secs_f64())
        .fetch_all(&pool)
        .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                tracing::debug!(error = %e, "session pins: cannot read the other instances' pins");
                continue;
            }
        };
        for row in rows {
            let (Ok(session), Ok(upstream), Ok(at), Ok(age)) = (
                row.try_get::<String, _>("session_key"),
                row.try_get::<String, _>("upstream_id"),
                row.try_get::<f64, _>("at"),
                row.try_get::<f64, _>("age"),
            ) else {
                continue;
            };
            let age = Duration::from_secs_f64(age.max(0.0));
            pins.apply_remote(
                &session,
                (!upstream.is_empty()).then_some(upstream.as_str()),
                age,
            );
            seen = Some(seen.map_or(at, |s: f64| s.max(at)));
        }
        if ticks.is_multiple_of(600) {
            let _ = sqlx::query(
                "DELETE FROM session_pins WHERE updated_at < now() - make_interval(secs => $1)",
            )
            .bind(PIN_TTL.as_secs_f64())
            .execute(&pool)
            .await;
        }
    }
}
