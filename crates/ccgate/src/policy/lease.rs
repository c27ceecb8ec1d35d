//! Limits shared by several gateway instances on one PostgreSQL store: every tenant's budgets (daily, weekly,
//! monthly, total), `maxConcurrent` and `rpm` hold across all instances, without a database round trip per request.
//!
//! # The algorithm (also in docs/scale-out.md)
//!
//! Each instance holds a **lease** per tenant: a share of the tenant's limits carved out of what is left globally,
//! kept in `limit_leases` (one row per tenant, kind and instance) and mirrored in memory ([`Share`]).
//!
//! * **Budgets (`usd`).** A request is admitted locally, as on one instance ([`super::budget`]): while the spend
//!   plus the reservations in flight is below the limit, reserving its worst-case cost. In addition, what this
//!   instance has reserved, plus what it settled but has not stored yet, must fit in its lease. When it does not,
//!   the instance *claims* more in one transaction under a per-tenant advisory lock: one statement reads the spend
//!   of every window (the shared daily rollups) and every live lease, in one snapshot; the room is the smallest
//!   `max - spent` over the windows, less all leases. If the room is positive, the claim is granted what the
//!   request needs plus a little headroom (a quarter of what is left after it, at most [`HEADROOM_REQUESTS`]
//!   reservations), so a busy instance claims about once per [`HEADROOM_REQUESTS`] requests, and near the limit
//!   the headroom shrinks to nothing. The batch writer moves each stored request's cost out of its instance's lease
//!   in the same transaction that adds it to the rollups (`ledger/postgres.rs`), so spend and leases never count
//!   the same money twice or not at all. `limits.rolling` windows are windows like the others: the same statement
//!   sums the tenant's `requests` since each window's start (index `requests_tenant_ts`). `tpm` and `limits.models`
//!   are not leased: each instance enforces them on its own traffic.
//! * **`maxConcurrent` (`slots`).** A slot is claimed when this instance has more requests in flight than slots;
//!   the claim is refused when all slots are held across instances.
//! * **`rpm`.** Requests draw tickets from `rate_tickets`, granted in batches of `max(1, rpm/20)`; a batch counts
//!   in the rolling minute from when it was granted; tickets unused after [`TICKET_LIFE`] go back.
//! * **Return.** Every [`TICK`], an instance renews its leases (`expires_at = now + leaseSeconds`) and gives back
//!   what it does not use: budget headroom unused for [`TRIM_AFTER`], spare slots, stale tickets. A lease that is
//!   not renewed (the instance died, or lost the database) counts for nothing after it expires.
//!
//! # Worst-case overshoot
//!
//! With `N` instances, a budget is overshot by at most `N × e`, where `e` is the largest difference between a
//! request's actual cost and its reservation (the same bound as one instance, once per instance, because each
//! instance may be granted the request that crosses the limit). Reservations are worst cases, so `e` is normally 0
//! and the real bound is one request per instance. `maxConcurrent` is exact. `rpm` may admit up to
//! `N × max(1, rpm/20)` extra requests in a minute (a ticket used up to [`TICKET_LIFE`] after its grant).
//!
//! # Losing the database
//!
//! A claim or renewal that fails (or takes longer than [`CLAIM_TIMEOUT`]) puts the instance in *local mode* for
//! [`LOCAL_MODE_FOR`]: it enforces the last known budgets (the spend it last read from the database, plus its own)
//! on its own, like a single instance. Each instance may then spend what was left when the database went away,
//! so the overshoot during an outage is at most `N - 1` times the remaining budget. When the database is back, the
//! next claim reads the true spend again.

use super::budget::{exhausted, local_day, rolling_exhausted, span_s, TenantState, Window};
use crate::config::Limits;
use crate::error::ApiError;
use crate::state::Gateway;
use chrono::Utc;
use chrono_tz::Tz;
use parking_lot::Mutex;
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How long a lease lives without renewal: after this, a dead instance's share is free for the others.
pub const LEASE_TTL: Duration = Duration::from_secs(10);
/// How often leases are renewed and unused shares given back.
pub const TICK: Duration = Duration::from_secs(1);
/// Budget headroom unused for this long goes back, so a busy instance cannot sit on the last of a budget.
pub const TRIM_AFTER: Duration = Duration::from_secs(3);
/// A batch of rpm tickets is used within this time of its grant, or its rest goes back.
pub const TICKET_LIFE: Duration = Duration::from_secs(1);
/// At most this many reservations of headroom are claimed beyond a request's need.
pub const HEADROOM_REQUESTS: i64 = 8;
/// A claim that takes longer is abandoned, and the instance enforces its last known budgets.
pub const CLAIM_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the instance stays in local mode after the database failed it.
pub const LOCAL_MODE_FOR: Duration = Duration::from_secs(3);

/// What a request needs beyond this instance's share.
#[derive(Debug, Default, Clone, Copy)]
pub struct Need {
    pub usd: i64,
    /// This request's own reservation: the unit of headroom.
    pub unit_usd: i64,
    pub slots: u32,
    pub tickets: u32,
    pub rpm: u32,
}

impl Need {
    pub fn is_empty(&self) -> bool {
        self.usd <= 0 && self.slots == 0 && self.tickets == 0
    }
}

/// A batch of rpm tickets this instance holds.
#[derive(Debug, Clone, Copy)]
struct Tickets {
    id: i64,
    granted: Instant,
    left: u32,
}

/// This instance's share of one tenant's shared limits, kept under the tenant's budget lock.
#[derive(Debug, Default)]
pub struct Share {
    /// nano-USD held (the instance's `usd` lease row as it stands after the last claim and commits).
    pub usd: i64,
    /// Settled here and not yet stored: still held against `usd`.
    pub pending: i64,
    pub slots: u32,
    tickets: VecDeque<Tickets>,
    last_claim: Option<Instant>,
}

impl Share {
    /// Drops a lease that was not renewed in time: the database may already count it for nothing.
    pub fn forget(&mut self) {
        self.usd = 0;
        self.slots = 0;
        self.tickets.clear();
    }

    pub fn tickets_left(&self, now: Instant) -> u32 {
        self.tickets
            .iter()
            .filter(|t| now.duration_since(t.granted) < TICKET_LIFE)
            .map(|t| t.left)
            .sum()
    }

    pub fn take_ticket(&mut self, now: Instant) {
        if let Some(t) = self
            .tickets
            .iter_mut()
            .find(|t| t.left > 0 && now.duration_since(t.granted) < TICKET_LIFE)
        {
            t.left -= 1;
        }
    }

    /// A committed batch stored `cost` of this instance's spend: it leaves the lease, as in the database.
    /// A give-back that did not reach the database: the database still counts it as held, so this instance does.
    pub fn restore(&mut self, usd: i64, slots: u32) {
        self.usd = self.usd.saturating_add(usd);
        self.slots = self.slots.saturating_add(slots);
    }

    /// A claim was granted; `*_alive`: the instance's row was live, so the grant adds to it (else it starts it).
    pub fn granted(
        &mut self,
        (usd, usd_alive): (i64, bool),
        (slots, slots_alive): (u32, bool),
        tickets: Option<(i64, u32)>,
        now: Instant,
    ) {
        if usd > 0 {
            self.usd = if usd_alive {
                self.usd.saturating_add(usd)
            } else {
                usd
            };
        }
        if slots > 0 {
            self.slots = if slots_alive {
                self.slots + slots
            } else {
                slots
            };
        }
        if let Some((id, left)) = tickets {
            self.tickets.push_back(Tickets {
                id,
                granted: now,
                left,
            });
        }
        self.last_claim = Some(now);
    }

    pub fn committed(&mut self, cost: i64) {
        self.pending = (self.pending - cost).max(0);
        self.usd = (self.usd - cost).max(0);
    }

    /// What to give back now: unused budget headroom, spare slots, stale tickets (and forgets them here).
    pub fn trim(&mut self, reserved: i64, in_flight: u32, now: Instant) -> Returned {
        let mut back = Returned::default();
        let idle = self
            .last_claim
            .is_none_or(|t| now.duration_since(t) >= TRIM_AFTER);
        if idle {
            let unused = self.usd - reserved - self.pending;
            if unused > 0 {
                back.usd = unused;
                self.usd -= unused;
            }
        }
        if self
            .last_claim
            .is_none_or(|t| now.duration_since(t) >= TICK)
            && self.slots > in_flight
        {
            back.slots = self.slots - in_flight;
            self.slots = in_flight;
        }
        while let Some(t) = self.tickets.front() {
            if now.duration_since(t.granted) < TICKET_LIFE {
                break;
            }
            if t.left > 0 {
                back.tickets.push((t.id, t.left));
            }
            self.tickets.pop_front();
        }
        back
    }
}

/// What an instance gives back of a tenant's share in one upkeep round.
#[derive(Debug, Default)]
pub struct Returned {
    pub usd: i64,
    pub slots: u32,
    tickets: Vec<(i64, u32)>,
}

/// What a claim came to.
pub enum Claimed {
    /// This instance's share now covers the request: admit again.
    Granted,
    /// The limit refuses the request (a spent budget, all slots taken, the rpm used up).
    Refused(ApiError),
    /// The rest of a budget is reserved by requests in flight (here or on other instances): wait and retry.
    HeldInFlight {
        remaining: i64,
        max: i64,
        window: String,
    },
    /// The database failed or was slow: the instance is in local mode; admit again against the local limits.
    Unavailable,
}

/// Why a claim or renewal failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("no answer within {CLAIM_TIMEOUT:?}")]
    Timeout,
}

/// The shared limits of one instance: its id, the database, and when it last could use it.
pub struct SharedLimits {
    pool: PgPool,
    instance_id: String,
    ttl: Duration,
    gw: Weak<Gateway>,
    epoch: Instant,
    /// Milliseconds since `epoch` until which the leases are known to be renewed.
    valid_until_ms: AtomicU64,
    /// Milliseconds since `epoch` until which the instance stays in local mode.
    local_until_ms: AtomicU64,
    /// Why the last claim or renewal failed, and when (for `/health`).
    last_error: Mutex<Option<(chrono::DateTime<Utc>, String)>>,
}

impl SharedLimits {
    pub fn new(pool: PgPool, instance_id: String, ttl: Duration, gw: &Arc<Gateway>) -> Self {
        SharedLimits {
            pool,
            instance_id,
            ttl,
            gw: Arc::downgrade(gw),
            epoch: Instant::now(),
            valid_until_ms: AtomicU64::new(0),
            local_until_ms: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether admission enforces the shared limits now (else: local mode, the database failed us lately).
    pub fn enforcing(&self) -> bool {
        self.now_ms() >= self.local_until_ms.load(Ordering::Acquire)
    }

    /// Whether this instance's leases are still renewed (a stale lease may already be free elsewhere).
    pub fn lease_valid(&self) -> bool {
        self.now_ms() < self.valid_until_ms.load(Ordering::Acquire)
    }

    fn renewed(&self, at_ms: u64) {
        // A lease is trusted until a little before the database lets it expire.
        let until =
            at_ms + (self.ttl.as_millis() as u64).saturating_sub(TICK.as_millis() as u64 * 2);
        self.valid_until_ms.fetch_max(until, Ordering::AcqRel);
    }

    fn failed(&self, e: &LeaseError) {
        let until = self.now_ms() + LOCAL_MODE_FOR.as_millis() as u64;
        self.local_until_ms.fetch_max(until, Ordering::AcqRel);
        let mut last = self.last_error.lock();
        if last.is_none() {
            tracing::warn!(error = %e, "shared limits: the database failed; enforcing the last known budgets on this instance");
        }
        *last = Some((Utc::now(), e.to_string()));
    }

    fn recovered(&self) {
        if self.last_error.lock().take().is_some() {
            tracing::info!(
                "shared limits: the database answers again; limits are enforced across instances"
            );
        }
    }

    /// For `/health`: `shared`, or `local` with why and since when.
    pub fn status(&self) -> serde_json::Value {
        match &*self.last_error.lock() {
            None if self.enforcing() => serde_json::json!({"mode": "shared"}),
            None => serde_json::json!({"mode": "local"}),
            Some((since, error)) => serde_json::json!({
                "mode": if self.enforcing() { "shared" } else { "local" },
                "lastError": error,
                "lastErrorAt": since.to_rfc3339(),
            }),
        }
    }

    /// The ledger stored `cost` of `instance`'s spend for `tenant` (see `ledger/postgres.rs`).
    pub fn committed(&self, tenant: &str, instance: &str, cost: i64) {
        if instance != self.instance_id {
            return;
        }
        if let Some(gw) = self.gw.upgrade() {
            gw.tenant_state(tenant).lease_committed(cost);
        }
    }

    /// Claims what `need` asks for from the tenant's global limits.
    pub async fn claim(
        &self,
        tenant_id: &str,
        state: &TenantState,
        limits: &Limits,
        tz: Tz,
        need: Need,
    ) -> Claimed {
        match tokio::time::timeout(
            CLAIM_TIMEOUT,
            self.claim_tx(tenant_id, state, limits, tz, need),
        )
        .await
        {
            Ok(Ok(c)) => {
                self.recovered();
                c
            }
            Ok(Err(e)) => {
                self.failed(&LeaseError::Database(e));
                Claimed::Unavailable
            }
            Err(_) => {
                self.failed(&LeaseError::Timeout);
                Claimed::Unavailable
            }
        }
    }

    async fn claim_tx(
        &self,
        tenant_id: &str,
        state: &TenantState,
        limits: &Limits,
        tz: Tz,
        need: Need,
    ) -> Result<Claimed, sqlx::Error> {
        let now = Utc::now();
        let today = local_day(tz, now);
        // A rolling window counts the requests from the start of the minute it reaches back into, as the
        // per-minute buckets of `super::rolling` do.
        let rolling_from: Vec<i64> = limits
            .rolling
            .iter()
            .map(|r| (now.timestamp() - span_s(r.hours)).div_euclid(60) * 60_000)
            .collect();
        let start = |w: Window| w.start(today).map(|d| d.format("%Y-%m-%d").to_string());
        let mut tx = self.pool.begin().await?;
        // Claims for one tenant are serialized; other tenants and the batch writer are not held up.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("ccgate.limits:{tenant_id}"))
            .execute(&mut *tx)
            .await?;
        // One statement, one snapshot: a batch that moves spend from a lease to the rollups is seen whole or not.
        let row = sqlx::query(
            "WITH spent AS (
                SELECT
                  LEAST(COALESCE(SUM(cost_nanousd::numeric) FILTER (WHERE day >= $3), 0), 9223372036854775807)::bigint AS daily,
                  LEAST(COALESCE(SUM(cost_nanousd::numeric) FILTER (WHERE day >= $4), 0), 9223372036854775807)::bigint AS weekly,
                  LEAST(COALESCE(SUM(cost_nanousd::numeric) FILTER (WHERE day >= $5), 0), 9223372036854775807)::bigint AS monthly,
                  LEAST(COALESCE(SUM(cost_nanousd::numeric), 0), 9223372036854775807)::bigint AS total
                FROM daily_rollup WHERE tenant_id = $1
             ), held AS (
                SELECT
                  COALESCE(SUM(amount) FILTER (WHERE kind = 'usd' AND instance_id <> $2), 0)::bigint AS usd_others,
                  COALESCE(SUM(amount) FILTER (WHERE kind = 'usd' AND instance_id = $2), 0)::bigint AS usd_mine,
                  COALESCE(SUM(amount) FILTER (WHERE kind = 'slots' AND instance_id <> $2), 0)::bigint AS slots_others,
                  COALESCE(SUM(amount) FILTER (WHERE kind = 'slots' AND instance_id = $2), 0)::bigint AS slots_mine
                FROM limit_leases WHERE tenant_id = $1 AND expires_at > now()
             ), tickets AS (
                SELECT COALESCE(SUM(amount), 0)::bigint AS used,
                       COALESCE(EXTRACT(EPOCH FROM now() - MIN(granted_at)), 0)::float8 AS oldest_s
                FROM rate_tickets WHERE tenant_id = $1 AND amount > 0 AND granted_at > now() - interval '60 seconds'
             ), rolling AS (
                SELECT ARRAY(
                  SELECT LEAST(COALESCE((SELECT SUM(r.cost_nanousd::numeric) FROM requests r
                                         WHERE r.tenant_id = $1 AND r.ts_ms >= c.since), 0),
                               9223372036854775807)::bigint
                  FROM unnest($6::bigint[]) WITH ORDINALITY AS c(since, n) ORDER BY c.n
                ) AS rolling_spent
             )
             SELECT * FROM spent, held, tickets, rolling",
        )
        .bind(tenant_id)
        .bind(&self.instance_id)
        .bind(start(Window::Daily))
        .bind(start(Window::Weekly))
        .bind(start(Window::Monthly))
        .bind(&rolling_from)
        .fetch_one(&mut *tx)
        .await?;
        let spent = [
            row.try_get::<i64, _>("daily")?,
            row.try_get::<i64, _>("weekly")?,
            row.try_get::<i64, _>("monthly")?,
            row.try_get::<i64, _>("total")?,
        ];
        let usd_others: i64 = row.try_get("usd_others")?;
        let usd_mine: i64 = row.try_get("usd_mine")?;
        let slots_others: i64 = row.try_get("slots_others")?;
        let slots_mine: i64 = row.try_get("slots_mine")?;
        let tickets_used: i64 = row.try_get("used")?;
        let oldest_s: f64 = row.try_get("oldest_s")?;
        let rolling_spent: Vec<i64> = row.try_get("rolling_spent")?;
        state.refresh_spent(today, spent);

        let mut grant_usd = 0i64;
        if need.usd > 0 {
            let mut room = i64::MAX;
            let mut tightest = None;
            for w in Window::ALL {
                let Some(max) = w.max(limits) else { continue };
                let s = spent[w as usize];
                if s >= max {
                    return Ok(Claimed::Refused(exhausted(w, max, s, today, tz)));
                }
                if max - s < room {
                    room = max - s;
                    tightest = Some((w.name().to_string(), max));
                }
            }
            for (r, &s) in limits.rolling.iter().zip(&rolling_spent) {
                if s >= r.max_nanousd {
                    // When it fits again follows from this instance's own record of the window (the only
                    // per-minute history at hand): a lower bound on the wait across instances.
                    let (_, at) = state.rolling_status(r, now);
                    return Ok(Claimed::Refused(rolling_exhausted(
                        r,
                        s,
                        at.unwrap_or(now + chrono::Duration::minutes(1)),
                        now,
                    )));
                }
                if r.max_nanousd - s < room {
                    room = r.max_nanousd - s;
                    tightest = Some((format!("rolling {}h", r.hours), r.max_nanousd));
                }
            }
            let free = room.saturating_sub(usd_others).saturating_sub(usd_mine);
            if free <= 0 {
                let (window, max) = tightest.unwrap_or_else(|| ("total".to_string(), room));
                return Ok(Claimed::HeldInFlight {
                    remaining: room,
                    max,
                    window,
                });
            }
            // The request itself, even past the limit (it is the one that crosses it, as on one instance), plus
            // headroom that shrinks as the budget runs out.
            let headroom = ((free - need.usd).max(0) / 4)
                .min(need.unit_usd.max(1).saturating_mul(HEADROOM_REQUESTS));
            grant_usd = need.usd.saturating_add(headroom);
        }
        let mut grant_slots = 0u32;
        if need.slots > 0 {
            let max = i64::from(limits.max_concurrent.unwrap_or(u32::MAX));
            let free = max - slots_others - slots_mine;
            if free < i64::from(need.slots) {
                return Ok(Claimed::Refused(ApiError::RateLimited(
                    format!(
                        "too many concurrent requests: this key allows {max} at a time across all gateway instances; \
                         retry when one finishes"
                    ),
                    1,
                )));
            }
            grant_slots = need.slots;
        }
        let mut grant_tickets = 0u32;
        if need.tickets > 0 {
            let rpm = i64::from(need.rpm);
            let free = rpm - tickets_used;
            if free <= 0 {
                let wait = (60.0 - oldest_s).ceil().clamp(1.0, 60.0) as u64;
                return Ok(Claimed::Refused(ApiError::RateLimited(
                    format!(
                        "rate limit of {rpm} requests per minute reached for this key (across all gateway \
                         instances); retry in {wait} s"
                    ),
                    wait,
                )));
            }
            grant_tickets = free.min(i64::from(need.rpm / 20).max(1)) as u32;
        }
        let ttl = self.ttl.as_secs_f64();
        for (kind, amount) in [("usd", grant_usd), ("slots", i64::from(grant_slots))] {
            if amount > 0 {
                sqlx::query(
                    "INSERT INTO limit_leases (tenant_id, kind, instance_id, amount, expires_at)
                     VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
                     ON CONFLICT (tenant_id, kind, instance_id) DO UPDATE SET
                       amount = CASE WHEN limit_leases.expires_at > now() THEN limit_leases.amount ELSE 0 END
                                + excluded.amount,
                       expires_at = excluded.expires_at",
                )
                .bind(tenant_id)
                .bind(kind)
                .bind(&self.instance_id)
                .bind(amount)
                .bind(ttl)
                .execute(&mut *tx)
                .await?;
            }
        }
        let mut ticket_id = None;
        if grant_tickets > 0 {
            ticket_id = Some(
                sqlx::query_scalar::<_, i64>(
                    "INSERT INTO rate_tickets (tenant_id, instance_id, granted_at, amount)
                     VALUES ($1, $2, now(), $3) RETURNING id",
                )
                .bind(tenant_id)
                .bind(&self.instance_id)
                .bind(i64::from(grant_tickets))
                .fetch_one(&mut *tx)
                .await?,
            );
        }
        let claimed_at = self.now_ms();
        tx.commit().await?;
        self.renewed(claimed_at);
        state.lease_granted(
            (grant_usd, usd_mine > 0),
            (grant_slots, slots_mine > 0),
            ticket_id.map(|id| (id, grant_tickets)),
        );
        Ok(Claimed::Granted)
    }

    /// One round of upkeep: renew this instance's leases, give back what it does not use.
    async fn tick(&self, gw: &Gateway) -> Result<(), sqlx::Error> {
        let at = self.now_ms();
        sqlx::query(
            "UPDATE limit_leases SET expires_at = now() + make_interval(secs => $2)
             WHERE instance_id = $1 AND amount > 0",
        )
        .bind(&self.instance_id)
        .bind(self.ttl.as_secs_f64())
        .execute(&self.pool)
        .await?;
        self.renewed(at);
        let now = Instant::now();
        for (tenant, state) in gw.tenant_states() {
            let back = state.lease_trim(now);
            for (kind, amount) in [("usd", back.usd), ("slots", i64::from(back.slots))] {
                if amount > 0 {
                    if let Err(e) =
                        give_back(&self.pool, &tenant, kind, &self.instance_id, amount).await
                    {
                        // Still held in the database (and renewed): this instance keeps counting it as its own.
                        state.lease_restore(back.usd, back.slots);
                        return Err(e);
                    }
                }
            }
            for (id, left) in back.tickets {
                sqlx::query(
                    "UPDATE rate_tickets SET amount = GREATEST(amount - $2, 0) WHERE id = $1",
                )
                .bind(id)
                .bind(i64::from(left))
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(())
    }

    /// Old tickets and long-expired leases go (any instance may do it; it is idempotent).
    async fn sweep(&self) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM rate_tickets WHERE granted_at < now() - interval '2 minutes'")
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM limit_leases WHERE expires_at < now() - interval '1 hour'")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Gives everything back at a clean shutdown, so other instances need not wait for the leases to expire.
    pub async fn release_all(&self) {
        let r = sqlx::query("DELETE FROM limit_leases WHERE instance_id = $1")
            .bind(&self.instance_id)
            .execute(&self.pool)
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "shared limits: could not give back this instance's leases; they expire on their own");
        }
    }
}

async fn give_back(
    pool: &PgPool,
    tenant: &str,
    kind: &str,
    instance: &str,
    amount: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE limit_leases SET amount = GREATEST(amount - $4, 0)
         WHERE tenant_id = $1 AND kind = $2 AND instance_id = $3",
    )
    .bind(tenant)
    .bind(kind)
    .bind(instance)
    .bind(amount)
    .execute(pool)
    .await?;
    Ok(())
}

/// In the ledger batch's transaction: `cost` of `instance`'s spend for `tenant` was stored, so it leaves that
/// instance's budget lease (it now counts as spend).
pub async fn spend_from_lease(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &str,
    instance: &str,
    cost: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE limit_leases SET amount = GREATEST(amount - $3, 0)
         WHERE tenant_id = $1 AND kind = 'usd' AND instance_id = $2",
    )
    .bind(tenant)
    .bind(instance)
    .bind(cost)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Runs the upkeep every [`TICK`] until shutdown, then gives the leases back.
pub fn spawn_upkeep(shared: Arc<SharedLimits>, gw: Arc<Gateway>) {
    let shutdown = gw.shutdown.clone();
    let weak = Arc::downgrade(&gw);
    drop(gw);
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks = 0u64;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = interval.tick() => {}
            }
            let Some(gw) = weak.upgrade() else { break };
            let work = async {
                shared.tick(&gw).await?;
                if ticks.is_multiple_of(60) {
                    shared.sweep().await?;
                }
                Ok::<_, sqlx::Error>(())
            };
            match tokio::time::timeout(CLAIM_TIMEOUT, work).await {
                Ok(Ok(())) => shared.recovered(),
                Ok(Err(e)) => shared.failed(&LeaseError::Database(e)),
                Err(_) => shared.failed(&LeaseError::Timeout),
            }
            ticks += 1;
        }
    });
}
