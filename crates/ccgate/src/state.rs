//! Shared gateway state. [`Gateway`] lives for the whole process; [`Runtime`] is rebuilt from each valid
//! config and swapped in atomically (arc-swap), so a request sees one consistent config from start to end and
//! never takes a lock to read it. Live counters (upstream health, tenant budgets) are keyed by id and carried
//! over from one runtime to the next, so a reload neither resets budgets nor forgets a failing upstream.

use crate::config::{Config, Loaded, TenantConfig, UpstreamConfig};
use crate::forward::client::{ClientSettings, UpstreamClient};
use crate::ledger::Ledger;
use crate::policy::budget::TenantState;
use crate::routing::{Balancer, SessionPins, UpstreamState};
use arc_swap::ArcSwap;
use ccgate_meter::pricing::PriceTable;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub struct TenantRt {
    pub config: TenantConfig,
    pub state: Arc<TenantState>,
    /// The state of each `limits.models` entry, in the config's order.
    pub model_states: Vec<Arc<TenantState>>,
}

pub struct UpstreamRt {
    pub config: UpstreamConfig,
    pub state: Arc<UpstreamState>,
    pub client: UpstreamClient,
    /// `{url}/v1/messages` and `{url}/v1/messages/count_tokens`, parsed once: a request clones one (a string
    /// copy) and at most sets its query, instead of parsing the whole URL (host, IDNA) every time.
    messages_url: reqwest::Url,
    count_tokens_url: reqwest::Url,
    /// `config.url` without credentials: what request URIs are built from.
    base_url: String,
    /// `Authorization: Basic` from credentials in the configured URL (`http://user:pass@host`), sent when the
    /// request carries no other `Authorization`, as HTTP clients do for such URLs.
    url_auth: Option<http::HeaderValue>,
    /// The upstream key as the headers `auth_header` asks for, built once.
    credentials: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Cuts the upstream key out of its answers (`None`: no key, or one too short to redact safely).
    pub redactor: Option<Arc<crate::forward::redact::Redactor>>,
}

impl UpstreamRt {
    /// The upstream URL for `path` with the tenant's query string.
    pub fn url_for(
        &self,
        path: &str,
        query: Option<&str>,
    ) -> Result<reqwest::Url, url::ParseError> {
        let mut url = match path {
            "/v1/messages" => self.messages_url.clone(),
            "/v1/messages/count_tokens" => self.count_tokens_url.clone(),
            _ => parse_url(&self.base_url, path)?,
        };
        if query.is_some() {
            url.set_query(query);
        }
        Ok(url)
    }

    /// The headers of a request to this upstream: the client's, cleaned, plus our credentials
    /// ([`crate::forward::headers::upstream_request_headers`]), plus the URL's basic credentials if any.
    pub fn request_headers(&self, client: &http::HeaderMap) -> http::HeaderMap {
        let mut h = crate::forward::headers::upstream_request_headers(
            client,
            &self.config,
            &self.credentials,
        );
        if let Some(auth) = &self.url_auth {
            if !h.contains_key(http::header::AUTHORIZATION) {
                h.insert(http::header::AUTHORIZATION, auth.clone());
            }
        }
        h
    }

    /// The configured URL without any credentials in it: what may be shown.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn in_flight(&self) -> u32 {
        self.state.in_flight.load(Ordering::Relaxed)
    }
}

/// Why a validated config could not become a runtime; the running one stays.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("pricing.json: {0}")]
    Pricing(#[from] ccgate_meter::pricing::PricingError),
    #[error("upstream {id}: url: {source}")]
    Url { id: String, source: url::ParseError },
    #[error(
        "upstream {id}: the user name and password in its URL cannot form an Authorization header"
    )]
    UrlCredentials { id: String },
    #[error("upstream {id}: {source}")]
    Client {
        id: String,
        source: crate::forward::client::ClientBuildError,
    },
}

/// Splits credentials off an upstream URL: the URL without them, and the `Basic` header they stand for.
fn split_url_credentials(
    id: &str,
    url: &str,
) -> Result<(String, Option<http::HeaderValue>), RuntimeError> {
    use base64::Engine;
    use percent_encoding::percent_decode_str;
    let mut parsed = reqwest::Url::parse(url).map_err(|source| RuntimeError::Url {
        id: id.to_owned(),
        source,
    })?;
    if parsed.username().is_empty() && parsed.password().is_none() {
        return Ok((url.to_string(), None));
    }
    let user = percent_decode_str(parsed.username()).decode_utf8_lossy();
    let pass = parsed
        .password()
        .map(|p| percent_decode_str(p).decode_utf8_lossy())
        .unwrap_or_default();
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    let mut auth = http::HeaderValue::from_str(&format!("Basic {token}"))
        .map_err(|_| RuntimeError::UrlCredentials { id: id.to_owned() })?;
    auth.set_sensitive(true);
    // Cannot fail on an http(s) URL with a host, which config validation guarantees.
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    Ok((
        parsed.as_str().trim_end_matches('/').to_string(),
        Some(auth),
    ))
}

fn parse_url(base: &str, path: &str) -> Result<reqwest::Url, url::ParseError> {
    reqwest::Url::parse(&format!("{base}{path}"))
}

pub struct Runtime {
    pub config: Config,
    /// By key. The map's hasher is keyed randomly per process, so which keys share a bucket (the only thing a
    /// lookup's timing could reveal) is unknowable from outside; the final comparison is constant-time.
    pub tenants_by_key: HashMap<Box<str>, Arc<TenantRt>>,
    /// Console tenants by the SHA-256 of their key (the store keeps no key).
    pub tenants_by_key_hash: HashMap<[u8; 32], Arc<TenantRt>>,
    pub tenants_by_id: HashMap<String, Arc<TenantRt>>,
    pub upstreams: Vec<Arc<UpstreamRt>>,
    pub balancer: Balancer,
    pub pricing: Arc<PriceTable>,
    /// Shared with every runtime: pins survive reloads.
    pub pins: Arc<SessionPins>,
}

pub struct Gateway {
    pub runtime: ArcSwap<Runtime>,
    pub config_dir: PathBuf,
    pub data_dir: PathBuf,
    pub started_at: Instant,
    pub ledger: Ledger,
    /// Cancelled when shutdown begins; long-running tasks watch it.
    pub shutdown: CancellationToken,
    /// Cancelled when the shutdown grace period is over: open streams end with an error event and settle with
    /// the usage seen, so the ledger can close with every request recorded.
    pub cut: CancellationToken,
    /// Tracks work that must finish before the ledger is flushed (streams drained after a client hung up).
    pub tasks: TaskTracker,
    /// Each upstream's live state by id, with the endpoint it was learnt from.
    upstream_states: Mutex<HashMap<String, (Endpoint, Arc<UpstreamState>)>>,
    tenant_states: Mutex<HashMap<String, Arc<TenantState>>>,
    /// The state of each tenant's `limits.models` entries, by (tenant id, pattern): kept across reloads.
    model_states: Mutex<HashMap<(String, String), Arc<TenantState>>>,
    /// Each upstream's client by id, with the settings it was built from: a reload keeps the pool of an upstream
    /// whose transport settings did not change.
    clients: Mutex<HashMap<String, (ClientSettings, UpstreamClient)>>,
    pins: Arc<SessionPins>,
    /// Failed logins per client address (brute-force lockouts); lives for the process, across reloads.
    pub throttle: crate::auth::throttle::Throttle,
    /// Set while the files on disk hold a config that was rejected (the last good one keeps running): what was
    /// wrong and since when, for /health and the dashboard.
    pub rejected_config: Mutex<Option<RejectedConfig>>,
    /// Failed logins since start (wrong tenant key or admin password): they have no tenant, so no ledger row.
    pub failed_logins: std::sync::atomic::AtomicU64,
    /// The last config loaded from the files (rebuilt with new console tenants when they change).
    file_config: Mutex<Option<Loaded>>,
    /// Tenants made through the admin API, as last read from the store (`crate::tenants`).
    console_tenants: Mutex<Vec<TenantConfig>>,
    /// Upstream enabled/weight/priority set through the admin API, as last read from the store.
    upstream_overrides: Mutex<Vec<crate::ledger::store::UpstreamOverride>>,
    /// Runtimes are built one at a time (a file reload and a console change may come together).
    apply_lock: Mutex<()>,
    /// Set once at start on a PostgreSQL store: tenant limits shared with the other instances.
    pub shared_limits: std::sync::OnceLock<Arc<crate::policy::lease::SharedLimits>>,
    /// Upstream trust: scorecard counters, canaries, balances (`crate::trust`).
    pub trust: crate::trust::Trust,
}

/// Where and how an upstream is reached: when any of it changes, its health so far is about another endpoint.
/// No `Debug`: it holds the upstream key.
#[derive(Clone, PartialEq)]
struct Endpoint {
    url: String,
    key: String,
    auth_header: crate::config::AuthHeader,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    proxy: Option<String>,
    ca_file: Option<crate::config::CaFile>,
}

impl Endpoint {
    fn of(u: &UpstreamConfig) -> Endpoint {
        Endpoint {
            url: u.url.clone(),
            key: u.key.clone(),
            auth_header: u.auth_header,
            headers: u.headers.clone(),
            proxy: u.proxy.clone(),
            ca_file: u.ca_file.clone(),
        }
    }
}

/// A config reload that failed: the running config is not what the files say.
#[derive(Debug, Clone)]
pub struct RejectedConfig {
    pub error: String,
    pub since: chrono::DateTime<chrono::Utc>,
}

impl Gateway {
    pub fn new(
        loaded: Loaded,
        config_dir: PathBuf,
        data_dir: PathBuf,
        ledger: Ledger,
    ) -> Result<Arc<Gateway>, RuntimeError> {
        let gw = Gateway {
            runtime: ArcSwap::from_pointee(placeholder_runtime()),
            config_dir,
            data_dir,
            started_at: Instant::now(),
            ledger,
            shutdown: CancellationToken::new(),
            cut: CancellationToken::new(),
            tasks: TaskTracker::new(),
            upstream_states: Mutex::new(HashMap::new()),
            tenant_states: Mutex::new(HashMap::new()),
            model_states: Mutex::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
            pins: Arc::new(SessionPins::default()),
            throttle: Default::default(),
            rejected_config: Mutex::new(None),
            failed_logins: Default::default(),
            shared_limits: Default::default(),
            file_config: Mutex::new(None),
            console_tenants: Mutex::new(Vec::new()),
            upstream_overrides: Mutex::new(Vec::new()),
            apply_lock: Mutex::new(()),
            trust: Default::default(),
        };
        gw.apply(loaded)?;
        Ok(Arc::new(gw))
    }

    pub fn rt(&self) -> arc_swap::Guard<Arc<Runtime>> {
        self.runtime.load()
    }

    /// Builds a runtime from a validated config and swaps it in. On error the current runtime stays.
    pub fn apply(&self, loaded: Loaded) -> Result<(), RuntimeError> {
        let _one_at_a_time = self.apply_lock.lock();
        self.build(loaded.clone())?;
        *self.file_config.lock() = Some(loaded);
        Ok(())
    }

    /// Serves these console tenants (from the store; `crate::tenants`) beside the files' from now on, and applies
    /// these upstream overrides (`crate::api::admin_upstreams`) over the files' values.
    pub fn set_console_state(
        &self,
        tenants: Vec<TenantConfig>,
        overrides: Vec<crate::ledger::store::UpstreamOverride>,
    ) {
        let _one_at_a_time = self.apply_lock.lock();
        *self.console_tenants.lock() = tenants;
        *self.upstream_overrides.lock() = overrides;
        let Some(loaded) = self.file_config.lock().clone() else {
            return;
        };
        if let Err(e) = self.build(loaded) {
            tracing::error!(error = %e, "console tenants: the runtime could not be rebuilt; the running one stays");
        }
    }

    /// The file config plus the console tenants that do not clash with its tenants (the file wins), with the
    /// admin's upstream overrides applied.
    fn with_console_tenants(&self, mut config: Config) -> Config {
        let ids: std::collections::HashSet<String> =
            config.tenants.iter().map(|t| t.id.clone()).collect();
        let file_keys: std::collections::HashSet<[u8; 32]> = config
            .tenants
            .iter()
            .map(|t| crate::tenants::key_sha256(&t.key))
            .collect();
        for t in self.console_tenants.lock().iter() {
            if ids.contains(&t.id) {
                tracing::warn!(tenant = %t.id, "console tenant has the id of a tenants.json tenant; the file's is served");
            } else if t.key_sha256.is_some_and(|h| file_keys.contains(&h)) {
                tracing::warn!(tenant = %t.id, "console tenant has the key of a tenants.json tenant; it is not served");
            } else {
                config.tenants.push(t.clone());
            }
        }
        for o in self.upstream_overrides.lock().iter() {
            if let Some(u) = config.upstreams.iter_mut().find(|u| u.id == o.upstream_id) {
                if let Some(e) = o.enabled {
                    u.enabled = e;
                }
                if let Some(w) = o.weight {
                    u.weight = u32::try_from(w).unwrap_or(u.weight);
                }
                if let Some(p) = o.priority {
                    u.priority = p;
                }
            }
        }
        config
    }

    /// The config loaded from the files, before console tenants and overrides (what the admin API compares to).
    pub fn file_config(&self) -> Option<Config> {
        self.file_config.lock().as_ref().map(|l| l.config.clone())
    }

    /// The upstream overrides in force.
    pub fn upstream_overrides(&self) -> Vec<crate::ledger::store::UpstreamOverride> {
        self.upstream_overrides.lock().clone()
    }

    /// Builds a runtime from a validated config (plus the console tenants) and swaps it in.
    fn build(&self, loaded: Loaded) -> Result<(), RuntimeError> {
        let pricing = match &loaded.pricing_json {
            Some(text) => {
                let (table, warnings) = PriceTable::builtin().with_overrides_json(text)?;
                for w in warnings {
                    tracing::warn!("{w}");
                }
                table
            }
            None => PriceTable::builtin(),
        };
        let config = self.with_console_tenants(loaded.config);
        let clients_in_use = self.clients_for(&config.upstreams)?;
        // Upstreams whose endpoint changed start afresh, but only once the whole config is accepted: a rejected
        // reload leaves the running upstreams' state alone.
        let mut moved: Vec<(Arc<UpstreamState>, Endpoint)> = Vec::new();
        let upstreams: Vec<Arc<UpstreamRt>> = config
            .upstreams
            .iter()
            .zip(&clients_in_use)
            .map(|(u, (_, client))| {
                let (base_url, url_auth) = split_url_credentials(&u.id, &u.url)?;
                let parse = |p: &str| {
                    parse_url(&base_url, p).map_err(|source| RuntimeError::Url {
                        id: u.id.clone(),
                        source,
                    })
                };
                Ok(Arc::new(UpstreamRt {
                    credentials: crate::forward::headers::credential_headers(u),
                    redactor: crate::forward::redact::Redactor::new(&u.key).map(Arc::new),
                    messages_url: parse("/v1/messages")?,
                    count_tokens_url: parse("/v1/messages/count_tokens")?,
                    base_url,
                    url_auth,
                    config: u.clone(),
                    state: {
                        let endpoint = Endpoint::of(u);
                        let mut states = self.upstream_states.lock();
                        let (known, state) = states.entry(u.id.clone()).or_insert_with(|| {
                            (endpoint.clone(), Arc::new(UpstreamState::named(&u.id)))
                        });
                        if *known != endpoint {
                            moved.push((state.clone(), endpoint));
                        }
                        state.clone()
                    },
                    client: client.clone(),
                }))
            })
            .collect::<Result<_, RuntimeError>>()?;
        *self.clients.lock() = config
            .upstreams
            .iter()
            .map(|u| u.id.clone())
            .zip(clients_in_use)
            .collect();
        for (state, endpoint) in moved {
            tracing::info!(upstream = %state.id, "upstream URL or credentials changed; its health starts afresh");
            state.start_afresh();
            if let Some(entry) = self.upstream_states.lock().get_mut(&state.id) {
                entry.0 = endpoint;
            }
        }
        let mut by_key = HashMap::new();
        let mut by_key_hash = HashMap::new();
        let mut by_id = HashMap::new();
        for t in &config.tenants {
            let rt = Arc::new(TenantRt {
                config: t.clone(),
                state: self
                    .tenant_states
                    .lock()
                    .entry(t.id.clone())
                    .or_default()
                    .clone(),
                model_states: t
                    .limits
                    .models
                    .iter()
                    .map(|m| self.model_state(&t.id, &m.pattern))
                    .collect(),
            });
            match t.key_sha256 {
                Some(hash) => {
                    by_key_hash.insert(hash, rt.clone());
                }
                None => {
                    by_key.insert(t.key.as_str().into(), rt.clone());
                }
            }
            by_id.insert(t.id.clone(), rt);
        }
        let balancer = Balancer::new(config.load_balancer.strategy, &upstreams);
        let before = self.runtime.load_full();
        self.runtime.store(Arc::new(Runtime {
            config,
            tenants_by_key: by_key,
            tenants_by_key_hash: by_key_hash,
            tenants_by_id: by_id,
            upstreams,
            balancer,
            pricing: Arc::new(pricing),
            pins: self.pins.clone(),
        }));
        // Limits that grew count what the ledger holds from before the change.
        crate::policy::history::after_change(
            self.ledger.store.clone(),
            &before,
            &self.runtime.load_full(),
        );
        Ok(())
    }

    /// The session pins every runtime shares.
    pub fn session_pins(&self) -> &Arc<SessionPins> {
        &self.pins
    }

    /// Every tenant's live state, by id (a snapshot of the map).
    pub fn tenant_states(&self) -> Vec<(String, Arc<TenantState>)> {
        self.tenant_states
            .lock()
            .iter()
            .map(|(id, s)| (id.clone(), s.clone()))
            .collect()
    }

    /// Every `limits.models` entry's live state: (tenant id, pattern, state), a snapshot of the map.
    pub fn all_model_states(&self) -> Vec<(String, String, Arc<TenantState>)> {
        self.model_states
            .lock()
            .iter()
            .map(|((id, pattern), s)| (id.clone(), pattern.clone(), s.clone()))
            .collect()
    }

    /// The limits shared with other instances, once started (PostgreSQL store only).
    pub fn shared_limits(&self) -> Option<&Arc<crate::policy::lease::SharedLimits>> {
        self.shared_limits.get()
    }

    /// The state of tenant `id`'s `limits.models` entry `pattern`.
    pub fn model_state(&self, id: &str, pattern: &str) -> Arc<TenantState> {
        self.model_states
            .lock()
            .entry((id.to_string(), pattern.to_string()))
            .or_default()
            .clone()
    }

    pub fn tenant_state(&self, id: &str) -> Arc<TenantState> {
        self.tenant_states
            .lock()
            .entry(id.to_string())
            .or_default()
            .clone()
    }

    /// One client per upstream, built now so that a bad `proxy` or `caFile` fails the load; an upstream whose
    /// transport settings are unchanged keeps its client, and with it its warm connections.
    fn clients_for(
        &self,
        upstreams: &[UpstreamConfig],
    ) -> Result<Vec<(ClientSettings, UpstreamClient)>, RuntimeError> {
        let current = self.clients.lock();
        let mut out = Vec::with_capacity(upstreams.len());
        for u in upstreams {
            let settings = ClientSettings {
                connect_timeout: u.timeouts.connect,
                proxy: u.proxy.clone(),
                ca_file: u.ca_file.clone(),
            };
            let client = match current.get(&u.id) {
                Some((s, c)) if *s == settings => c.clone(),
                _ => UpstreamClient::new(&settings).map_err(|source| RuntimeError::Client {
                    id: u.id.clone(),
                    source,
                })?,
            };
            out.push((settings, client));
        }
        Ok(out)
    }
}

fn placeholder_runtime() -> Runtime {
    use crate::config::*;
    Runtime {
        config: Config {
            server: ServerConfig {
                host: String::new(),
                port: 0,
                timezone: chrono_tz::UTC,
                cors_origins: vec![],
                body_limit_bytes: 32 << 20,
                shutdown_grace: Duration::from_secs(30),
                disconnect_drain: Duration::from_secs(120),
                body_read_timeout: Duration::from_secs(60),
                trust_proxy_headers: false,
                instance_id: None,
                metrics_token: None,
                metrics_listen: None,
            },
            admin: AdminConfig {
                enabled: false,
                path: "/admin".into(),
                username: String::new(),
                password: String::new(),
                password_hash: None,
            },
            openai: OpenAiConfig {
                enabled: false,
                models: Default::default(),
                default_model: String::new(),
                expose_reasoning: false,
            },
            upstreams: vec![],
            storage: None,
            alerts: vec![],
            load_balancer: LoadBalancerConfig {
                strategy: Strategy::WeightedRoundRobin,
                health_check_enabled: false,
                failover_enabled: false,
                max_attempts: 1,
                session_affinity: false,
            },
            tenants: vec![],
            logging: LoggingConfig::default(),
        },
        tenants_by_key: HashMap::new(),
        tenants_by_key_hash: HashMap::new(),
        tenants_by_id: HashMap::new(),
        upstreams: vec![],
        balancer: Balancer::new(Strategy::WeightedRoundRobin, &[]),
        pricing: Arc::new(PriceTable::builtin()),
        pins: Arc::new(SessionPins::default()),
    }
}
