//! Limits shared by several gateway instances on one PostgreSQL store: every tenant's budgets (daily, weekly,
//! monthly, total, rolling), `tpm`, `maxConcurrent` and `rpm`, and its `limits.models` entries' limits, hold across
//! all instances, without a database round trip per request while a lease covers it.
//!
//! # The algorithm (also in docs/scale-out.md)
//!
//! Each instance holds a **lease** per tenant: a share of the tenant's limits carved out of what is left globally,
//! kept in `limit_leases` (one row per tenant, scope, kind and instance) and mirrored in memory ([`Share`]). The
//! scope is `''` for the tenant's own limits, and the pattern for a `limits.models` entry's `rpm`, `maxConcurrent`
//! and `tpm`, which are leased like the tenant's with the entry's own [`Share`].
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
//!   sums the tenant's `requests` since each window's start (index `requests_tenant_ts`). A request under a
//!   `limits.models` entry's dollar windows is checked once against the model's global spend plus every lease
//!   ([`SharedLimits::check_model`]).
//! * **`tpm` (`tokens`).** As budgets, in tokens: a request reserves its worst case (body bytes plus `max_tokens`),
//!   the claim reads the tokens stored in the last minute per second (after the leases: a batch stored in between
//!   counts twice, never not at all), and the batch writer moves each stored row's tokens out of the tenant's lease
//!   and those of the `limits.models` entries with `tpm` that count it ([`lease_moves`]).
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
//! and the real bound is one request per instance; `tpm` the same in tokens. `maxConcurrent` is exact. `rpm` may admit up to
//! `N × max(1, rpm/20)` extra requests in a minute (a ticket used up to [`TICKET_LIFE`] after its grant).
//!
//! # Losing the database
//!
//! A claim or renewal that fails (or takes longer than [`CLAIM_TIMEOUT`]) puts the instance in *local mode* for
//! [`LOCAL_MODE_FOR`]: it enforces the last known budgets (the spend it last read from the database, plus its own)
//! on its own, like a single instance. Each instance may then spend what was left when the database went away,
//! so the overshoot during an outage is at most `N - 1` times the remaining budget. When the database is back, the
//! next claim reads the true spend again.

use super::budget::{
    exhausted, local_day, rolling_exhausted, span_s, tpm_exhausted, usd, TenantState, Window,
};
use super::rolling::Buckets;
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
    /// Tokens (`tpm`) beyond this instance's token lease.
    pub tokens: i64,
    /// This request's own token reservation: the unit of token headroom.
    pub unit_tokens: i64,
    /// Check the request's `limits.models` dollar windows against every instance's spend.
    pub check_models: bool,
    /// What this instance holds for the tenant now: reserved in flight plus settled and not stored.
    pub held: i64,
}

impl Need {
    pub fn is_empty(&self) -> bool {
        self.usd <= 0
            && self.tokens <= 0
            && self.slots == 0
            && self.tickets == 0
            && !self.check_models
    }
}

/// A `limits.models` entry with dollar windows that applies to a request, as the shared check needs it.
pub struct ModelScope<'a> {
    pub pattern: &'a str,
    pub limits: &'a Limits,
    pub state: &'a TenantState,
    rows: ModelRows,
}

/// The ledger rows of a `limits.models` entry: those whose `model` matches the pattern, or is an `openai.models`
/// alias whose target does (the ledger records the name the tenant asked for).
#[derive(Debug, Clone)]
pub struct ModelRows {
    /// `LIKE` form of the pattern, for the ledger's `model` column.
    like: String,
    aliases: Vec<String>,
}

impl ModelRows {
    pub fn new(pattern: &str, aliases: &std::collections::BTreeMap<String, String>) -> Self {
        let mut like = String::with_capacity(pattern.len());
        for c in pattern.chars() {
            match c {
                '*' => like.push('%'),
                '%' | '_' | '\\' => {
                    like.push('\\');
                    like.push(c);
                }
                c => like.push(c),
            }
        }
        ModelRows {
            like,
            aliases: aliases
                .iter()
                .filter(|(_, target)| ccgate_meter::wildcard::matches(pattern, target))
                .map(|(alias, _)| alias.clone())
                .collect(),
        }
    }
}

impl<'a> ModelScope<'a> {
    pub fn new(
        entry: &'a crate::config::ModelLimits,
        state: &'a TenantState,
        aliases: &std::collections::BTreeMap<String, String>,
    ) -> Self {
        ModelScope {
            pattern: &entry.pattern,
            limits: &entry.limits,
            state,
            rows: ModelRows::new(&entry.pattern, aliases),
        }
    }
}

/// What every instance has used of one scope's limits (the tenant's own, or a `limits.models` entry's), as a claim
/// reads it ([`SharedLimits::cluster_use`]). `None`: the scope has no such limit.
#[derive(Debug, Default)]
pub struct ScopeUse {
    /// A `limits.models` entry's calendar windows, in [`Window::ALL`] order.
    pub spent: Option<[i64; 4]>,
    /// Spend per minute over the longest rolling window.
    pub rolling: Option<Buckets>,
    /// The tokens `tpm` counts, per second over the last minute.
    pub tokens: Option<Buckets>,
    /// rpm tickets drawn in the last minute, and when the oldest batch leaves the minute.
    pub requests: Option<(u32, Option<Duration>)>,
    /// `maxConcurrent` slots held.
    pub slots: Option<u32>,
}

/// [`ScopeUse`] by scope: `''` for the tenant's own limits, else the `limits.models` pattern.
pub type ClusterUse = std::collections::HashMap<String, ScopeUse>;

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
    /// Tokens held (the instance's `tokens` lease row): worst cases in flight plus metered tokens not yet stored.
    pub tokens: i64,
    /// Metered here and not yet stored: still held against `tokens`.
    pub pending_tokens: i64,
    pub slots: u32,
    tickets: VecDeque<Tickets>,
    last_claim: Option<Instant>,
}

/// What a claim granted. `*_alive`: the instance's row was live, so the grant adds to it (else it starts it).
#[derive(Debug, Default, Clone, Copy)]
pub struct Grant {
    pub usd: i64,
    pub usd_alive: bool,
    pub tokens: i64,
    pub tokens_alive: bool,
    pub slots: u32,
    pub slots_alive: bool,
    /// A batch of rpm tickets: its row id and size.
    pub tickets: Option<(i64, u32)>,
}

impl Share {
    /// Drops a lease that was not renewed in time: the database may already count it for nothing.
    pub fn forget(&mut self) {
        self.usd = 0;
        self.tokens = 0;
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

    /// A give-back that did not reach the database: the database still counts it as held, so this instance does.
    pub fn restore(&mut self, back: &Returned) {
        self.usd = self.usd.saturating_add(back.usd);
        self.tokens = self.tokens.saturating_add(back.tokens);
        self.slots = self.slots.saturating_add(back.slots);
    }

    /// A claim was granted.
    pub fn granted(&mut self, g: Grant, now: Instant) {
        let add = |held: i64, grant: i64, alive: bool| {
            if alive {
                held.saturating_add(grant)
            } else {
                grant
            }
        };
        if g.usd > 0 {
            self.usd = add(self.usd, g.usd, g.usd_alive);
        }
        if g.tokens > 0 {
            self.tokens = add(self.tokens, g.tokens, g.tokens_alive);
        }
        if g.slots > 0 {
            self.slots = if g.slots_alive {
                self.slots + g.slots
            } else {
                g.slots
            };
        }
        if let Some((id, left)) = g.tickets {
            self.tickets.push_back(Tickets {
                id,
                granted: now,
                left,
            });
        }
        self.last_claim = Some(now);
    }

    /// A committed batch stored `cost` and `tokens` of this instance's spend: they leave the lease, as in the
    /// database (`ledger/postgres.rs`, [`move_to_ledger`]).
    pub fn committed(&mut self, cost: i64, tokens: i64) {
        self.pending = (self.pending - cost).max(0);
        self.usd = (self.usd - cost).max(0);
        self.pending_tokens = (self.pending_tokens - tokens).max(0);
        self.tokens = (self.tokens - tokens).max(0);
    }

    /// What to give back now: unused budget headroom, spare slots, stale tickets (and forgets them here).
    pub fn trim(
        &mut self,
        reserved: i64,
        reserved_tokens: i64,
        in_flight: u32,
        now: Instant,
    ) -> Returned {
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
            let unused = self.tokens - reserved_tokens - self.pending_tokens;
            if unused > 0 {
                back.tokens = unused;
                self.tokens -= unused;
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
    pub tokens: i64,
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
    /// What is left of which limit, as the refusal names it: `daily budget ($0.30 of $1.35)`.
    HeldInFlight(String),
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

    /// A ledger batch stored these moves (see `ledger/postgres.rs`): this instance's share follows the database's.
    pub fn committed(&self, moves: &[LeaseMove]) {
        let Some(gw) = self.gw.upgrade() else { return };
        for mv in moves.iter().filter(|mv| mv.instance == self.instance_id) {
            let state = if mv.scope.is_empty() {
                gw.tenant_state(&mv.tenant)
            } else {
                gw.model_state(&mv.tenant, &mv.scope)
            };
            state.lease_committed(mv.usd, mv.tokens);
        }
    }

    /// The `limits.models` entries with `tpm` that count `model` (as the ledger records it) for `tenant`: the same
    /// rows the claim reads for them ([`ModelScope`]'s `like` and `aliases`), so a stored row leaves exactly the
    /// leases whose claims will count it.
    fn token_scopes(&self, tenant: &str, model: &str) -> Vec<String> {
        let Some(gw) = self.gw.upgrade() else {
            return Vec::new();
        };
        let rt = gw.runtime.load();
        let Some(t) = rt.tenants_by_id.get(tenant) else {
            return Vec::new();
        };
        t.config
            .limits
            .models
            .iter()
            .filter(|m| {
                m.limits.tpm.is_some()
                    && super::permissions::row_matches(&m.pattern, model, &rt.config.openai.models)
            })
            .map(|m| m.pattern.clone())
            .collect()
    }

    /// Claims what `need` asks for from the tenant's global limits, or with `model` from one `limits.models`
    /// entry's (its `rpm`, `maxConcurrent` and `tpm`; its dollar windows are checked through `models` on the
    /// tenant's claim). An entry's refusals do not name it: the caller does (`budget::for_model`).
    #[allow(clippy::too_many_arguments)]
    pub async fn claim(
        &self,
        tenant_id: &str,
        state: &TenantState,
        limits: &Limits,
        tz: Tz,
        need: Need,
        models: &[ModelScope<'_>],
        model: Option<&ModelScope<'_>>,
    ) -> Claimed {
        match tokio::time::timeout(
            CLAIM_TIMEOUT,
            self.claim_tx(tenant_id, state, limits, tz, need, models, model),
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

    #[allow(clippy::too_many_arguments)]
    async fn claim_tx(
        &self,
        tenant_id: &str,
        state: &TenantState,
        limits: &Limits,
        tz: Tz,
        need: Need,
        models: &[ModelScope<'_>],
        model: Option<&ModelScope<'_>>,
    ) -> Result<Claimed, sqlx::Error> {
        let now = Utc::now();
        let today = local_day(tz, now);
        let scope = model.map_or("", |m| m.pattern);
        let rolling_from = if model.is_some() {
            Vec::new()
        } else {
            rolling_from_for(limits, now)
        };
        let start = |w: Window| w.start(today).map(|d| d.format("%Y-%m-%d").to_string());
        let mut tx = self.pool.begin().await?;
        // Claims for one tenant (and its models) are serialized; other tenants and the batch writer are not held
        // up.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("ccgate.limits:{tenant_id}"))
            .execute(&mut *tx)
            .await?;
        // One statement, one snapshot: a batch that moves spend from a lease to the rollups is seen whole or not.
        // A model's claim reads no dollar spend (`$7 = ''` is false for it).
        let row = sqlx::query(
            "WITH spent AS (
                SELECT
                  LEAST(COALESCE(SUM(cost_nanousd::numeric) FILTER (WHERE day >= $3), 0), 9223372036854775807)::bigint AS daily,
                  LEAST(COALESCE(SUM(cost_nanousd::numeric) FILTER (WHERE day >= $4), 0), 9223372036854775807)::bigint AS weekly,
                  LEAST(COALESCE(SUM(cost_nanousd::numeric) FILTER (WHERE day >= $5), 0), 9223372036854775807)::bigint AS monthly,
                  LEAST(COALESCE(SUM(cost_nanousd::numeric), 0), 9223372036854775807)::bigint AS total
                FROM daily_rollup WHERE tenant_id = $1 AND $7 = ''
             ), held AS (
                SELECT
                  COALESCE(SUM(amount) FILTER (WHERE kind = 'usd' AND instance_id <> $2), 0)::bigint AS usd_others,
                  COALESCE(SUM(amount) FILTER (WHERE kind = 'usd' AND instance_id = $2), 0)::bigint AS usd_mine,
                  COALESCE(SUM(amount) FILTER (WHERE kind = 'tokens' AND instance_id <> $2), 0)::bigint AS tokens_others,
                  COALESCE(SUM(amount) FILTER (WHERE kind = 'tokens' AND instance_id = $2), 0)::bigint AS tokens_mine,
                  COALESCE(SUM(amount) FILTER (WHERE kind = 'slots' AND instance_id <> $2), 0)::bigint AS slots_others,
                  COALESCE(SUM(amount) FILTER (WHERE kind = 'slots' AND instance_id = $2), 0)::bigint AS slots_mine
                FROM limit_leases WHERE tenant_id = $1 AND scope = $7 AND expires_at > now()
             ), tickets AS (
                SELECT COALESCE(SUM(amount), 0)::bigint AS used,
                       COALESCE(EXTRACT(EPOCH FROM now() - MIN(granted_at)), 0)::float8 AS oldest_s
                FROM rate_tickets
                WHERE tenant_id = $1 AND scope = $7 AND amount > 0 AND granted_at > now() - interval '60 seconds'
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
        .bind(scope)
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
        let tokens_others: i64 = row.try_get("tokens_others")?;
        let tokens_mine: i64 = row.try_get("tokens_mine")?;
        let slots_others: i64 = row.try_get("slots_others")?;
        let slots_mine: i64 = row.try_get("slots_mine")?;
        let tickets_used: i64 = row.try_get("used")?;
        let oldest_s: f64 = row.try_get("oldest_s")?;
        let rolling_spent: Vec<i64> = row.try_get("rolling_spent")?;
        if model.is_none() {
            state.refresh_spent(today, spent);
        }
        if need.check_models {
            // After the statement above: a batch stored in between is counted twice (in a lease there, in the
            // spend here), never missed.
            for m in models {
                if let Some(refused) = self
                    .check_model(
                        &mut tx,
                        tenant_id,
                        m,
                        usd_others,
                        need.held,
                        &rolling_from_for(m.limits, now),
                        now,
                        today,
                        tz,
                    )
                    .await?
                {
                    return Ok(refused);
                }
            }
        }

        let mut grant = Grant {
            usd_alive: usd_mine > 0,
            tokens_alive: tokens_mine > 0,
            slots_alive: slots_mine > 0,
            ..Default::default()
        };
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
                return Ok(Claimed::HeldInFlight(format!(
                    "{window} budget (${} of ${})",
                    usd(room),
                    usd(max)
                )));
            }
            // The request itself, even past the limit (it is the one that crosses it, as on one instance), plus
            // headroom that shrinks as the budget runs out.
            grant.usd = with_headroom(free, need.usd, need.unit_usd);
        }
        if need.tokens > 0 {
            let tpm = i64::try_from(limits.tpm.unwrap_or(u64::MAX)).unwrap_or(i64::MAX);
            // After the statement above, like the models' check: a batch stored in between counts twice, never
            // not at all.
            let metered = metered_tokens(&mut tx, tenant_id, model.map(|m| &m.rows), now).await?;
            let used = metered.sum(now, 60);
            if used >= tpm {
                let at = metered.below_at(now, 60, tpm);
                return Ok(Claimed::Refused(tpm_exhausted(tpm, used, at, now)));
            }
            let free = tpm
                .saturating_sub(used)
                .saturating_sub(tokens_others)
                .saturating_sub(tokens_mine);
            if free <= 0 {
                return Ok(Claimed::HeldInFlight(format!(
                    "tokens per minute limit ({} of {tpm})",
                    tpm - used
                )));
            }
            grant.tokens = with_headroom(free, need.tokens, need.unit_tokens);
        }
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
            grant.slots = need.slots;
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
        for (kind, amount) in [
            ("usd", grant.usd),
            ("tokens", grant.tokens),
            ("slots", i64::from(grant.slots)),
        ] {
            if amount > 0 {
                sqlx::query(
                    "INSERT INTO limit_leases (tenant_id, scope, kind, instance_id, amount, expires_at)
                     VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
                     ON CONFLICT (tenant_id, scope, kind, instance_id) DO UPDATE SET
                       amount = CASE WHEN limit_leases.expires_at > now() THEN limit_leases.amount ELSE 0 END
                                + excluded.amount,
                       expires_at = excluded.expires_at",
                )
                .bind(tenant_id)
                .bind(scope)
                .bind(kind)
                .bind(&self.instance_id)
                .bind(amount)
                .bind(ttl)
                .execute(&mut *tx)
                .await?;
            }
        }
        if grant_tickets > 0 {
            let id = sqlx::query_scalar::<_, i64>(
                "INSERT INTO rate_tickets (tenant_id, scope, instance_id, granted_at, amount)
                 VALUES ($1, $2, $3, now(), $4) RETURNING id",
            )
            .bind(tenant_id)
            .bind(scope)
            .bind(&self.instance_id)
            .bind(i64::from(grant_tickets))
            .fetch_one(&mut *tx)
            .await?;
            grant.tickets = Some((id, grant_tickets));
        }
        let claimed_at = self.now_ms();
        tx.commit().await?;
        self.renewed(claimed_at);
        state.lease_granted(grant);
        Ok(Claimed::Granted)
    }

    /// What every instance has used of `t`'s limits, as the claims read it, by scope (`''`: the tenant's own; else
    /// a `limits.models` pattern): what `/usage`, `/api/tenant/status` and the admin listing show as `used`.
    pub async fn cluster_use(
        &self,
        t: &crate::config::TenantConfig,
        aliases: &std::collections::BTreeMap<String, String>,
        tz: Tz,
    ) -> Result<ClusterUse, LeaseError> {
        match tokio::time::timeout(CLAIM_TIMEOUT, self.read_use(t, aliases, tz)).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(LeaseError::Timeout),
        }
    }

    async fn read_use(
        &self,
        t: &crate::config::TenantConfig,
        aliases: &std::collections::BTreeMap<String, String>,
        tz: Tz,
    ) -> Result<ClusterUse, sqlx::Error> {
        let now = Utc::now();
        let mut out = ClusterUse::new();
        let l = &t.limits;
        let scopes = std::iter::once(("", l, None)).chain(l.models.iter().map(|m| {
            (
                m.pattern.as_str(),
                &m.limits,
                Some(ModelRows::new(&m.pattern, aliases)),
            )
        }));
        let mut conn = self.pool.acquire().await?;
        let tickets: Vec<(String, i64, f64)> =
            if l.rpm.is_some() || l.models.iter().any(|m| m.limits.rpm.is_some()) {
                sqlx::query_as(
                    "SELECT scope, COALESCE(SUM(amount), 0)::bigint,
                        COALESCE(EXTRACT(EPOCH FROM now() - MIN(granted_at)), 0)::float8
                 FROM rate_tickets
                 WHERE tenant_id = $1 AND amount > 0 AND granted_at > now() - interval '60 seconds'
                 GROUP BY scope",
                )
                .bind(&t.id)
                .fetch_all(&mut *conn)
                .await?
            } else {
                Vec::new()
            };
        let slots: Vec<(String, i64)> = if l.max_concurrent.is_some()
            || l.models.iter().any(|m| m.limits.max_concurrent.is_some())
        {
            sqlx::query_as(
                "SELECT scope, COALESCE(SUM(amount), 0)::bigint FROM limit_leases
                 WHERE tenant_id = $1 AND kind = 'slots' AND expires_at > now() GROUP BY scope",
            )
            .bind(&t.id)
            .fetch_all(&mut *conn)
            .await?
        } else {
            Vec::new()
        };
        for (scope, limits, rows) in scopes {
            let mut used = ScopeUse::default();
            if limits.rpm.is_some() {
                let (n, oldest_s) = tickets
                    .iter()
                    .find(|(s, ..)| s == scope)
                    .map_or((0, 0.0), |(_, n, age)| (*n, *age));
                let left = (n > 0).then(|| Duration::from_secs_f64((60.0 - oldest_s).max(0.0)));
                used.requests = Some((u32::try_from(n).unwrap_or(u32::MAX), left));
            }
            if limits.max_concurrent.is_some() {
                let n = slots
                    .iter()
                    .find(|(s, _)| s == scope)
                    .map_or(0, |(_, n)| *n);
                used.slots = Some(u32::try_from(n).unwrap_or(u32::MAX));
            }
            if limits.tpm.is_some() {
                used.tokens = Some(metered_tokens(&mut conn, &t.id, rows.as_ref(), now).await?);
            }
            if let Some(since) = rolling_from_for(limits, now).into_iter().min() {
                let per_minute: Vec<(i64, i64)> = sqlx::query_as(
                    "SELECT ts_ms / 60000 AS m, LEAST(SUM(cost_nanousd::numeric), 9223372036854775807)::bigint
                     FROM requests
                     WHERE tenant_id = $1 AND ts_ms >= $2 AND ($3 OR model ILIKE $4 OR model = ANY($5))
                     GROUP BY 1 ORDER BY 1",
                )
                .bind(&t.id)
                .bind(since)
                .bind(rows.is_none())
                .bind(rows.as_ref().map_or("", |m| m.like.as_str()))
                .bind(rows.as_ref().map_or(&[][..], |m| &m.aliases[..]))
                .fetch_all(&mut *conn)
                .await?;
                used.rolling = Some(buckets(Buckets::per_minute(), 60, per_minute));
            }
            // The tenant's calendar windows are read from the rollups by the caller; an entry's are read here.
            if let (Some(m), true) = (&rows, Window::ALL.iter().any(|w| w.max(limits).is_some())) {
                let today = local_day(tz, now);
                let start = |w: Window| w.start(today).map(|d| d.format("%Y-%m-%d").to_string());
                let spent: (i64, i64, i64, i64) = sqlx::query_as(
                    "SELECT
                       LEAST(COALESCE(SUM(cost_nanousd::numeric) FILTER (WHERE day >= $4), 0), 9223372036854775807)::bigint,
                       LEAST(COALESCE(SUM(cost_nanousd::numeric) FILTER (WHERE day >= $5), 0), 9223372036854775807)::bigint,
                       LEAST(COALESCE(SUM(cost_nanousd::numeric) FILTER (WHERE day >= $6), 0), 9223372036854775807)::bigint,
                       LEAST(COALESCE(SUM(cost_nanousd::numeric), 0), 9223372036854775807)::bigint
                     FROM daily_rollup WHERE tenant_id = $1 AND (model ILIKE $2 OR model = ANY($3))",
                )
                .bind(&t.id)
                .bind(&m.like)
                .bind(&m.aliases)
                .bind(start(Window::Daily))
                .bind(start(Window::Weekly))
                .bind(start(Window::Monthly))
                .fetch_one(&mut *conn)
                .await?;
                used.spent = Some([spent.0, spent.1, spent.2, spent.3]);
            }
            out.insert(scope.to_string(), used);
        }
        Ok(out)
    }

    /// A `limits.models` entry's dollar windows against every instance's spend: refused when a window is spent, or
    /// when its spend plus what the instances hold for the tenant (all of it, conservatively) leaves no room.
    #[allow(clippy::too_many_arguments)]
    async fn check_model(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        tenant_id: &str,
        m: &ModelScope<'_>,
        held_by_others: i64,
        held_here: i64,
        rolling_from: &[i64],
        now: chrono::DateTime<Utc>,
        today: chrono::NaiveDate,
        tz: Tz,
    ) -> Result<Option<Claimed>, sqlx::Error> {
        let start = |w: Window| w.start(today).map(|d| d.format("%Y-%m-%d").to_string());
        let row = sqlx::query(
            "SELECT
               LEAST(COALESCE(SUM(cost_nanousd::numeric) FILTER (WHERE day >= $4), 0), 9223372036854775807)::bigint AS daily,
               LEAST(COALESCE(SUM(cost_nanousd::numeric) FILTER (WHERE day >= $5), 0), 9223372036854775807)::bigint AS weekly,
               LEAST(COALESCE(SUM(cost_nanousd::numeric) FILTER (WHERE day >= $6), 0), 9223372036854775807)::bigint AS monthly,
               LEAST(COALESCE(SUM(cost_nanousd::numeric), 0), 9223372036854775807)::bigint AS total,
               ARRAY(
                 SELECT LEAST(COALESCE((SELECT SUM(r.cost_nanousd::numeric) FROM requests r
                                        WHERE r.tenant_id = $1 AND (r.model ILIKE $2 OR r.model = ANY($3))
                                          AND r.ts_ms >= c.since), 0), 9223372036854775807)::bigint
                 FROM unnest($7::bigint[]) WITH ORDINALITY AS c(since, n) ORDER BY c.n
               ) AS rolling_spent
             FROM daily_rollup WHERE tenant_id = $1 AND (model ILIKE $2 OR model = ANY($3))",
        )
        .bind(tenant_id)
        .bind(&m.rows.like)
        .bind(&m.rows.aliases)
        .bind(start(Window::Daily))
        .bind(start(Window::Weekly))
        .bind(start(Window::Monthly))
        .bind(rolling_from)
        .fetch_one(&mut **tx)
        .await?;
        let spent = [
            row.try_get::<i64, _>("daily")?,
            row.try_get::<i64, _>("weekly")?,
            row.try_get::<i64, _>("monthly")?,
            row.try_get::<i64, _>("total")?,
        ];
        let rolling_spent: Vec<i64> = row.try_get("rolling_spent")?;
        let held = held_by_others.saturating_add(held_here);
        let named = |w: &str| format!("{w} (models {:?})", m.pattern);
        for w in Window::ALL {
            let Some(max) = w.max(m.limits) else { continue };
            let s = spent[w as usize];
            if s >= max {
                let e = exhausted(w, max, s, today, tz);
                return Ok(Some(Claimed::Refused(super::budget::for_model(
                    e, m.pattern,
                ))));
            }
            if s.saturating_add(held) >= max {
                return Ok(Some(Claimed::HeldInFlight(format!(
                    "{} budget (${} of ${})",
                    named(w.name()),
                    usd(max - s),
                    usd(max)
                ))));
            }
        }
        for (r, &s) in m.limits.rolling.iter().zip(&rolling_spent) {
            if s >= r.max_nanousd {
                let (_, at) = m.state.rolling_status(r, now);
                let e =
                    rolling_exhausted(r, s, at.unwrap_or(now + chrono::Duration::minutes(1)), now);
                return Ok(Some(Claimed::Refused(super::budget::for_model(
                    e, m.pattern,
                ))));
            }
            if s.saturating_add(held) >= r.max_nanousd {
                return Ok(Some(Claimed::HeldInFlight(format!(
                    "{} budget (${} of ${})",
                    named(&format!("rolling {}h", r.hours)),
                    usd(r.max_nanousd - s),
                    usd(r.max_nanousd)
                ))));
            }
        }
        Ok(None)
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
        let tenants = gw
            .tenant_states()
            .into_iter()
            .map(|(t, s)| (t, String::new(), s));
        for (tenant, scope, state) in tenants.chain(gw.all_model_states()) {
            let mut back = state.lease_trim(now);
            for kind in ["usd", "tokens", "slots"] {
                let amount = match kind {
                    "usd" => back.usd,
                    "tokens" => back.tokens,
                    _ => i64::from(back.slots),
                };
                if amount <= 0 {
                    continue;
                }
                let given =
                    give_back(&self.pool, &tenant, &scope, kind, &self.instance_id, amount).await;
                if let Err(e) = given {
                    // Still held in the database (and renewed): this instance keeps counting it as its own.
                    state.lease_restore(&back);
                    return Err(e);
                }
                match kind {
                    "usd" => back.usd = 0,
                    "tokens" => back.tokens = 0,
                    _ => back.slots = 0,
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

/// The tokens `tpm` counts (billable rows: input, cache writes, output) stored in the last minute for the tenant,
/// or with `model` for the rows of that `limits.models` entry, per second.
async fn metered_tokens(
    conn: &mut sqlx::PgConnection,
    tenant_id: &str,
    model: Option<&ModelRows>,
    now: chrono::DateTime<Utc>,
) -> Result<Buckets, sqlx::Error> {
    let since_ms = (now.timestamp() - 60) * 1000;
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT ts_ms / 1000 AS s,
                LEAST(SUM(input_tokens::numeric + cache_write_5m_tokens + cache_write_1h_tokens + output_tokens),
                      9223372036854775807)::bigint
         FROM requests
         WHERE tenant_id = $1 AND billable AND ts_ms >= $2
           AND ($3 OR model ILIKE $4 OR model = ANY($5))
         GROUP BY 1 ORDER BY 1",
    )
    .bind(tenant_id)
    .bind(since_ms)
    .bind(model.is_none())
    .bind(model.map_or("", |m| m.like.as_str()))
    .bind(model.map_or(&[][..], |m| &m.aliases[..]))
    .fetch_all(conn)
    .await?;
    Ok(buckets(Buckets::per_second(), 1, rows))
}

/// `(bucket index, amount)` rows, oldest first, as buckets of `width` seconds.
fn buckets(mut b: Buckets, width: i64, rows: Vec<(i64, i64)>) -> Buckets {
    for (i, amount) in rows {
        if let Some(at) = chrono::DateTime::from_timestamp(i.saturating_mul(width), 0) {
            b.add(at, amount);
        }
    }
    b
}

/// A claim's grant: the request's `need` (even past the limit: it is the one that crosses it, as on one instance)
/// plus headroom, a quarter of what is `free` after it and at most [`HEADROOM_REQUESTS`] times the request's own
/// reservation `unit`, so it shrinks to nothing as the limit runs out.
pub fn with_headroom(free: i64, need: i64, unit: i64) -> i64 {
    let headroom =
        (free.saturating_sub(need).max(0) / 4).min(unit.max(1).saturating_mul(HEADROOM_REQUESTS));
    need.saturating_add(headroom)
}

/// Where each rolling window of `limits` starts in the ledger (Unix ms): the start of the minute it reaches back
/// into, as the per-minute buckets of `super::rolling` count.
fn rolling_from_for(limits: &Limits, now: chrono::DateTime<Utc>) -> Vec<i64> {
    limits
        .rolling
        .iter()
        .map(|r| (now.timestamp() - span_s(r.hours)).div_euclid(60) * 60_000)
        .collect()
}

async fn give_back(
    pool: &PgPool,
    tenant: &str,
    scope: &str,
    kind: &str,
    instance: &str,
    amount: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE limit_leases SET amount = GREATEST(amount - $5, 0)
         WHERE tenant_id = $1 AND scope = $2 AND kind = $3 AND instance_id = $4",
    )
    .bind(tenant)
    .bind(scope)
    .bind(kind)
    .bind(instance)
    .bind(amount)
    .execute(pool)
    .await?;
    Ok(())
}

/// What one ledger batch moves out of one lease: `instance`'s spend and `tpm` tokens for `tenant` (`scope` '')
/// or one of its `limits.models` entries (`scope` the pattern; tokens only) were stored, so they now count in
/// the ledger instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseMove {
    pub tenant: String,
    pub scope: String,
    pub instance: String,
    pub usd: i64,
    pub tokens: i64,
}

/// The tokens a stored row counts for `tpm` (as [`super::budget::tpm_tokens`] counts them at settlement):
/// input, cache writes and output of a billable request.
pub fn row_tokens(r: &crate::ledger::Record) -> i64 {
    if !r.billable {
        return 0;
    }
    r.input_tokens
        .saturating_add(r.cache_write_5m_tokens)
        .saturating_add(r.cache_write_1h_tokens)
        .saturating_add(r.output_tokens)
        .max(0)
}

/// The lease moves of a batch of newly stored rows, in one global order (row locks taken in the same order by
/// every instance never deadlock). `shared`: this instance's shared limits, which know the `limits.models` entries
/// with `tpm` each row counts for ([`SharedLimits::token_scopes`]).
pub fn lease_moves(
    rows: &[crate::ledger::Record],
    shared: Option<&SharedLimits>,
) -> Vec<LeaseMove> {
    let mut moves: std::collections::BTreeMap<(&str, String, &str), (i64, i64)> =
        Default::default();
    for r in rows {
        let Some(instance) = r.instance_id.as_deref() else {
            continue;
        };
        let tokens = row_tokens(r);
        let cost = r.cost_nanousd.max(0);
        if cost > 0 || tokens > 0 {
            let m = moves
                .entry((r.tenant_id.as_str(), String::new(), instance))
                .or_default();
            m.0 = m.0.saturating_add(cost);
            m.1 = m.1.saturating_add(tokens);
        }
        if tokens > 0 {
            for scope in shared.map_or_else(Vec::new, |s| s.token_scopes(&r.tenant_id, &r.model)) {
                let m = moves
                    .entry((r.tenant_id.as_str(), scope, instance))
                    .or_default();
                m.1 = m.1.saturating_add(tokens);
            }
        }
    }
    moves
        .into_iter()
        .map(|((tenant, scope, instance), (usd, tokens))| LeaseMove {
            tenant: tenant.to_string(),
            scope,
            instance: instance.to_string(),
            usd,
            tokens,
        })
        .collect()
}

/// In the ledger batch's transaction: what `mv` says was stored leaves its instance's `usd` and `tokens` leases
/// (it now counts in the ledger).
pub async fn move_to_ledger(
    tx: &mut Transaction<'_, Postgres>,
    mv: &LeaseMove,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE limit_leases SET amount = GREATEST(amount - CASE kind WHEN 'usd' THEN $4 ELSE $5 END, 0)
         WHERE tenant_id = $1 AND scope = $2 AND instance_id = $3 AND kind IN ('usd', 'tokens')",
    )
    .bind(&mv.tenant)
    .bind(&mv.scope)
    .bind(&mv.instance)
    .bind(mv.usd)
    .bind(mv.tokens)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headroom_is_a_quarter_of_the_rest_at_most_eight_requests_and_never_below_the_need() {
        assert_eq!(with_headroom(10_000, 100, 100), 100 + 800);
        assert_eq!(with_headroom(1_000, 100, 100), 100 + 225);
        // Near the limit: the request alone, even past what is free (it is the one that crosses the limit).
        assert_eq!(with_headroom(50, 100, 100), 100);
    }

    #[test]
    fn a_token_lease_holds_reservations_and_unstored_tokens_until_their_batch_commits() {
        let t0 = Instant::now();
        let mut share = Share::default();
        share.granted(
            Grant {
                tokens: 900,
                ..Default::default()
            },
            t0,
        );
        // 300 reserved in flight, 200 metered and not stored: 400 unused go back once the claim is old enough.
        share.pending_tokens = 200;
        assert_eq!(share.trim(0, 300, 0, t0).tokens, 0, "claimed just now");
        let back = share.trim(0, 300, 0, t0 + TRIM_AFTER);
        assert_eq!((back.tokens, share.tokens), (400, 500));
        // The batch storing the 200 commits: they leave the lease, as in the database.
        share.committed(0, 200);
        assert_eq!((share.tokens, share.pending_tokens), (300, 0));
        // A give-back that failed is still held.
        share.restore(&back);
        assert_eq!(share.tokens, 700);
        // A grant to a row that had expired starts it afresh; a lease not renewed in time is forgotten.
        share.granted(
            Grant {
                tokens: 50,
                tokens_alive: false,
                ..Default::default()
            },
            t0,
        );
        assert_eq!(share.tokens, 50);
        share.forget();
        assert_eq!(share.tokens, 0);
    }

    fn row(tenant: &str, instance: Option<&str>, billable: bool) -> crate::ledger::Record {
        crate::ledger::Record {
            tenant_id: tenant.to_string(),
            instance_id: instance.map(str::to_string),
            model: "claude-sonnet-4-6".to_string(),
            billable,
            input_tokens: 50,
            cache_write_5m_tokens: 7,
            cache_write_1h_tokens: 3,
            cache_read_tokens: 1000,
            output_tokens: 200,
            cost_nanousd: if billable { 10 } else { 0 },
            ..Default::default()
        }
    }

    #[test]
    fn stored_rows_leave_their_instances_leases_with_the_tokens_tpm_counts() {
        let rows = [
            row("b", Some("i1"), true),
            row("a", Some("i2"), true),
            row("a", Some("i1"), true),
            row("a", Some("i1"), true),
            // count_tokens: free, counts for no limit.
            row("a", Some("i1"), false),
            // Written before instance ids: in no lease.
            row("a", None, true),
        ];
        let mv = |tenant: &str, instance: &str, usd, tokens| LeaseMove {
            tenant: tenant.into(),
            scope: String::new(),
            instance: instance.into(),
            usd,
            tokens,
        };
        // Cache reads are left out (docs/limits.md): 50 + 7 + 3 + 200 per row. In one order for every instance.
        assert_eq!(
            lease_moves(&rows, None),
            vec![
                mv("a", "i1", 20, 520),
                mv("a", "i2", 10, 260),
                mv("b", "i1", 10, 260)
            ]
        );
    }
}
