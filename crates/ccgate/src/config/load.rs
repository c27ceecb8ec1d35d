//! Reading and validating the config folder.
//!
//! Pipeline per file: parse JSONC (`//` and `/* */` comments and trailing commas allowed, a key repeated inside
//! one object refused) → replace `${ENV}` in every string → map onto the raw types (unknown fields become
//! warnings) → validate into [`Config`]. Every error names the file
//! and the field path, e.g. `upstreams.json: upstreams[0].weight: expected a number, got "heavy"`.

use super::raw::{self, LimitsSection, TimeoutsSection};
use super::*;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

pub const SERVER_FILE: &str = "server.json";
pub const UPSTREAMS_FILE: &str = "upstreams.json";
pub const TENANTS_FILE: &str = "tenants.json";
pub const PRICING_FILE: &str = "pricing.json";

/// A config problem, located by file and field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(file: &str, path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_string(),
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a config folder, in file order (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn first(&self) -> Option<&ConfigError> {
        self.0.first()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A validated config plus the warnings met on the way (unknown fields, weak passwords).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
    /// Content of `pricing.json` (comments stripped, env substituted), if present.
    pub pricing_json: Option<String>,
}

/// Loads and validates `server.json`, `upstreams.json` and `tenants.json` (and `pricing.json` if present)
/// from `dir`. `server.json` may be absent (defaults apply); the other two are required.
pub fn load_dir(dir: &Path) -> Result<Loaded, ConfigErrors> {
    let env = |name: &str| std::env::var(name).ok();
    load_dir_with_env(dir, &env)
}

pub fn load_dir_with_env(
    dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigErrors> {
    let mut warnings = Vec::new();
    // Every problem is collected, so `config validate` can list them all: each file, section and list entry is
    // checked even when an earlier one failed.
    let mut problems = Vec::new();
    let mut read = |file: &str, required: bool| -> Option<Value> {
        match read_json(dir, file, env) {
            Ok(Some(v)) => Some(v),
            Ok(None) if required => {
                problems.push(ConfigError::new(
                    file,
                    "",
                    format!("file not found in {}", dir.display()),
                ));
                None
            }
            Ok(None) => None,
            Err(e) => {
                problems.push(e);
                None
            }
        }
    };
    let server_value = read(SERVER_FILE, false);
    let upstreams_value = read(UPSTREAMS_FILE, true);
    let tenants_value = read(TENANTS_FILE, true);
    let pricing_json = read(PRICING_FILE, false).map(|v| v.to_string());
    let server_raw: raw::ServerFile = server_value
        .and_then(|v| ok_or_note(map_raw(SERVER_FILE, v, &mut warnings), &mut problems))
        .unwrap_or_default();
    let upstreams_raw: Option<raw::UpstreamsFile> = upstreams_value
        .and_then(|v| ok_or_note(map_raw(UPSTREAMS_FILE, v, &mut warnings), &mut problems));
    let tenants_raw: Option<raw::TenantsFile> = tenants_value
        .and_then(|v| ok_or_note(map_raw(TENANTS_FILE, v, &mut warnings), &mut problems));

    // The original's `server.timeout` (ms) was an idle timeout on the upstream socket: it is the default of
    // every upstream's idle timer, and never a total cap (Claude Code turns stream for many minutes).
    let server_timeout_ms = server_raw.server.as_ref().and_then(|s| s.timeout);
    let server = ok_or_note(
        validate_server(server_raw.server.unwrap_or_default()),
        &mut problems,
    );
    let admin = ok_or_note(
        validate_admin(server_raw.admin.unwrap_or_default(), &mut warnings),
        &mut problems,
    );
    let openai = ok_or_note(
        validate_openai(server_raw.openai.unwrap_or_default()),
        &mut problems,
    );
    let storage = ok_or_note(
        validate_storage(server_raw.storage.unwrap_or_default()),
        &mut problems,
    );
    // Not part of the match below: a problem is noted, and a noted problem fails the load anyway.
    let logging = validate_logging(server_raw.logging.unwrap_or_default())
        .map_err(|e| problems.push(e))
        .unwrap_or_default();
    let alerts = ok_or_note(
        validate_alerts(server_raw.alerts.unwrap_or_default()),
        &mut problems,
    );
    let (load_balancer, upstreams) = match upstreams_raw {
        Some(u) => (
            ok_or_note(
                validate_load_balancer(u.load_balancer.unwrap_or_default()),
                &mut problems,
            ),
            validate_upstreams(
                u.upstreams,
                server_timeout_ms,
                dir,
                &mut warnings,
                &mut problems,
            )
            .map_err(|e| problems.push(e))
            .ok(),
        ),
        None => (None, None),
    };
    let tenants = tenants_raw.and_then(|t| {
        validate_tenants(t.tenants, &mut warnings, &mut problems)
            .map_err(|e| problems.push(e))
            .ok()
    });
    match (
        server,
        admin,
        openai,
        load_balancer,
        upstreams,
        tenants,
        storage,
        alerts,
    ) {
        (
            Some(server),
            Some(admin),
            Some(openai),
            Some(load_balancer),
            Some(upstreams),
            Some(tenants),
            Some(storage),
            Some(alerts),
        ) if problems.is_empty() => Ok(Loaded {
            config: Config {
                server,
                admin,
                openai,
                load_balancer,
                upstreams,
                tenants,
                storage,
                logging,
                alerts,
            },
            warnings,
            pricing_json,
        }),
        _ => Err(ConfigErrors(problems)),
    }
}

/// The value, or `None` with the error noted.
fn ok_or_note<T>(r: Result<T, ConfigError>, problems: &mut Vec<ConfigError>) -> Option<T> {
    r.map_err(|e| problems.push(e)).ok()
}

/// Reads one file: `Ok(None)` if it does not exist.
fn read_json(
    dir: &Path,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Value>, ConfigError> {
    let path = dir.join(file);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ConfigError::new(
                file,
                "",
                format!("cannot read {}: {e}", path.display()),
            ))
        }
    };
    let mut value = parse_jsonc(file, &text)?;
    substitute_env(&mut value, &mut String::new(), file, env)?;
    Ok(Some(value))
}

/// Parses a config file's text: JSON plus comments and trailing commas (people copy snippets that have them),
/// nothing looser. A key given twice in one object is an error: which of the two was meant cannot be known.
pub fn parse_jsonc(file: &str, text: &str) -> Result<Value, ConfigError> {
    use jsonc_parser::{parse_to_ast, CollectOptions, ParseOptions};
    let options = ParseOptions {
        allow_comments: true,
        allow_trailing_commas: true,
        allow_loose_object_property_names: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    };
    let parsed = parse_to_ast(text, &CollectOptions::default(), &options).map_err(|e| {
        ConfigError::new(
            file,
            "",
            format!(
                "invalid JSON at line {} column {}: {}",
                e.line_display(),
                e.column_display(),
                e.kind()
            ),
        )
    })?;
    let Some(root) = parsed.value else {
        return Err(ConfigError::new(file, "", "the file is empty"));
    };
    ast_to_value(file, root, &mut String::new())
}

/// The AST as a `serde_json::Value`, refusing repeated keys (named by their field path).
fn ast_to_value(
    file: &str,
    node: jsonc_parser::ast::Value<'_>,
    path: &mut String,
) -> Result<Value, ConfigError> {
    use jsonc_parser::ast::Value as Ast;
    Ok(match node {
        Ast::NullKeyword(_) => Value::Null,
        Ast::BooleanLit(b) => Value::Bool(b.value),
        Ast::StringLit(s) => Value::String(s.value.into_owned()),
        Ast::NumberLit(n) => Value::Number(serde_json::from_str(n.value).map_err(|_| {
            ConfigError::new(file, path.clone(), format!("invalid number {}", n.value))
        })?),
        Ast::Array(a) => {
            let mut items = Vec::with_capacity(a.elements.len());
            for (i, element) in a.elements.into_iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                items.push(ast_to_value(file, element, path)?);
                path.truncate(len);
            }
            Value::Array(items)
        }
        Ast::Object(o) => {
            let mut map = serde_json::Map::new();
            for prop in o.properties {
                let name = prop.name.into_string();
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&name);
                if map.contains_key(&name) {
                    return Err(ConfigError::new(
                        file,
                        path.clone(),
                        "given twice in the same object; keep one",
                    ));
                }
                let value = ast_to_value(file, prop.value, path)?;
                path.truncate(len);
                map.insert(name, value);
            }
            Value::Object(map)
        }
    })
}

/// Replaces `${NAME}` (and `${NAME:-default}`) in every string so that keys need not sit in files.
fn substitute_env(
    v: &mut Value,
    path: &mut String,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match v {
        Value::String(s) if s.contains("${") => {
            *s = expand(s, env).map_err(|e| ConfigError::new(file, path.clone(), e.to_string()))?;
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                substitute_env(item, path, file, env)?;
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                substitute_env(item, path, file, env)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Why a `${VAR}` reference in a config string could not be expanded.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("unterminated ${{…}} in {0:?}")]
    Unterminated(String),
    #[error("invalid environment variable name {0:?}")]
    BadName(String),
    #[error("environment variable {0} is not set")]
    Unset(String),
}

fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| ExpandError::Unterminated(s.to_owned()))?;
        let spec = &after[..end];
        let (name, default) = match spec.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (spec, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ExpandError::BadName(name.to_owned()));
        }
        match (env(name), default) {
            (Some(val), _) => out.push_str(&val),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(ExpandError::Unset(name.to_owned())),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Maps a JSON value onto a raw file type, naming the field path of a type error and collecting unknown
/// fields as warnings.
fn map_raw<T: DeserializeOwned>(
    file: &str,
    value: Value,
    warnings: &mut Vec<String>,
) -> Result<T, ConfigError> {
    let mut unknown = Vec::new();
    let mut on_unknown = |p: serde_ignored::Path<'_>| unknown.push(field_path(&p));
    let de = serde_ignored::Deserializer::new(value, &mut on_unknown);
    let result: Result<T, _> = serde_path_to_error::deserialize(de);
    for p in unknown {
        warnings.push(format!("{file}: {p}: unknown field, ignored"));
    }
    result.map_err(|e| {
        let path = e.path().to_string();
        ConfigError::new(
            file,
            if path == "." { String::new() } else { path },
            humanize_serde(&e.into_inner().to_string()),
        )
    })
}

/// `upstreams[0].extra`, in the same notation as error paths.
fn field_path(p: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match p {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => {
            let base = field_path(parent);
            if base.is_empty() {
                key.clone()
            } else {
                format!("{base}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

/// Turns serde's "invalid type: string \"heavy\", expected f64" into "expected a number, got \"heavy\"".
fn humanize_serde(msg: &str) -> String {
    let (kind, rest) = if let Some(r) = msg.strip_prefix("invalid type: ") {
        ("type", r)
    } else if let Some(r) = msg.strip_prefix("invalid value: ") {
        ("value", r)
    } else {
        return msg.to_string();
    };
    let Some((got, expected)) = rest.rsplit_once(", expected ") else {
        return msg.to_string();
    };
    let expected = match expected {
        "f64" | "f32" | "i64" | "u64" | "i32" | "u32" => "a number".to_string(),
        "u16" => "a number from 0 to 65535".to_string(),
        "a boolean" | "bool" => "true or false".to_string(),
        "a string" => "a string".to_string(),
        "a sequence" => "an array".to_string(),
        e if e.starts_with("struct ") || e == "a map" => "an object".to_string(),
        e => e.to_string(),
    };
    let got = if let Some(s) = got.strip_prefix("string ") {
        s.to_string()
    } else if let Some(n) = got
        .strip_prefix("integer ")
        .or_else(|| got.strip_prefix("floating point "))
    {
        n.trim_matches('`').to_string()
    } else if let Some(b) = got.strip_prefix("boolean ") {
        b.trim_matches('`').to_string()
    } else {
        match got {
            "map" => "an object".to_string(),
            "sequence" => "an array".to_string(),
            "unit" | "null" => "null".to_string(),
            g => g.to_string(),
        }
    };
    let _ = kind;
    format!("expected {expected}, got {got}")
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn validate_server(s: raw::ServerSection) -> Result<ServerConfig, ConfigError> {
    let f = SERVER_FILE;
    let timezone = match s.timezone.as_deref() {
        None | Some("") => chrono_tz::UTC,
        Some(name) => name.parse::<chrono_tz::Tz>().map_err(|_| {
            ConfigError::new(
                f,
                "server.timezone",
                format!("unknown IANA time zone {name:?} (e.g. \"Europe/Berlin\")"),
            )
        })?,
    };
    if s.timeout == Some(0) {
        return Err(ConfigError::new(
            f,
            "server.timeout",
            "must be greater than 0 (milliseconds)",
        ));
    }
    let body_limit_mb = s.body_limit_mb.unwrap_or(32);
    if body_limit_mb == 0 || body_limit_mb > 1024 {
        return Err(ConfigError::new(
            f,
            "server.bodyLimitMB",
            "must be between 1 and 1024",
        ));
    }
    let instance_id = match s.instance_id {
        None => None,
        Some(id) if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) => {
            return Err(ConfigError::new(
                f,
                "server.instanceId",
                "must be 1 to 128 characters, without control characters",
            ))
        }
        Some(id) => Some(id),
    };
    let metrics_token = match s.metrics_token {
        None => None,
        Some(t) if t.is_empty() => None,
        Some(t) if t.len() < 16 || t.len() > 512 || !t.bytes().all(|b| b.is_ascii_graphic()) => {
            return Err(ConfigError::new(
                f,
                "server.metricsToken",
                "must be 16 to 512 printable ASCII characters without spaces (it is sent as a Bearer token)",
            ))
        }
        Some(t) => Some(t),
    };
    let metrics_listen = match s.metrics_listen.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(addr) => Some(addr.parse::<std::net::SocketAddr>().map_err(|_| {
            ConfigError::new(
                f,
                "server.metricsListen",
                format!("expected IP:port, e.g. \"127.0.0.1:9464\", got {addr:?}"),
            )
        })?),
    };
    Ok(ServerConfig {
        metrics_token,
        metrics_listen,
        instance_id,
        host: s
            .host
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "0.0.0.0".into()),
        port: s.port.unwrap_or(3000),
        timezone,
        cors_origins: s
            .cors
            .and_then(|c| c.origins)
            .unwrap_or_else(|| vec!["*".into()]),
        body_limit_bytes: (body_limit_mb * 1024 * 1024) as usize,
        shutdown_grace: Duration::from_secs(s.shutdown_grace_seconds.unwrap_or(30)),
        disconnect_drain: Duration::from_secs(s.client_disconnect_drain_seconds.unwrap_or(120)),
        body_read_timeout: Duration::from_secs(s.request_body_timeout_seconds.unwrap_or(60).max(1)),
        trust_proxy_headers: s.trust_proxy_headers.unwrap_or(false),
    })
}

/// `logging`: the original's values (`"100MB"`, winston's level names) as well as plain numbers.
fn validate_logging(l: raw::LoggingSection) -> Result<LoggingConfig, ConfigError> {
    let f = SERVER_FILE;
    let defaults = LoggingConfig::default();
    let level = match l.level.as_deref().map(str::trim) {
        None | Some("") => defaults.level,
        Some(name) => log_level(name).ok_or_else(|| {
            ConfigError::new(
                f,
                "logging.level",
                format!("unknown level {name:?} (error, warn, info, http, verbose, debug, silly or trace)"),
            )
        })?,
    };
    let size_error = |got: &str| {
        ConfigError::new(
            f,
            "logging.maxFileSize",
            format!(
                "expected a size such as \"100MB\" or a number of bytes (at least 1KB), got {got}"
            ),
        )
    };
    let max_file_size = match &l.max_file_size {
        None | Some(Value::Null) => defaults.max_file_size,
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| size_error(&n.to_string()))?,
        Some(Value::String(s)) => s
            .trim()
            .parse::<bytesize::ByteSize>()
            .map_err(|_| size_error(&format!("{s:?}")))?
            .as_u64(),
        Some(other) => return Err(size_error(&other.to_string())),
    };
    if max_file_size < 1024 {
        return Err(size_error(&max_file_size.to_string()));
    }
    let max_files = l.max_files.unwrap_or(defaults.max_files);
    if !(1..=1000).contains(&max_files) {
        return Err(ConfigError::new(
            f,
            "logging.maxFiles",
            "must be between 1 and 1000",
        ));
    }
    Ok(LoggingConfig {
        level,
        max_file_size,
        max_files,
        directory: l
            .directory
            .filter(|d| !d.trim().is_empty())
            .map(std::path::PathBuf::from),
        enable_console: l.enable_console.unwrap_or(defaults.enable_console),
        bodies: l.bodies.unwrap_or(false),
    })
}

/// A level by the original's (winston's) names or tracing's: `http` and `verbose` sit between info and debug,
/// so they are debug here; `silly` is trace.
fn log_level(name: &str) -> Option<tracing::Level> {
    Some(match name.to_ascii_lowercase().as_str() {
        "error" => tracing::Level::ERROR,
        "warn" | "warning" => tracing::Level::WARN,
        "info" => tracing::Level::INFO,
        "http" | "verbose" | "debug" => tracing::Level::DEBUG,
        "silly" | "trace" => tracing::Level::TRACE,
        _ => return None,
    })
}

fn validate_alerts(
    entries: Vec<raw::AlertEntry>,
) -> Result<Vec<crate::alerts::AlertHook>, ConfigError> {
    use crate::alerts::{AlertFormat, AlertHook, EventKind};
    let mut hooks = Vec::with_capacity(entries.len());
    for (i, a) in entries.into_iter().enumerate() {
        let p = format!("alerts[{i}]");
        let err =
            |field: &str, msg: String| ConfigError::new(SERVER_FILE, format!("{p}.{field}"), msg);
        let url = a.url.unwrap_or_default();
        // The URL holds the service's token: never repeat it in the message.
        match reqwest::Url::parse(&url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
            _ => {
                return Err(err(
                    "url",
                    "expected the webhook's http:// or https:// URL".into(),
                ))
            }
        }
        let format = match a.format.as_deref() {
            None => AlertFormat::Generic,
            Some(f) => AlertFormat::parse(f).ok_or_else(|| {
                err(
                    "format",
                    format!(
                        "unknown format {f:?}; expected one of {}",
                        AlertFormat::NAMES.join(", ")
                    ),
                )
            })?,
        };
        let events = match a.events {
            None => None,
            Some(names) => {
                let mut kinds = Vec::new();
                for (j, n) in names.iter().enumerate() {
                    match EventKind::parse(n).filter(|k| *k != EventKind::Test) {
                        Some(k) => kinds.push(k),
                        None => {
                            let known: Vec<&str> = EventKind::ALL
                                .iter()
                                .filter(|k| **k != EventKind::Test)
                                .map(|k| k.as_str())
                                .collect();
                            return Err(err(
                                &format!("events[{j}]"),
                                format!(
                                    "unknown event {n:?}; expected one of {}",
                                    known.join(", ")
                                ),
                            ));
                        }
                    }
                }
                Some(kinds)
            }
        };
        // A chat id is a number or an @channel name; JSON numbers are accepted as written.
        let chat_id = match a.chat_id {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(_) => {
                return Err(err(
                    "chatId",
                    "expected the Telegram chat id, a number or \"@channelname\"".into(),
                ))
            }
        };
        if format == AlertFormat::Telegram && chat_id.is_none() {
            return Err(err(
                "chatId",
                "required for format telegram (the url is https://api.telegram.org/bot<token>/sendMessage)".into(),
            ));
        }
        hooks.push(AlertHook {
            url,
            format,
            events,
            chat_id,
        });
    }
    Ok(hooks)
}

fn validate_storage(s: raw::StorageSection) -> Result<Option<StorageUrl>, ConfigError> {
    match s.url.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(url) => StorageUrl::parse(url)
            .map(Some)
            .map_err(|e| ConfigError::new(SERVER_FILE, "storage.url", e.to_string())),
    }
}

/// Only `server.json`'s `storage.url`, for the commands that need the ledger but not the rest of the config
/// (`ccgate clean`). `Ok(None)` when the file or the field is absent.
pub fn load_storage(dir: &Path) -> Result<Option<StorageUrl>, ConfigErrors> {
    let env = |name: &str| std::env::var(name).ok();
    let one = |e: ConfigError| ConfigErrors(vec![e]);
    let Some(value) = read_json(dir, SERVER_FILE, &env).map_err(one)? else {
        return Ok(None);
    };
    let raw: raw::ServerFile = map_raw(SERVER_FILE, value, &mut Vec::new()).map_err(one)?;
    validate_storage(raw.storage.unwrap_or_default()).map_err(one)
}

fn validate_admin(
    a: raw::AdminSection,
    warnings: &mut Vec<String>,
) -> Result<AdminConfig, ConfigError> {
    let path = a.path.unwrap_or_else(|| "/admin".into());
    if !path.starts_with('/') {
        return Err(ConfigError::new(
            SERVER_FILE,
            "admin.path",
            format!("must start with '/', got {path:?}"),
        ));
    }
    let password = a.password.unwrap_or_default();
    let enabled = a.enabled.unwrap_or(true);
    let password_hash = match a.password_hash.as_deref() {
        None => None,
        Some(phc) => {
            if !password.is_empty() {
                return Err(ConfigError::new(
                    SERVER_FILE,
                    "admin.passwordHash",
                    "set admin.password or admin.passwordHash, not both (remove the plaintext password)",
                ));
            }
            Some(crate::config::PasswordHash::parse(phc).map_err(|e| {
                ConfigError::new(
                    SERVER_FILE,
                    "admin.passwordHash",
                    format!("not an argon2 PHC string ({e}); make one with `ccgate hash-password`"),
                )
            })?)
        }
    };
    match (
        enabled && password_hash.is_none(),
        defaults::admin_password_problem(&password),
    ) {
        (true, Some(defaults::WeakPassword::Missing)) => warnings.push(format!(
            "{SERVER_FILE}: admin.password: not set; admin login is disabled until it is"
        )),
        (true, Some(problem)) => warnings.push(format!(
            "{SERVER_FILE}: {}; admin login (dashboard, /usage, /health details) is refused until you set your own password in {SERVER_FILE}",
            problem.explain()
        )),
        _ => {}
    }
    Ok(AdminConfig {
        enabled,
        path,
        username: a.username.unwrap_or_else(|| "admin".into()),
        password,
        password_hash,
    })
}

fn validate_openai(o: raw::OpenAiSection) -> Result<OpenAiConfig, ConfigError> {
    let default_model = o
        .default_model
        .unwrap_or_else(|| "claude-sonnet-4-6".into());
    if default_model.trim().is_empty() {
        return Err(ConfigError::new(
            SERVER_FILE,
            "openai.defaultModel",
            "must not be empty",
        ));
    }
    Ok(OpenAiConfig {
        enabled: o.enabled.unwrap_or(true),
        models: o.models.unwrap_or_default(),
        default_model,
        expose_reasoning: o.expose_reasoning.unwrap_or(true),
    })
}

fn validate_load_balancer(lb: raw::LoadBalancerSection) -> Result<LoadBalancerConfig, ConfigError> {
    let strategy = match lb.strategy.as_deref() {
        None => Strategy::WeightedRoundRobin,
        Some(s) => Strategy::parse(s).ok_or_else(|| {
            ConfigError::new(
                UPSTREAMS_FILE,
                "loadBalancer.strategy",
                format!(
                    "unknown strategy {s:?}; expected one of {}",
                    Strategy::NAMES.join(", ")
                ),
            )
        })?,
    };
    let max_attempts = lb.max_attempts.unwrap_or(3);
    if max_attempts == 0 {
        return Err(ConfigError::new(
            UPSTREAMS_FILE,
            "loadBalancer.maxAttempts",
            "must be at least 1",
        ));
    }
    Ok(LoadBalancerConfig {
        strategy,
        health_check_enabled: lb.health_check_enabled.unwrap_or(true),
        failover_enabled: lb.failover_enabled.unwrap_or(true),
        max_attempts,
        session_affinity: lb.session_affinity.unwrap_or(true),
    })
}

fn validate_timeouts(
    t: Option<TimeoutsSection>,
    default_idle_ms: Option<u64>,
    path: &str,
) -> Result<Timeouts, ConfigError> {
    let t = t.unwrap_or_default();
    let out = Timeouts {
        connect: ms(t.connect.unwrap_or(15_000)),
        first_byte: ms(t.first_byte.unwrap_or(120_000)),
        idle: ms(t.idle.or(default_idle_ms).unwrap_or(300_000)),
        total: ms(t.total.unwrap_or(1_800_000)),
    };
    for (name, d) in [
        ("connect", out.connect),
        ("firstByte", out.first_byte),
        ("idle", out.idle),
        ("total", out.total),
    ] {
        if d.is_zero() {
            return Err(ConfigError::new(
                UPSTREAMS_FILE,
                format!("{path}.timeouts.{name}"),
                "must be greater than 0 (milliseconds)",
            ));
        }
    }
    Ok(out)
}

fn validate_upstreams(
    list: Option<Vec<raw::UpstreamEntry>>,
    default_idle_ms: Option<u64>,
    config_dir: &Path,
    warnings: &mut Vec<String>,
    problems: &mut Vec<ConfigError>,
) -> Result<Vec<UpstreamConfig>, ConfigError> {
    let f = UPSTREAMS_FILE;
    let list = list.ok_or_else(|| {
        ConfigError::new(f, "upstreams", "missing; expected an array of upstreams")
    })?;
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(list.len());
    for (i, u) in list.into_iter().enumerate() {
        // One entry at a time: a problem in one is reported and the others are still checked.
        let entry = (|| -> Result<UpstreamConfig, ConfigError> {
            let p = format!("upstreams[{i}]");
            let id =
                u.id.filter(|s| !s.trim().is_empty())
                    .ok_or_else(|| ConfigError::new(f, format!("{p}.id"), "missing"))?;
            if let Some(prev) = seen.insert(id.clone(), i) {
                return Err(ConfigError::new(
                    f,
                    format!("{p}.id"),
                    format!("duplicate id {id:?} (also upstreams[{prev}].id)"),
                ));
            }
            let url_text = u
                .url
                .ok_or_else(|| ConfigError::new(f, format!("{p}.url"), "missing"))?;
            let parsed = reqwest::Url::parse(&url_text).map_err(|e| {
                ConfigError::new(
                    f,
                    format!("{p}.url"),
                    format!("invalid URL {url_text:?}: {e}"),
                )
            })?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(ConfigError::new(
                    f,
                    format!("{p}.url"),
                    format!("expected an http:// or https:// URL, got {url_text:?}"),
                ));
            }
            if parsed.query().is_some() {
                return Err(ConfigError::new(
                    f,
                    format!("{p}.url"),
                    "must not contain a query string",
                ));
            }
            let url = url_text.trim_end_matches('/').to_string();
            let key = u.key.unwrap_or_default();
            if key.is_empty() {
                warnings.push(format!(
                    "{f}: {p}.key: empty; requests to this upstream carry no credential"
                ));
            }
            let weight = u.weight.unwrap_or(1.0);
            if !weight.is_finite() || weight < 0.0 || weight.fract() != 0.0 || weight > 1_000_000.0
            {
                return Err(ConfigError::new(
                    f,
                    format!("{p}.weight"),
                    format!("expected a whole number from 0 to 1000000, got {weight}"),
                ));
            }
            let auth_header = match u.auth_header.as_deref() {
                None | Some("x-api-key") => AuthHeader::XApiKey,
                Some("bearer") | Some("Bearer") | Some("authorization") => AuthHeader::Bearer,
                Some("both") => AuthHeader::Both,
                Some(other) => {
                    return Err(ConfigError::new(
                        f,
                        format!("{p}.authHeader"),
                        format!("expected \"x-api-key\", \"bearer\" or \"both\", got {other:?}"),
                    ))
                }
            };
            let mut headers = Vec::new();
            for (name, value) in u.headers.unwrap_or_default() {
                let hn = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    ConfigError::new(f, format!("{p}.headers.{name}"), "invalid header name")
                })?;
                let hv = http::HeaderValue::from_str(&value).map_err(|_| {
                    ConfigError::new(f, format!("{p}.headers.{name}"), "invalid header value")
                })?;
                headers.push((hn, hv));
            }
            if let Some(proxy) = &u.proxy {
                let ok = reqwest::Url::parse(proxy)
                    .map(|pu| matches!(pu.scheme(), "http" | "https" | "socks5" | "socks5h"))
                    .unwrap_or(false);
                if !ok {
                    return Err(ConfigError::new(
                        f,
                        format!("{p}.proxy"),
                        format!("expected an http://, https:// or socks5:// URL, got {proxy:?}"),
                    ));
                }
            }
            let ca_file = match &u.ca_file {
                Some(path) => Some(
                    read_ca_file(config_dir, path)
                        .map_err(|e| ConfigError::new(f, format!("{p}.caFile"), e.to_string()))?,
                ),
                None => None,
            };
            let mult = u.price_multiplier.unwrap_or(1.0);
            if !mult.is_finite() || !(0.0..=100.0).contains(&mult) {
                return Err(ConfigError::new(
                    f,
                    format!("{p}.priceMultiplier"),
                    format!("expected a number from 0 to 100, got {mult}"),
                ));
            }
            if u.max_concurrency == Some(0) {
                return Err(ConfigError::new(
                    f,
                    format!("{p}.maxConcurrency"),
                    "must be at least 1 (omit it for no limit)",
                ));
            }
            let hc = u.health_check.unwrap_or_default();
            let hc_path = hc.path.unwrap_or_else(|| "/v1/models".into());
            if !hc_path.starts_with('/') {
                return Err(ConfigError::new(
                    f,
                    format!("{p}.healthCheck.path"),
                    format!("must start with '/', got {hc_path:?}"),
                ));
            }
            Ok(UpstreamConfig {
                name: u.name.unwrap_or_else(|| id.clone()),
                id,
                url,
                key,
                description: u.description.unwrap_or_default(),
                weight: weight as u32,
                enabled: u.enabled.unwrap_or(true),
                auth_header,
                priority: u.priority.unwrap_or(0),
                models: u.models.unwrap_or_default(),
                model_map: u.model_map.unwrap_or_default(),
                headers,
                max_concurrency: u.max_concurrency,
                timeouts: validate_timeouts(u.timeouts, default_idle_ms, &p)?,
                proxy: u.proxy,
                ca_file,
                price_multiplier_milli: (mult * 1000.0).round() as u32,
                health_check: HealthCheckConfig {
                    enabled: hc.enabled.unwrap_or(true),
                    // The checker wakes every 250 ms; a shorter interval would only be rounded up to that.
                    interval: ms(hc.interval.unwrap_or(30_000).max(250)),
                    timeout: ms(hc.timeout.unwrap_or(5_000).max(100)),
                    path: hc_path,
                },
                trust: validate_trust(u.trust, &p)?,
                balance: u.balance.map(|b| validate_balance(b, &p)).transpose()?,
            })
        })();
        match entry {
            Ok(v) => out.push(v),
            Err(e) => problems.push(e),
        }
    }
    Ok(out)
}

/// `upstreams[i].trust`.
fn validate_trust(t: Option<raw::TrustSection>, p: &str) -> Result<TrustConfig, ConfigError> {
    let f = UPSTREAMS_FILE;
    let Some(t) = t else {
        return Ok(TrustConfig::default());
    };
    let on_suspect = match t.on_suspect.as_deref() {
        None | Some("warn") => OnSuspect::Warn,
        Some("demote") => OnSuspect::Demote,
        Some(other) => {
            return Err(ConfigError::new(
                f,
                format!("{p}.trust.onSuspect"),
                format!("expected \"warn\" or \"demote\", got {other:?}"),
            ))
        }
    };
    let canary = match t.canary {
        None => None,
        Some(c) => {
            let model = c
                .model
                .filter(|m| !m.trim().is_empty())
                .ok_or_else(|| ConfigError::new(f, format!("{p}.trust.canary.model"), "missing"))?;
            Some(CanaryConfig {
                interval: minutes(c.interval_minutes, 60.0, &format!("{p}.trust.canary"))?,
                model,
            })
        }
    };
    Ok(TrustConfig {
        reference: t.reference.unwrap_or(false),
        on_suspect,
        canary,
    })
}

/// `upstreams[i].balance`.
fn validate_balance(b: raw::BalanceSection, p: &str) -> Result<BalanceConfig, ConfigError> {
    let f = UPSTREAMS_FILE;
    let at = |field: &str| format!("{p}.balance.{field}");
    let source = match (b.preset.as_deref(), b.path, b.json_pointer) {
        (Some("new-api"), None, None) => BalanceSource::NewApi,
        (Some("new-api"), _, _) => {
            return Err(ConfigError::new(
                f,
                at("preset"),
                "the new-api preset takes no path or jsonPointer",
            ))
        }
        (Some(other), _, _) => {
            return Err(ConfigError::new(
                f,
                at("preset"),
                format!("expected \"new-api\", got {other:?}"),
            ))
        }
        (None, Some(path), Some(json_pointer)) => {
            if !path.starts_with('/') {
                return Err(ConfigError::new(
                    f,
                    at("path"),
                    format!("must start with '/', got {path:?}"),
                ));
            }
            if !json_pointer.is_empty() && !json_pointer.starts_with('/') {
                return Err(ConfigError::new(
                    f,
                    at("jsonPointer"),
                    format!(
                        "expected a JSON pointer such as \"/data/balance\", got {json_pointer:?}"
                    ),
                ));
            }
            let unit = match b.unit.as_deref() {
                None | Some("usd") => BalanceUnit::Usd,
                Some("cents") => BalanceUnit::Cents,
                Some("quota") => BalanceUnit::Quota,
                Some(other) => {
                    return Err(ConfigError::new(
                        f,
                        at("unit"),
                        format!("expected \"usd\", \"cents\" or \"quota\", got {other:?}"),
                    ))
                }
            };
            BalanceSource::Custom {
                path,
                json_pointer,
                unit,
            }
        }
        (None, _, _) => {
            return Err(ConfigError::new(
                f,
                format!("{p}.balance"),
                "expected {\"preset\": \"new-api\"} or both \"path\" and \"jsonPointer\"",
            ))
        }
    };
    let non_negative = |v: Option<f64>, field: &str| -> Result<Option<f64>, ConfigError> {
        match v {
            Some(x) if !x.is_finite() || x < 0.0 => Err(ConfigError::new(
                f,
                at(field),
                format!("expected a number of at least 0, got {x}"),
            )),
            v => Ok(v),
        }
    };
    Ok(BalanceConfig {
        source,
        interval: minutes(b.interval_minutes, 60.0, &format!("{p}.balance"))?,
        low_usd: non_negative(b.low_usd, "lowUsd")?,
        low_days: non_negative(b.low_days, "lowDays")?.unwrap_or(3.0),
    })
}

/// An `intervalMinutes` (fractions allowed, at least 0.01: tests probe every second or so).
fn minutes(v: Option<f64>, default: f64, p: &str) -> Result<Duration, ConfigError> {
    let m = v.unwrap_or(default);
    if !m.is_finite() || !(0.01..=10_080.0).contains(&m) {
        return Err(ConfigError::new(
            UPSTREAMS_FILE,
            format!("{p}.intervalMinutes"),
            format!("expected a number of minutes from 0.01 to 10080, got {m}"),
        ));
    }
    Ok(Duration::from_secs_f64(m * 60.0))
}

/// Reads a `caFile` (a relative path is taken from the config folder) and checks that it holds at least one
/// PEM certificate; the message names the file.
/// Why an upstream's `caFile` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)", path.display())]
    Empty { path: std::path::PathBuf },
    #[error("{} is not a valid PEM certificate file: {source}", path.display())]
    Invalid {
        path: std::path::PathBuf,
        source: reqwest::Error,
    },
}

fn read_ca_file(config_dir: &Path, path: &str) -> Result<CaFile, CaFileError> {
    let full = config_dir.join(path);
    let pem = match std::fs::read(&full) {
        Ok(pem) => pem,
        Err(source) => return Err(CaFileError::Read { path: full, source }),
    };
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certs) if !certs.is_empty() => Ok(CaFile {
            path: full,
            pem: pem.into(),
        }),
        Ok(_) => Err(CaFileError::Empty { path: full }),
        Err(source) => Err(CaFileError::Invalid { path: full, source }),
    }
}

fn usd_to_nano(v: f64) -> i64 {
    (v * 1e9).round() as i64
}

pub(crate) fn validate_limits(l: Option<LimitsSection>, p: &str) -> Result<Limits, ConfigError> {
    match l {
        None => Ok(Limits::default()),
        Some(l) => limits_at(l, &format!("{p}.limits"), true),
    }
}

/// `at`: the field path of this limits object; `top`: the tenant's own (a per-model entry has no `models`).
fn limits_at(l: LimitsSection, at: &str, top: bool) -> Result<Limits, ConfigError> {
    let bad = |field: String, message: String| ConfigError::new(TENANTS_FILE, field, message);
    let amount = |v: Option<f64>, field: String| -> Result<Option<i64>, ConfigError> {
        match v {
            None => Ok(None),
            Some(v) if v.is_finite() && v >= 0.0 => Ok(Some(usd_to_nano(v))),
            Some(v) => Err(bad(field, format!("expected a number ≥ 0, got {v}"))),
        }
    };
    let usd = |lim: Option<raw::UsdLimit>, name: &str| {
        amount(lim.and_then(|x| x.max_usd), format!("{at}.{name}.maxUSD"))
    };
    let mut rolling = Vec::new();
    for (i, r) in l.rolling.unwrap_or_default().into_iter().enumerate() {
        let field = format!("{at}.rolling[{i}]");
        let max_hours = RollingLimit::MAX_HOURS;
        let hours = match r.hours {
            Some(h) if h.fract() == 0.0 && (1.0..=f64::from(max_hours)).contains(&h) => h as u32,
            Some(h) => {
                return Err(bad(
                    format!("{field}.hours"),
                    format!("expected whole hours from 1 to {max_hours}, got {h}"),
                ))
            }
            None => return Err(bad(format!("{field}.hours"), "missing".into())),
        };
        let max_nanousd = amount(r.max_usd, format!("{field}.maxUSD"))?
            .ok_or_else(|| bad(format!("{field}.maxUSD"), "missing".into()))?;
        if rolling.iter().any(|x: &RollingLimit| x.hours == hours) {
            return Err(bad(
                format!("{field}.hours"),
                format!("a second {hours} h window; keep one per length"),
            ));
        }
        rolling.push(RollingLimit { hours, max_nanousd });
    }
    let mut models = Vec::new();
    for (pattern, entry) in l.models.unwrap_or_default() {
        let field = format!("{at}.models[{pattern:?}]");
        if !top {
            return Err(bad(
                format!("{at}.models"),
                "per-model limits cannot have models of their own".into(),
            ));
        }
        if let Some(why) = model_pattern_problem(&pattern) {
            return Err(bad(field, why.into()));
        }
        models.push(ModelLimits {
            limits: limits_at(entry, &field, false)?,
            pattern,
        });
    }
    // New fields only: `rpm` and `maxConcurrent` of 0 keep the meaning they always had.
    for (name, v) in [("tpm", l.tpm), ("maxOutputTokens", l.max_output_tokens)] {
        if v == Some(0) {
            return Err(bad(
                format!("{at}.{name}"),
                "expected a number ≥ 1 (leave it out for no limit)".into(),
            ));
        }
    }
    Ok(Limits {
        daily_nanousd: usd(l.daily, "daily")?,
        weekly_nanousd: usd(l.weekly, "weekly")?,
        monthly_nanousd: usd(l.monthly, "monthly")?,
        total_nanousd: usd(l.total, "total")?,
        rolling,
        rpm: l.rpm,
        tpm: l.tpm,
        max_concurrent: l.max_concurrent,
        max_output_tokens: l.max_output_tokens,
        clamp_output_tokens: l.clamp_output_tokens.unwrap_or(false),
        models,
    })
}

/// Why a `limits.models` pattern cannot be used: model ids are printable ASCII without spaces (as `model` in a
/// request must be), so a pattern with anything else could never match.
fn model_pattern_problem(pattern: &str) -> Option<&'static str> {
    if pattern.trim().is_empty() {
        Some("an empty model pattern")
    } else if !pattern.bytes().all(|b| b.is_ascii_graphic()) {
        Some("a model pattern is printable ASCII without spaces, `*` as the wildcard")
    } else {
        None
    }
}

fn validate_tenants(
    list: Option<Vec<raw::TenantEntry>>,
    warnings: &mut Vec<String>,
    problems: &mut Vec<ConfigError>,
) -> Result<Vec<TenantConfig>, ConfigError> {
    let f = TENANTS_FILE;
    let list = list
        .ok_or_else(|| ConfigError::new(f, "tenants", "missing; expected an array of tenants"))?;
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut keys: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(list.len());
    for (i, t) in list.into_iter().enumerate() {
        // One entry at a time: a problem in one is reported and the others are still checked.
        let entry = (|| -> Result<TenantConfig, ConfigError> {
            let p = format!("tenants[{i}]");
            let id =
                t.id.filter(|s| !s.trim().is_empty())
                    .ok_or_else(|| ConfigError::new(f, format!("{p}.id"), "missing"))?;
            if let Some(prev) = ids.insert(id.clone(), i) {
                return Err(ConfigError::new(
                    f,
                    format!("{p}.id"),
                    format!("duplicate id {id:?} (also tenants[{prev}].id)"),
                ));
            }
            let key = t
                .key
                .filter(|k| !k.is_empty())
                .ok_or_else(|| ConfigError::new(f, format!("{p}.key"), "missing"))?;
            if let Some(prev) = keys.insert(key.clone(), i) {
                // Never echo the key itself: config errors end up in logs.
                return Err(ConfigError::new(
                    f,
                    format!("{p}.key"),
                    format!("duplicate tenant key (also used by tenants[{prev}])"),
                ));
            }
            // Never echo the key: a warning about it should not leak it into logs.
            if defaults::is_example_tenant_key(&key) {
                warnings.push(format!(
                    "{f}: {p}.key: an example value from the documentation; anyone who read it can use this tenant; set a long random key"
                ));
            } else if key.chars().count() < defaults::MIN_TENANT_KEY_LEN {
                warnings.push(format!(
                    "{f}: {p}.key: shorter than {} characters; easy to guess",
                    defaults::MIN_TENANT_KEY_LEN
                ));
            }
            let allowed_models = match t.allowed_models {
                Some(v) => v,
                None => {
                    warnings.push(format!(
                        "{f}: {p}.allowedModels: missing; the tenant may use every model"
                    ));
                    vec!["*".into()]
                }
            };
            Ok(TenantConfig {
                name: t.name.unwrap_or_else(|| id.clone()),
                limits: validate_limits(t.limits, &p)?,
                id,
                key,
                key_sha256: None,
                source: crate::config::TenantSource::File,
                expires_at: match t.expires_at {
                    None => None,
                    Some(at) => Some(
                        chrono::DateTime::parse_from_rfc3339(&at)
                            .map_err(|e| {
                                ConfigError::new(
                                    f,
                                    format!("{p}.expiresAt"),
                                    format!(
                                        "not an RFC 3339 time ({e}), e.g. 2027-01-31T00:00:00Z"
                                    ),
                                )
                            })?
                            .with_timezone(&chrono::Utc),
                    ),
                },
                enabled: t.enabled.unwrap_or(true),
                allowed_models,
            })
        })();
        match entry {
            Ok(v) => out.push(v),
            Err(e) => problems.push(e),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn dir_with(upstreams: &str, tenants: &str) -> tempdir::Dir {
        let d = tempdir::Dir::new();
        write(&d.0, UPSTREAMS_FILE, upstreams);
        write(&d.0, TENANTS_FILE, tenants);
        d
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                let p = std::env::temp_dir().join(format!("ccgate-cfg-{}", uuid::Uuid::now_v7()));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    const TENANTS: &str = r#"{"tenants":[{"id":"t1","name":"a","key":"tenant-key-0123456789","enabled":true,"allowedModels":["*sonnet*"],"limits":{"daily":{"maxUSD":1.5}}}]}"#;

    #[test]
    fn storage_url_is_checked_at_load() {
        let d = dir_with(r#"{"upstreams":[{"id":"u","url":"http://x"}]}"#, TENANTS);
        let l = load_dir_with_env(&d.0, &|_| None).unwrap();
        assert_eq!(l.config.storage, None);
        assert_eq!(load_storage(&d.0).unwrap(), None);
        for (url, expected) in [
            (
                "postgres://ccgate:secret@db.internal:5432/ccgate",
                StorageUrl::Postgres("postgres://ccgate:secret@db.internal:5432/ccgate".into()),
            ),
            (
                "postgresql://db/ccgate?options=-c%20search_path%3Dledger",
                StorageUrl::Postgres(
                    "postgresql://db/ccgate?options=-c%20search_path%3Dledger".into(),
                ),
            ),
            (
                "sqlite:///var/lib/ccgate/ledger.db",
                StorageUrl::Sqlite("/var/lib/ccgate/ledger.db".into()),
            ),
            ("sqlite://data/x.db", StorageUrl::Sqlite("data/x.db".into())),
        ] {
            write(
                &d.0,
                SERVER_FILE,
                &format!(r#"{{"storage":{{"url":"{url}"}}}}"#),
            );
            let l = load_dir_with_env(&d.0, &|_| None).unwrap();
            assert_eq!(l.config.storage.as_ref(), Some(&expected), "{url}");
            assert_eq!(load_storage(&d.0).unwrap(), Some(expected), "{url}");
        }
        for url in [
            "mysql://db/x",
            "sqlite://",
            "sqlite://:memory:",
            "sqlite://x.db?mode=ro",
            "postgres://db:notaport/x",
        ] {
            write(
                &d.0,
                SERVER_FILE,
                &format!(r#"{{"storage":{{"url":"{url}"}}}}"#),
            );
            let e = load_dir_with_env(&d.0, &|_| None).unwrap_err();
            assert!(
                e.to_string().starts_with("server.json: storage.url: "),
                "{url}: {e}"
            );
            assert!(load_storage(&d.0).is_err(), "{url}");
        }
    }

    #[test]
    fn trust_and_balance_are_optional_and_checked_with_their_paths() {
        let d = dir_with(r#"{"upstreams":[{"id":"u","url":"http://x"}]}"#, TENANTS);
        let u = &load_dir_with_env(&d.0, &|_| None).unwrap().config.upstreams[0];
        assert_eq!(u.trust, TrustConfig::default());
        assert_eq!(u.balance, None);
        let load = |entry: &str| {
            write(
                &d.0,
                UPSTREAMS_FILE,
                &format!(r#"{{"upstreams":[{{"id":"u","url":"http://x",{entry}}}]}}"#),
            );
            load_dir_with_env(&d.0, &|_| None)
        };
        let l = load(
            r#""trust":{"reference":true,"onSuspect":"demote","canary":{"intervalMinutes":30,"model":"claude-sonnet-4-6"}},
               "balance":{"path":"/api/user/self","jsonPointer":"/data/quota","unit":"quota","lowUsd":5}"#,
        )
        .unwrap();
        let u = &l.config.upstreams[0];
        assert!(u.trust.reference);
        assert_eq!(u.trust.on_suspect, OnSuspect::Demote);
        let canary = u.trust.canary.as_ref().unwrap();
        assert_eq!(canary.interval, Duration::from_secs(1800));
        let b = u.balance.as_ref().unwrap();
        assert_eq!(b.low_usd, Some(5.0));
        assert_eq!(b.low_days, 3.0);
        assert_eq!(b.interval, Duration::from_secs(3600));
        assert!(matches!(
            &b.source,
            BalanceSource::Custom {
                unit: BalanceUnit::Quota,
                ..
            }
        ));
        let b = load(r#""balance":{"preset":"new-api"}"#).unwrap();
        assert_eq!(
            b.config.upstreams[0].balance.as_ref().unwrap().source,
            BalanceSource::NewApi
        );
        for (entry, path) in [
            (
                r#""trust":{"onSuspect":"ban"}"#,
                "upstreams[0].trust.onSuspect",
            ),
            (
                r#""trust":{"canary":{"intervalMinutes":5}}"#,
                "upstreams[0].trust.canary.model",
            ),
            (
                r#""trust":{"canary":{"intervalMinutes":0,"model":"m"}}"#,
                "upstreams[0].trust.canary.intervalMinutes",
            ),
            (
                r#""balance":{"preset":"one-api"}"#,
                "upstreams[0].balance.preset",
            ),
            (r#""balance":{"path":"/x"}"#, "upstreams[0].balance"),
            (
                r#""balance":{"path":"/x","jsonPointer":"a"}"#,
                "upstreams[0].balance.jsonPointer",
            ),
            (
                r#""balance":{"path":"/x","jsonPointer":"/a","unit":"eur"}"#,
                "upstreams[0].balance.unit",
            ),
            (
                r#""balance":{"preset":"new-api","lowDays":-1}"#,
                "upstreams[0].balance.lowDays",
            ),
        ] {
            let e = load(entry).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("upstreams.json: {path}: ")),
                "{entry}: {e}"
            );
        }
    }

    #[test]
    fn a_storage_url_never_shows_its_password() {
        let url = StorageUrl::parse("postgres://ccgate:s3cret@db:5432/ccgate").unwrap();
        assert_eq!(url.to_string(), "postgres://ccgate:***@db:5432/ccgate");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(url.backend(), "postgres");
    }

    #[test]
    fn instance_id_is_checked() {
        let d = dir_with(r#"{"upstreams":[{"id":"u","url":"http://x"}]}"#, TENANTS);
        write(&d.0, SERVER_FILE, r#"{"server":{"instanceId":"gw-a"}}"#);
        let l = load_dir_with_env(&d.0, &|_| None).unwrap();
        assert_eq!(l.config.server.instance_id.as_deref(), Some("gw-a"));
        write(&d.0, SERVER_FILE, r#"{"server":{"instanceId":""}}"#);
        let e = load_dir_with_env(&d.0, &|_| None).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("server.json: server.instanceId: "),
            "{e}"
        );
    }

    #[test]
    fn logging_takes_the_originals_values() {
        let d = dir_with(r#"{"upstreams":[{"id":"u","url":"http://x"}]}"#, TENANTS);
        let load = |server: &str| {
            write(&d.0, SERVER_FILE, server);
            load_dir_with_env(&d.0, &|_| None)
        };
        let l = load("{}").unwrap().config.logging;
        assert_eq!(l.level, tracing::Level::INFO);
        assert_eq!(l.max_file_size, 100_000_000);
        assert_eq!(l.max_files, 5);
        assert_eq!(l.directory, None);
        assert!(l.enable_console && !l.bodies);
        let l = load(
            r#"{"logging":{"level":"verbose","maxFileSize":"100MB","maxFiles":7,"directory":"./logs","enableConsole":false}}"#,
        )
        .unwrap()
        .config
        .logging;
        assert_eq!(l.level, tracing::Level::DEBUG);
        assert_eq!(l.max_file_size, 100_000_000);
        assert_eq!(l.max_files, 7);
        assert_eq!(l.directory.as_deref(), Some(Path::new("./logs")));
        assert!(!l.enable_console);
        let size = |v: &str| {
            load(&format!(r#"{{"logging":{{"maxFileSize":{v}}}}}"#))
                .map(|l| l.config.logging.max_file_size)
        };
        assert_eq!(size(r#""10MiB""#).unwrap(), 10 << 20);
        assert_eq!(size(r#""512 kb""#).unwrap(), 512_000);
        assert_eq!(size("4096").unwrap(), 4096);
        for (server, path) in [
            (r#"{"logging":{"level":"loud"}}"#, "logging.level"),
            (
                r#"{"logging":{"maxFileSize":"huge"}}"#,
                "logging.maxFileSize",
            ),
            (r#"{"logging":{"maxFileSize":10}}"#, "logging.maxFileSize"),
            (r#"{"logging":{"maxFileSize":-5}}"#, "logging.maxFileSize"),
            (r#"{"logging":{"maxFiles":0}}"#, "logging.maxFiles"),
        ] {
            let e = load(server).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("server.json: {path}: ")),
                "{server}: {e}"
            );
        }
    }

    #[test]
    fn metrics_settings_are_checked() {
        let d = dir_with(r#"{"upstreams":[{"id":"u","url":"http://x"}]}"#, TENANTS);
        let load = |server: &str| {
            write(&d.0, SERVER_FILE, server);
            load_dir_with_env(&d.0, &|_| None)
        };
        let s = load(
            r#"{"server":{"metricsToken":"0123456789abcdef","metricsListen":"127.0.0.1:9464"}}"#,
        )
        .unwrap()
        .config
        .server;
        assert_eq!(s.metrics_token.as_deref(), Some("0123456789abcdef"));
        assert_eq!(s.metrics_listen, Some("127.0.0.1:9464".parse().unwrap()));
        let s = load("{}").unwrap().config.server;
        assert!(s.metrics_token.is_none() && s.metrics_listen.is_none());
        for (server, path) in [
            (
                r#"{"server":{"metricsToken":"short"}}"#,
                "server.metricsToken",
            ),
            (
                r#"{"server":{"metricsToken":"has a space in it!!"}}"#,
                "server.metricsToken",
            ),
            (
                r#"{"server":{"metricsListen":"localhost"}}"#,
                "server.metricsListen",
            ),
        ] {
            let e = load(server).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("server.json: {path}: ")),
                "{server}: {e}"
            );
        }
    }

    #[test]
    fn wrong_type_names_file_and_path() {
        let d = dir_with(
            r#"{"upstreams":[{"id":"u","url":"http://x","key":"k","weight":"heavy"}]}"#,
            TENANTS,
        );
        let e = load_dir_with_env(&d.0, &|_| None).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"upstreams.json: upstreams[0].weight: expected a number, got "heavy""#
        );
    }

    /// The limits of issue #23: parsed into their types, and each bad value reported with file and field path.
    #[test]
    fn new_limits_parse_and_bad_values_name_their_path() {
        const UP: &str = r#"{"upstreams":[{"id":"u","url":"http://x","key":"k"}]}"#;
        let tenants = |limits: &str, extra: &str| {
            format!(
                r#"{{"tenants":[{{"id":"t1","key":"tenant-key-0123456789","allowedModels":["*"],"limits":{limits}{extra}}}]}}"#
            )
        };
        let d = dir_with(
            UP,
            &tenants(
                r#"{"rolling":[{"hours":5,"maxUSD":3},{"hours":720,"maxUSD":50}],"tpm":20000,"maxOutputTokens":4096,
                    "clampOutputTokens":true,"models":{"*opus*":{"daily":{"maxUSD":5},"rpm":10,"maxOutputTokens":1024}}}"#,
                r#","expiresAt":"2027-01-31T00:00:00+08:00""#,
            ),
        );
        let t = load_dir_with_env(&d.0, &|_| None)
            .unwrap()
            .config
            .tenants
            .remove(0);
        let l = &t.limits;
        assert_eq!(
            l.rolling,
            vec![
                RollingLimit {
                    hours: 5,
                    max_nanousd: 3_000_000_000
                },
                RollingLimit {
                    hours: 720,
                    max_nanousd: 50_000_000_000
                }
            ]
        );
        assert_eq!(
            (l.tpm, l.max_output_tokens, l.clamp_output_tokens),
            (Some(20000), Some(4096), true)
        );
        assert_eq!(l.models.len(), 1);
        assert_eq!(l.models[0].pattern, "*opus*");
        assert_eq!(l.models[0].limits.daily_nanousd, Some(5_000_000_000));
        assert_eq!(l.models[0].limits.rpm, Some(10));
        assert_eq!(l.output_cap("claude-opus-4-6"), Some(1024));
        assert_eq!(l.output_cap("claude-sonnet-4-6"), Some(4096));
        assert_eq!(l.longest_rolling_hours(), Some(720));
        assert!(l.has_usd_limit());
        let per_model_only = Limits {
            models: l.models.clone(),
            ..Default::default()
        };
        assert!(per_model_only.has_usd_limit_for("claude-opus-4-6"));
        assert!(!per_model_only.has_usd_limit_for("claude-sonnet-4-6"));
        assert_eq!(
            t.expires_at.unwrap().to_rfc3339(),
            "2027-01-30T16:00:00+00:00"
        );

        for (limits, extra, expected) in [
            (r#"{"rolling":[{"hours":0,"maxUSD":3}]}"#, "", "tenants[0].limits.rolling[0].hours: expected whole hours from 1 to 720, got 0"),
            (r#"{"rolling":[{"hours":721,"maxUSD":3}]}"#, "", "tenants[0].limits.rolling[0].hours: expected whole hours from 1 to 720, got 721"),
            (r#"{"rolling":[{"hours":1.5,"maxUSD":3}]}"#, "", "tenants[0].limits.rolling[0].hours: expected whole hours from 1 to 720, got 1.5"),
            (r#"{"rolling":[{"hours":5}]}"#, "", "tenants[0].limits.rolling[0].maxUSD: missing"),
            (r#"{"rolling":[{"hours":5,"maxUSD":-1}]}"#, "", "tenants[0].limits.rolling[0].maxUSD: expected a number ≥ 0, got -1"),
            (r#"{"rolling":[{"hours":5,"maxUSD":1},{"hours":5,"maxUSD":2}]}"#, "", "tenants[0].limits.rolling[1].hours: a second 5 h window; keep one per length"),
            (r#"{"models":{"*opus*":{"daily":{"maxUSD":-5}}}}"#, "", r#"tenants[0].limits.models["*opus*"].daily.maxUSD: expected a number ≥ 0, got -5"#),
            (r#"{"models":{"":{"rpm":1}}}"#, "", r#"tenants[0].limits.models[""]: an empty model pattern"#),
            (r#"{"models":{"claude opus":{"rpm":1}}}"#, "", r#"tenants[0].limits.models["claude opus"]: a model pattern is printable ASCII without spaces, `*` as the wildcard"#),
            (r#"{"models":{"*":{"models":{"*":{}}}}}"#, "", r#"tenants[0].limits.models["*"].models: per-model limits cannot have models of their own"#),
            (r#"{"tpm":0}"#, "", "tenants[0].limits.tpm: expected a number ≥ 1 (leave it out for no limit)"),
            (r#"{"maxOutputTokens":0}"#, "", "tenants[0].limits.maxOutputTokens: expected a number ≥ 1 (leave it out for no limit)"),
            ("{}", r#","expiresAt":"next tuesday""#, "tenants[0].expiresAt: not an RFC 3339 time"),
        ] {
            let d = dir_with(UP, &tenants(limits, extra));
            let e = load_dir_with_env(&d.0, &|_| None).unwrap_err().to_string();
            assert!(e.starts_with(&format!("tenants.json: {expected}")), "{limits}{extra}: {e}");
        }
    }

    #[test]
    fn comments_env_and_unknown_fields() {
        let d = dir_with(
            "// upstreams\n{\"upstreams\":[/* one */{\"id\":\"u\",\"url\":\"https://m.example/api/\",\"key\":\"${UP_KEY}\",\"extra\":1}]}",
            TENANTS,
        );
        let l =
            load_dir_with_env(&d.0, &|n| (n == "UP_KEY").then(|| "secret".to_string())).unwrap();
        assert_eq!(l.config.upstreams[0].key, "secret");
        assert_eq!(l.config.upstreams[0].url, "https://m.example/api");
        assert!(
            l.warnings
                .iter()
                .any(|w| w == "upstreams.json: upstreams[0].extra: unknown field, ignored"),
            "{:?}",
            l.warnings
        );
        assert_eq!(
            l.config.tenants[0].limits.daily_nanousd,
            Some(1_500_000_000)
        );
    }

    #[test]
    fn missing_env_is_an_error() {
        let d = dir_with(
            r#"{"upstreams":[{"id":"u","url":"http://x","key":"${NOPE}"}]}"#,
            TENANTS,
        );
        let e = load_dir_with_env(&d.0, &|_| None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "upstreams.json: upstreams[0].key: environment variable NOPE is not set"
        );
    }

    #[test]
    fn unknown_strategy_duplicate_ids_keys_and_bad_url() {
        let d = dir_with(
            r#"{"upstreams":[{"id":"u","url":"http://x"}],"loadBalancer":{"strategy":"fastest"}}"#,
            TENANTS,
        );
        let e = load_dir_with_env(&d.0, &|_| None).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("upstreams.json: loadBalancer.strategy: unknown strategy \"fastest\""),
            "{e}"
        );

        let d = dir_with(
            r#"{"upstreams":[{"id":"u","url":"http://x"},{"id":"u","url":"http://y"}]}"#,
            TENANTS,
        );
        let e = load_dir_with_env(&d.0, &|_| None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "upstreams.json: upstreams[1].id: duplicate id \"u\" (also upstreams[0].id)"
        );

        let d = dir_with(r#"{"upstreams":[{"id":"u","url":"ftp:/nope"}]}"#, TENANTS);
        let e = load_dir_with_env(&d.0, &|_| None).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("upstreams.json: upstreams[0].url:"),
            "{e}"
        );

        let d = dir_with(
            r#"{"upstreams":[{"id":"u","url":"http://x"}]}"#,
            r#"{"tenants":[{"id":"a","key":"same-key-123456789"},{"id":"b","key":"same-key-123456789"}]}"#,
        );
        let e = load_dir_with_env(&d.0, &|_| None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "tenants.json: tenants[1].key: duplicate tenant key (also used by tenants[0])"
        );
        assert!(!e.to_string().contains("same-key"));
    }

    #[test]
    fn invalid_json_reports_line() {
        let d = dir_with("{\n\"upstreams\": [\n}", TENANTS);
        let e = load_dir_with_env(&d.0, &|_| None).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("upstreams.json: invalid JSON at line 3"),
            "{e}"
        );
    }
}

#[cfg(test)]
pub mod tests_support {
    use super::*;

    /// A minimal valid upstream for unit tests elsewhere in the crate.
    pub fn upstream() -> UpstreamConfig {
        let raw = raw::UpstreamEntry {
            id: Some("u1".into()),
            url: Some("http://127.0.0.1:9".into()),
            key: Some("upstream-secret".into()),
            ..Default::default()
        };
        let (mut w, mut problems) = (Vec::new(), Vec::new());
        let mut list =
            validate_upstreams(Some(vec![raw]), None, Path::new("."), &mut w, &mut problems)
                .unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        list.remove(0)
    }
}
