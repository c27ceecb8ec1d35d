//! Configuration: parsed once into validated types, swapped atomically on reload.
//!
//! The files and field names are the original CCGate's (`config/server.json`, `config/upstreams.json`,
//! `config/tenants.json`), so an existing `config/` folder works as it is. `raw.rs` is the on-disk shape,
//! `load.rs` turns it into the types below (or an error naming the file and field path), `examples.rs` holds the
//! embedded example files, and `watch.rs` reloads on change, keeping the last good config when an edit is invalid.

pub mod defaults;
pub mod examples;
pub mod load;
pub mod raw;
pub mod watch;

use std::collections::BTreeMap;
use std::time::Duration;

pub use load::{load_dir, ConfigError, ConfigErrors, Loaded};

/// A fully validated configuration. Cheap to share behind an `Arc`; never mutated after construction.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub admin: AdminConfig,
    pub openai: OpenAiConfig,
    pub upstreams: Vec<UpstreamConfig>,
    pub load_balancer: LoadBalancerConfig,
    pub tenants: Vec<TenantConfig>,
    /// `storage.url`; `None`: the embedded SQLite ledger in the data folder. Read at start only.
    pub storage: Option<StorageUrl>,
    /// `alerts`: webhooks, read at each delivery (a reload applies to the next alert).
    pub alerts: Vec<crate::alerts::AlertHook>,
    /// `logging`: the log files and the console. Read at start only.
    pub logging: LoggingConfig,
}

/// `logging` in server.json, as the original had it (`telemetry/logs.rs` writes the files).
#[derive(Debug, Clone)]
pub struct LoggingConfig {
    /// `logging.level`: the least severe events written (console and `combined.log`); winston's names accepted.
    pub level: tracing::Level,
    /// `logging.maxFileSize` in bytes: a file is rotated once it has passed this size.
    pub max_file_size: u64,
    /// `logging.maxFiles`: files kept per log, the one being written included.
    pub max_files: u32,
    /// `logging.directory`; `None`: `<data-dir>/logs` (`./data/logs` with the default data folder, as the original).
    pub directory: Option<std::path::PathBuf>,
    /// `logging.enableConsole`: also log to stderr.
    pub enable_console: bool,
    /// `logging.bodies`: whether prompts and answers may be logged (never unless explicitly on).
    pub bodies: bool,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: tracing::Level::INFO,
            // "100MB", the original's default: bytesize reads MB as 10^6 bytes (MiB is 2^20).
            max_file_size: 100_000_000,
            max_files: 5,
            directory: None,
            enable_console: true,
            bodies: false,
        }
    }
}

/// Where the ledger lives. The SQLite file serves one instance; a PostgreSQL database can be shared by several.
#[derive(Clone, PartialEq, Eq)]
pub enum StorageUrl {
    Sqlite(std::path::PathBuf),
    /// The URL as given (sqlx reads host, user, password, database and options from it).
    Postgres(String),
}

/// A storage URL CCGate cannot use; the message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidStorageUrl(String);

impl StorageUrl {
    pub fn parse(url: &str) -> Result<StorageUrl, InvalidStorageUrl> {
        let url = url.trim();
        let invalid = |why: &str| InvalidStorageUrl(why.to_owned());
        if let Some(rest) = url.strip_prefix("sqlite://") {
            // CCGate sets the SQLite options itself (WAL, synchronous, busy timeout): query options would be
            // silently overridden, so they are refused rather than ignored.
            if rest.contains('?') {
                return Err(invalid(
                    "sqlite:// URLs take a file path only (no ?options; CCGate sets them)",
                ));
            }
            if rest.is_empty() || rest.starts_with(":memory:") {
                return Err(invalid(
                    "sqlite:// needs a file path, e.g. sqlite://data/ccgate.db or sqlite:///var/lib/ccgate/ccgate.db",
                ));
            }
            return Ok(StorageUrl::Sqlite(rest.into()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // Parsed now so that a typo is a config error at load, not a failure at the first connection.
            url.parse::<sqlx::postgres::PgConnectOptions>()
                .map_err(|e| invalid(&format!("not a valid PostgreSQL URL: {e}")))?;
            return Ok(StorageUrl::Postgres(url.to_owned()));
        }
        Err(invalid(
            "expected sqlite://<path> or postgres://user@host:port/database (postgresql:// also accepted)",
        ))
    }

    /// `sqlite` or `postgres`, as `/health` shows it.
    pub fn backend(&self) -> &'static str {
        match self {
            StorageUrl::Sqlite(_) => "sqlite",
            StorageUrl::Postgres(_) => "postgres",
        }
    }
}

/// Without the password: the URL ends up in logs and error messages.
impl std::fmt::Display for StorageUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageUrl::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            StorageUrl::Postgres(u) => match reqwest::Url::parse(u) {
                Ok(mut parsed) => {
                    if parsed.password().is_some() {
                        let _ = parsed.set_password(Some("***"));
                    }
                    write!(f, "{parsed}")
                }
                Err(_) => f.write_str("postgres://(unparsable URL)"),
            },
        }
    }
}

impl std::fmt::Debug for StorageUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StorageUrl({self})")
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub timezone: chrono_tz::Tz,
    /// `server.cors.origins`; `["*"]` allows any origin.
    pub cors_origins: Vec<String>,
    pub body_limit_bytes: usize,
    pub shutdown_grace: Duration,
    /// How long the upstream is still read after the tenant hung up, so the usage is complete.
    pub disconnect_drain: Duration,
    /// How long a client may take to send its request body (slow or half-open clients are cut off).
    pub body_read_timeout: Duration,
    /// `server.trustProxyHeaders`: the client address is the last hop of `X-Forwarded-For` (set by the reverse
    /// proxy in front), not the TCP peer. Only for a gateway reachable through that proxy alone: otherwise a
    /// client could name any address and escape the login throttle.
    pub trust_proxy_headers: bool,
    /// `server.instanceId`: the name this gateway writes into every ledger row (`None`: `hostname:port`).
    pub instance_id: Option<String>,
    /// `server.metricsToken`: `GET /metrics` on the main listener requires `Authorization: Bearer <token>`.
    pub metrics_token: Option<String>,
    /// `server.metricsListen`: a separate listener for `/metrics` only (read at start).
    pub metrics_listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub enabled: bool,
    pub path: String,
    pub username: String,
    /// `admin.password`; empty when `admin.passwordHash` is used instead.
    pub password: String,
    /// `admin.passwordHash`: an argon2 PHC string, checked instead of a plaintext password.
    pub password_hash: Option<PasswordHash>,
}

/// A validated argon2 PHC string (`$argon2id$v=19$m=…`) and the last password it accepted.
///
/// Verifying argon2 takes tens of milliseconds by design; HTTP Basic sends the password with every admin call, so
/// the SHA-256 of the password that last verified is kept and compared (in constant time) first. The memo lives
/// with this config: a reload starts afresh.
#[derive(Clone)]
pub struct PasswordHash {
    phc: String,
    verified: std::sync::Arc<parking_lot::Mutex<Option<[u8; 32]>>>,
}

impl PasswordHash {
    /// Refused when `phc` is not an argon2 PHC string.
    pub fn parse(phc: &str) -> Result<PasswordHash, String> {
        let parsed = argon2::PasswordHash::new(phc.trim()).map_err(|e| e.to_string())?;
        if !parsed.algorithm.as_str().starts_with("argon2") {
            return Err(format!(
                "an argon2 hash is expected (argon2id, argon2i or argon2d), got {}",
                parsed.algorithm
            ));
        }
        Ok(PasswordHash {
            phc: phc.trim().to_owned(),
            verified: Default::default(),
        })
    }

    /// The PHC string (it identifies the credential in force, for sessions made with it).
    pub fn phc(&self) -> &str {
        &self.phc
    }

    pub fn verify(&self, password: &str) -> bool {
        use argon2::PasswordVerifier;
        use sha2::Digest;
        use subtle::ConstantTimeEq;
        let digest: [u8; 32] = sha2::Sha256::digest(password.as_bytes()).into();
        if let Some(known) = *self.verified.lock() {
            if bool::from(known.ct_eq(&digest)) {
                return true;
            }
        }
        let Ok(parsed) = argon2::PasswordHash::new(&self.phc) else {
            return false;
        };
        let ok = argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        if ok {
            *self.verified.lock() = Some(digest);
        }
        ok
    }

    /// A new argon2id hash of `password` with a random salt (`ccgate hash-password`).
    pub fn hash(password: &str) -> Result<String, String> {
        use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
        let salt = SaltString::generate(&mut OsRng);
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    }
}

/// The hash is a credential too: never printed.
impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(argon2)")
    }
}

impl AdminConfig {
    /// Admin login is refused while the password is missing, shorter than 8 characters or a known default or
    /// example value ([`defaults::KNOWN_ADMIN_PASSWORDS`]).
    pub fn password_is_weak(password: &str) -> bool {
        defaults::admin_password_problem(password).is_some()
    }

    /// Why the configured password cannot be used, if it cannot (`None` also while admin login is disabled, and
    /// with `passwordHash`, whose password CCGate never sees until a login).
    pub fn password_problem(&self) -> Option<defaults::WeakPassword> {
        if self.password_hash.is_some() {
            return None;
        }
        self.enabled
            .then(|| defaults::admin_password_problem(&self.password))
            .flatten()
    }

    pub fn login_allowed(&self) -> bool {
        self.enabled && (self.password_hash.is_some() || !Self::password_is_weak(&self.password))
    }

    /// Whether `user` and `password` are the admin's (constant-time in the username and plaintext password).
    pub fn credentials_match(&self, user: &str, password: &str) -> bool {
        use subtle::ConstantTimeEq;
        let u: bool = self.username.as_bytes().ct_eq(user.as_bytes()).into();
        let p = match &self.password_hash {
            Some(h) => h.verify(password),
            None => self.password.as_bytes().ct_eq(password.as_bytes()).into(),
        };
        u & p
    }

    /// What identifies the credential in force: sessions made under another one are void.
    pub fn credential_fingerprint(&self) -> String {
        match &self.password_hash {
            Some(h) => format!("{}\0hash\0{}", self.username, h.phc()),
            None => format!("{}\0plain\0{}", self.username, self.password),
        }
    }
}

#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    pub enabled: bool,
    pub models: BTreeMap<String, String>,
    pub default_model: String,
    pub expose_reasoning: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthHeader {
    XApiKey,
    Bearer,
    Both,
}

#[derive(Debug, Clone)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub idle: Duration,
    pub total: Duration,
}

#[derive(Debug, Clone)]
pub struct HealthCheckConfig {
    pub enabled: bool,
    pub interval: Duration,
    pub timeout: Duration,
    /// Appended to the upstream base URL (which may carry a path prefix).
    pub path: String,
}

/// A `caFile`: where it was read from (for messages) and its PEM text as read at config load, so a file
/// changed later takes effect with the next reload, not halfway.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CaFile {
    pub path: std::path::PathBuf,
    pub pem: std::sync::Arc<[u8]>,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub id: String,
    pub name: String,
    /// Base URL without a trailing slash; may carry a path prefix (`https://mirror.example/api`).
    pub url: String,
    pub key: String,
    pub description: String,
    pub weight: u32,
    pub enabled: bool,
    pub auth_header: AuthHeader,
    pub priority: i64,
    /// Model patterns this upstream serves; empty means all.
    pub models: Vec<String>,
    pub model_map: BTreeMap<String, String>,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub max_concurrency: Option<u32>,
    pub timeouts: Timeouts,
    pub proxy: Option<String>,
    /// Extra trusted roots for this upstream's TLS, read and checked at load.
    pub ca_file: Option<CaFile>,
    /// What the reseller charges relative to list price, in thousandths (1000 = list price).
    pub price_multiplier_milli: u32,
    pub health_check: HealthCheckConfig,
    pub trust: TrustConfig,
    pub balance: Option<BalanceConfig>,
}

/// `upstreams[].trust` (docs/trust.md); the default judges passively and only warns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrustConfig {
    pub reference: bool,
    pub on_suspect: OnSuspect,
    pub canary: Option<CanaryConfig>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnSuspect {
    #[default]
    Warn,
    /// Also serve this upstream only when nothing else can, until an admin clears the flag.
    Demote,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CanaryConfig {
    pub interval: Duration,
    /// The Claude model probed (a `modelMap` rename applies as for requests).
    pub model: String,
}

/// `upstreams[].balance`.
#[derive(Debug, Clone, PartialEq)]
pub struct BalanceConfig {
    pub source: BalanceSource,
    pub interval: Duration,
    pub low_usd: Option<f64>,
    pub low_days: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BalanceSource {
    /// `GET /v1/dashboard/billing/subscription` (`hard_limit_usd`) minus `GET /v1/dashboard/billing/usage`
    /// (`total_usage`, in cents).
    NewApi,
    Custom {
        path: String,
        json_pointer: String,
        unit: BalanceUnit,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BalanceUnit {
    Usd,
    Cents,
    /// new-api/one-api quota units: 500000 per USD.
    Quota,
}

impl BalanceUnit {
    pub fn to_usd(self, v: f64) -> f64 {
        match self {
            BalanceUnit::Usd => v,
            BalanceUnit::Cents => v / 100.0,
            BalanceUnit::Quota => v / 500_000.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    WeightedRoundRobin,
    RoundRobin,
    Random,
    LeastConnections,
}

impl Strategy {
    pub const NAMES: &'static [&'static str] = &[
        "weighted_round_robin",
        "round_robin",
        "random",
        "least_connections",
    ];

    pub fn parse(s: &str) -> Option<Strategy> {
        match s {
            "weighted_round_robin" => Some(Strategy::WeightedRoundRobin),
            "round_robin" => Some(Strategy::RoundRobin),
            "random" => Some(Strategy::Random),
            "least_connections" => Some(Strategy::LeastConnections),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::WeightedRoundRobin => "weighted_round_robin",
            Strategy::RoundRobin => "round_robin",
            Strategy::Random => "random",
            Strategy::LeastConnections => "least_connections",
        }
    }
}

#[derive(Debug, Clone)]
pub struct LoadBalancerConfig {
    pub strategy: Strategy,
    pub health_check_enabled: bool,
    pub failover_enabled: bool,
    pub max_attempts: u32,
    pub session_affinity: bool,
}

/// Where a tenant is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TenantSource {
    /// `tenants.json`: edited as a file.
    #[default]
    File,
    /// Made through the admin API, kept in the store (`console_tenants`; see `crate::tenants`).
    Console,
}

impl TenantSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantSource::File => "file",
            TenantSource::Console => "console",
        }
    }
}

#[derive(Debug, Clone)]
pub struct TenantConfig {
    pub id: String,
    pub name: String,
    /// The key itself (`tenants.json`); empty for a console tenant, whose key only the client knows.
    pub key: String,
    /// SHA-256 of a console tenant's key (what the store keeps).
    pub key_sha256: Option<[u8; 32]>,
    pub source: TenantSource,
    /// After this the key is refused with 401 saying when it expired.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub enabled: bool,
    pub allowed_models: Vec<String>,
    pub limits: Limits,
}

/// Budgets are kept in nano-USD so that comparisons with metered costs are exact integers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    pub daily_nanousd: Option<i64>,
    pub weekly_nanousd: Option<i64>,
    pub monthly_nanousd: Option<i64>,
    pub total_nanousd: Option<i64>,
    /// `rolling`: spend counted back from now over `hours` (see `policy::rolling`).
    pub rolling: Vec<RollingLimit>,
    pub rpm: Option<u32>,
    /// `tpm`: input plus output tokens (cache reads and writes included) per rolling minute, from metered usage.
    pub tpm: Option<u64>,
    pub max_concurrent: Option<u32>,
    /// `maxOutputTokens`: the most output tokens a request may ask for.
    pub max_output_tokens: Option<u64>,
    /// `clampOutputTokens`: above `maxOutputTokens` the request is sent with the cap instead of refused.
    pub clamp_output_tokens: bool,
    /// `models`: limits of their own for the models matching a pattern, checked in addition to these. Never
    /// nested (a per-model entry has no `models` of its own).
    pub models: Vec<ModelLimits>,
}

/// One `rolling` window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollingLimit {
    /// 1 to [`RollingLimit::MAX_HOURS`].
    pub hours: u32,
    pub max_nanousd: i64,
}

impl RollingLimit {
    /// 30 days: bounds what each tenant keeps in memory (one bucket per minute with spend).
    pub const MAX_HOURS: u32 = 720;
}

/// One `models` entry: the limits applied to the resolved models that `pattern` matches (as `allowedModels`).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelLimits {
    pub pattern: String,
    pub limits: Limits,
}

impl Limits {
    /// Whether any limit is in dollars: such a tenant cannot be served a model CCGate cannot price.
    pub fn has_usd_limit(&self) -> bool {
        [
            self.daily_nanousd,
            self.weekly_nanousd,
            self.monthly_nanousd,
            self.total_nanousd,
        ]
        .iter()
        .any(Option::is_some)
            || !self.rolling.is_empty()
    }

    /// Whether a request for `model` is under any dollar limit: the tenant's own, or a matching `models` entry's.
    pub fn has_usd_limit_for(&self, model: &str) -> bool {
        self.has_usd_limit()
            || self
                .models_matching(model)
                .any(|m| m.limits.has_usd_limit())
    }

    /// The `models` entries whose pattern matches `model` (the resolved model).
    pub fn models_matching<'a>(&'a self, model: &'a str) -> impl Iterator<Item = &'a ModelLimits> {
        self.models
            .iter()
            .filter(move |m| ccgate_meter::wildcard::matches(&m.pattern, model))
    }

    /// The output-token cap for `model`: the smallest of the tenant's own and every matching model entry's.
    pub fn output_cap(&self, model: &str) -> Option<u64> {
        self.models_matching(model)
            .filter_map(|m| m.limits.max_output_tokens)
            .chain(self.max_output_tokens)
            .min()
    }

    /// Longest rolling window over the tenant's and its models' limits (how much spend history is kept).
    pub fn longest_rolling_hours(&self) -> Option<u32> {
        self.rolling
            .iter()
            .map(|r| r.hours)
            .chain(
                self.models
                    .iter()
                    .filter_map(|m| m.limits.longest_rolling_hours()),
            )
            .max()
    }
}
