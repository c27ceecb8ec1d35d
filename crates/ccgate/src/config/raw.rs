//! The on-disk shape of the three config files, field for field as the original CCGate wrote them, plus
//! the fields CCGate added. Everything here is `Option` so that validation (in `load.rs`) can report what is
//! missing with a path; unknown fields are collected as warnings by the loader, never rejected.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize)]
pub struct ServerFile {
    pub server: Option<ServerSection>,
    pub admin: Option<AdminSection>,
    pub openai: Option<OpenAiSection>,
    pub storage: Option<StorageSection>,
    /// The original's log settings: level, the files in `data/logs/` and their rotation (`telemetry/logs.rs`).
    pub logging: Option<LoggingSection>,
    /// Accepted for compatibility; per-upstream `proxy` in upstreams.json is what CCGate uses.
    pub proxy: Option<Value>,
    /// Webhooks told about budgets, upstreams and the ledger (`alerts/`).
    pub alerts: Option<Vec<AlertEntry>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertEntry {
    pub url: Option<String>,
    /// `generic`, `slack`, `discord`, `telegram`, `feishu`, `dingtalk` or `wecom`.
    pub format: Option<String>,
    /// Event names; absent: every event.
    pub events: Option<Vec<String>>,
    /// Telegram only: the chat to post to.
    pub chat_id: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerSection {
    pub port: Option<u16>,
    pub host: Option<String>,
    /// Original field, milliseconds: how long an upstream may stay silent (the original's socket idle timeout);
    /// the default of every upstream's `timeouts.idle`. Never a cap on a whole stream.
    pub timeout: Option<u64>,
    pub timezone: Option<String>,
    pub cors: Option<CorsSection>,
    #[serde(rename = "bodyLimitMB")]
    pub body_limit_mb: Option<u64>,
    pub shutdown_grace_seconds: Option<u64>,
    pub client_disconnect_drain_seconds: Option<u64>,
    pub request_body_timeout_seconds: Option<u64>,
    pub trust_proxy_headers: Option<bool>,
    /// The original's HTTP keep-alive setting; accepted silently (CCGate keeps client connections alive).
    pub keep_alive: Option<Value>,
    /// Names this gateway in every ledger row it writes (default: `hostname:port`).
    pub instance_id: Option<String>,
    /// Bearer token that `GET /metrics` requires on the main listener.
    pub metrics_token: Option<String>,
    /// `IP:port` of a separate listener that serves only `/metrics`.
    pub metrics_listen: Option<String>,
}

/// `logging` in server.json, with the original's field names and values (`"100MB"`, winston's level names).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggingSection {
    pub level: Option<String>,
    /// Bytes as a number, or a string such as `"100MB"`.
    pub max_file_size: Option<Value>,
    pub max_files: Option<u32>,
    pub directory: Option<String>,
    pub enable_console: Option<bool>,
    pub bodies: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub struct StorageSection {
    /// `sqlite://path` or `postgres://…`; `CCGATE_DATABASE_URL` overrides it.
    pub url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CorsSection {
    pub origins: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminSection {
    pub enabled: Option<bool>,
    pub path: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_hash: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenAiSection {
    pub enabled: Option<bool>,
    pub models: Option<BTreeMap<String, String>>,
    pub default_model: Option<String>,
    pub expose_reasoning: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamsFile {
    pub upstreams: Option<Vec<UpstreamEntry>>,
    pub load_balancer: Option<LoadBalancerSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamEntry {
    pub id: Option<String>,
    pub name: Option<String>,
    pub url: Option<String>,
    pub key: Option<String>,
    pub description: Option<String>,
    pub weight: Option<f64>,
    pub enabled: Option<bool>,
    pub auth_header: Option<String>,
    pub priority: Option<i64>,
    pub models: Option<Vec<String>>,
    pub model_map: Option<BTreeMap<String, String>>,
    pub headers: Option<BTreeMap<String, String>>,
    pub max_concurrency: Option<u32>,
    pub timeouts: Option<TimeoutsSection>,
    pub proxy: Option<String>,
    /// PEM file of extra trusted root certificates for this upstream (relative to the config folder).
    pub ca_file: Option<String>,
    pub price_multiplier: Option<f64>,
    pub health_check: Option<HealthCheckSection>,
    pub trust: Option<TrustSection>,
    pub balance: Option<BalanceSection>,
}

/// `upstreams[].trust`: how CCGate judges this upstream (docs/trust.md).
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct TrustSection {
    /// The upstream the others are compared with (typically the official API).
    pub reference: Option<bool>,
    /// `"warn"` (default) or `"demote"`.
    pub on_suspect: Option<String>,
    pub canary: Option<CanarySection>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct CanarySection {
    pub interval_minutes: Option<f64>,
    pub model: Option<String>,
}

/// `upstreams[].balance`: where the reseller tells what is left on our key.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct BalanceSection {
    /// `"new-api"`: the OpenAI-legacy billing endpoints new-api/one-api answer.
    pub preset: Option<String>,
    pub path: Option<String>,
    pub json_pointer: Option<String>,
    /// `"usd"` (default), `"cents"` or `"quota"` (new-api quota units, 500000 per USD).
    pub unit: Option<String>,
    pub interval_minutes: Option<f64>,
    /// Alert when less than this many USD are left.
    pub low_usd: Option<f64>,
    /// Alert when less than this many days are left at the current burn rate (default 3).
    pub low_days: Option<f64>,
}

/// All in milliseconds.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct TimeoutsSection {
    pub connect: Option<u64>,
    pub first_byte: Option<u64>,
    pub idle: Option<u64>,
    pub total: Option<u64>,
}

#[derive(Debug, Default, Deserialize, Clone)]
pub struct HealthCheckSection {
    pub enabled: Option<bool>,
    /// Milliseconds.
    pub interval: Option<u64>,
    /// Milliseconds.
    pub timeout: Option<u64>,
    pub path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerSection {
    pub strategy: Option<String>,
    pub health_check_enabled: Option<bool>,
    pub failover_enabled: Option<bool>,
    pub max_attempts: Option<u32>,
    pub session_affinity: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub struct TenantsFile {
    pub tenants: Option<Vec<TenantEntry>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantEntry {
    pub id: Option<String>,
    pub name: Option<String>,
    pub key: Option<String>,
    pub enabled: Option<bool>,
    pub allowed_models: Option<Vec<String>>,
    pub limits: Option<LimitsSection>,
    /// RFC 3339; after it the key is refused with 401.
    pub expires_at: Option<String>,
    /// Written by the original's tenant tools; accepted silently, not used.
    pub created_at: Option<Value>,
    pub updated_at: Option<Value>,
}

#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitsSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily: Option<UsdLimit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weekly: Option<UsdLimit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monthly: Option<UsdLimit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<UsdLimit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolling: Option<Vec<RollingEntry>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clamp_output_tokens: Option<bool>,
    /// Model pattern → limits of their own (without `models`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<BTreeMap<String, LimitsSection>>,
}

#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsdLimit {
    #[serde(rename = "maxUSD")]
    pub max_usd: Option<f64>,
}

/// One `limits.rolling` window: `{"hours": 5, "maxUSD": 3.0}`.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
pub struct RollingEntry {
    /// Whole hours, 1 to 720; a number so that `0.5` is reported as a bad value, not a type error.
    pub hours: Option<f64>,
    #[serde(rename = "maxUSD")]
    pub max_usd: Option<f64>,
}
