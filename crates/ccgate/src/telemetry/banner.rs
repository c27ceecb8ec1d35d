//! The start-up banner (stdout, after `CCGate listening on http://…`): where the gateway answers, what it
//! serves, where its ledger, logs and metrics are, and what the operator should fix. Never a key or a password.

use crate::config::{Config, StorageUrl};
use std::net::SocketAddr;
use std::path::Path;

/// What the banner shows besides the config.
pub struct Facts<'a> {
    /// A URL base a client on this machine can use (`127.0.0.1` when bound to every interface).
    pub reachable: SocketAddr,
    pub store: &'a StorageUrl,
    /// Where the log files are, if they are written.
    pub logs: Option<&'a Path>,
    /// The separate metrics listener's address, once bound.
    pub metrics_listen: Option<SocketAddr>,
    pub config_file: &'a Path,
}

/// The store without credentials or options: `sqlite://data/ccgate.db`, `postgres://db.internal:5432/ccgate`.
pub fn store_label(store: &StorageUrl) -> String {
    match store {
        StorageUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
        StorageUrl::Postgres(url) => match url::Url::parse(url) {
            Ok(u) => format!(
                "postgres://{}{}{}",
                u.host_str().unwrap_or("localhost"),
                u.port().map(|p| format!(":{p}")).unwrap_or_default(),
                u.path()
            ),
            Err(_) => "postgres (unparsable URL)".into(),
        },
    }
}

/// The banner's lines after the "listening" line, and its warnings (each line without a trailing newline).
pub fn lines(c: &Config, f: &Facts<'_>) -> (Vec<String>, Vec<String>) {
    let base = format!("http://{}", f.reachable);
    let enabled = c.upstreams.iter().filter(|u| u.enabled).count();
    let tenants_enabled = c.tenants.iter().filter(|t| t.enabled).count();
    let mut out = vec![
        format!(
            "  {} upstream(s) ({enabled} enabled), {} tenant(s) ({tenants_enabled} enabled)",
            c.upstreams.len(),
            c.tenants.len()
        ),
        format!("  Store:            {}", store_label(f.store)),
    ];
    if c.admin.enabled {
        out.push(format!(
            "  Admin:            {base}{}  (also {base}/dashboard)",
            c.admin.path
        ));
    } else {
        out.push(format!(
            "  Dashboard:        {base}/dashboard  (admin login disabled)"
        ));
    }
    out.push(format!(
        "  Anthropic API:    {base}/anthropic   (Claude Code: ANTHROPIC_BASE_URL)"
    ));
    if c.openai.enabled {
        out.push(format!("  OpenAI API:       {base}/openai/v1"));
    }
    out.push(match (f.metrics_listen, &c.server.metrics_token) {
        (Some(addr), token) => format!(
            "  Metrics:          http://{addr}/metrics{}",
            if token.is_some() {
                "  (Bearer server.metricsToken)"
            } else {
                ""
            }
        ),
        (None, Some(_)) => {
            format!("  Metrics:          {base}/metrics  (Bearer server.metricsToken)")
        }
        (None, None) => {
            "  Metrics:          off (set server.metricsToken or server.metricsListen)".into()
        }
    });
    if let Some(dir) = f.logs {
        out.push(format!(
            "  Logs:             {}/{{access,combined,error}}.log",
            dir.display()
        ));
    }
    let mut warnings = Vec::new();
    if let Some(problem) = c.admin.password_problem() {
        warnings.push(format!(
            "Admin login: REFUSED: {}; set your own in {}",
            problem.explain(),
            f.config_file.display()
        ));
    }
    for u in c
        .upstreams
        .iter()
        .filter(|u| u.enabled && u.key.trim().is_empty())
    {
        warnings.push(format!(
            "upstream {} has no key: set its \"key\" in upstreams.json (e.g. \"${{ANTHROPIC_API_KEY}}\")",
            u.id
        ));
    }
    if enabled == 0 {
        warnings.push("no upstream is enabled: every request will fail".into());
    }
    if c.logging.bodies {
        warnings.push(
            "logging.bodies is on, but this version never logs prompts or answers; the setting has no effect".into(),
        );
    }
    (out, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_store_shows_host_port_and_database_only() {
        let s = StorageUrl::Postgres(
            "postgres://app:s3cret-pass@db.internal:5433/ccgate?sslmode=require&password=x".into(),
        );
        assert_eq!(store_label(&s), "postgres://db.internal:5433/ccgate");
        let s = StorageUrl::Sqlite("data/ccgate.db".into());
        assert_eq!(store_label(&s), "sqlite://data/ccgate.db");
    }
}
