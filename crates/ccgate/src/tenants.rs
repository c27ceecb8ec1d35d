//! Tenants made through the admin API ("console tenants"), kept in the store beside `tenants.json`.
//!
//! They live in the ledger's database (`console_tenants`), so on a shared PostgreSQL every instance serves the same
//! ones. Only a SHA-256 of each key is stored: keys are long random strings, so a fast hash is as good as a slow one
//! for them, and it lets a presented key be found by its hash. Every [`POLL`] each instance asks the store whether
//! anything changed (a count and a sum of change times, one cheap query) and, if so, reloads the list and swaps in
//! a runtime with it. A new, changed, rotated or removed tenant therefore takes effect on every instance within
//! about [`POLL`]. The admin's upstream overrides (`api/admin_upstreams.rs`) are in the same poll. `tenants.json`
//! keeps working as before; a console tenant whose id or key clashes with a file
//! tenant is left out (the file wins) with a warning.

use crate::config::load::{validate_limits, ConfigError};
use crate::config::raw::LimitsSection;
use crate::config::{TenantConfig, TenantSource};
use crate::ledger::store::StoredTenant;
use crate::state::Gateway;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// How often an instance checks the store for changed console tenants.
pub const POLL: Duration = Duration::from_secs(1);

/// The SHA-256 of a key, as the store keeps it.
pub fn key_sha256(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Why a stored console tenant cannot be served (it was written by a newer or broken tool).
#[derive(Debug, thiserror::Error)]
pub enum StoredTenantError {
    #[error("console tenant {id}: key_sha256 is not 64 hex digits")]
    KeyHash { id: String },
    #[error("console tenant {id}: allowed_models is not a JSON array of strings: {source}")]
    AllowedModels {
        id: String,
        source: serde_json::Error,
    },
    #[error("console tenant {id}: limits is not a limits object: {source}")]
    LimitsJson {
        id: String,
        source: serde_json::Error,
    },
    #[error("console tenant {id}: {source}")]
    Limits { id: String, source: ConfigError },
    #[error("console tenant {id}: expires_at is not an RFC 3339 time")]
    ExpiresAt { id: String },
}

/// A stored console tenant as the runtime serves it.
pub fn to_config(t: &StoredTenant) -> Result<TenantConfig, StoredTenantError> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(&t.key_sha256, &mut hash)
        .map_err(|_| StoredTenantError::KeyHash { id: t.id.clone() })?;
    let allowed_models: Vec<String> =
        serde_json::from_str(&t.allowed_models).map_err(|source| {
            StoredTenantError::AllowedModels {
                id: t.id.clone(),
                source,
            }
        })?;
    let limits: LimitsSection =
        serde_json::from_str(&t.limits).map_err(|source| StoredTenantError::LimitsJson {
            id: t.id.clone(),
            source,
        })?;
    let limits = validate_limits(Some(limits), "console_tenants").map_err(|source| {
        StoredTenantError::Limits {
            id: t.id.clone(),
            source,
        }
    })?;
    let expires_at = match &t.expires_at {
        None => None,
        Some(at) => Some(
            chrono::DateTime::parse_from_rfc3339(at)
                .map_err(|_| StoredTenantError::ExpiresAt { id: t.id.clone() })?
                .with_timezone(&chrono::Utc),
        ),
    };
    Ok(TenantConfig {
        id: t.id.clone(),
        expires_at,
        name: t.name.clone(),
        key: String::new(),
        key_sha256: Some(hash),
        source: TenantSource::Console,
        enabled: t.enabled,
        allowed_models,
        limits,
    })
}

/// Loads the console tenants now and then follows the store's changes until shutdown.
pub async fn load_and_follow(gw: Arc<Gateway>) -> Result<(), crate::ledger::LedgerError> {
    let store = gw.ledger.store.clone();
    let mut version = store.console_tenants_version().await?;
    reload(&gw).await?;
    let shutdown = gw.shutdown.clone();
    let weak = Arc::downgrade(&gw);
    drop(gw);
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(POLL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = interval.tick() => {}
            }
            let Some(gw) = weak.upgrade() else { return };
            match store.console_tenants_version().await {
                Ok(v) if v == version => {}
                Ok(v) => match reload(&gw).await {
                    Ok(()) => version = v,
                    Err(e) => {
                        tracing::warn!(error = %e, "console tenants: cannot reload them; retrying")
                    }
                },
                Err(e) => {
                    tracing::debug!(error = %e, "console tenants: cannot check the store for changes")
                }
            }
        }
    });
    Ok(())
}

/// Reloads run one at a time: two admin edits racing could otherwise apply their reads out of order, leaving the
/// runtime on the older one until the next poll.
static RELOADING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Reads every console tenant (and the admin's upstream overrides, which follow the same way) and swaps in a
/// runtime that serves them.
pub async fn reload(gw: &Gateway) -> Result<(), crate::ledger::LedgerError> {
    let _one_at_a_time = RELOADING.lock().await;
    let stored = gw.ledger.store.console_tenants().await?;
    let overrides = gw.ledger.store.upstream_overrides().await?;
    let mut tenants = Vec::with_capacity(stored.len());
    for t in &stored {
        match to_config(t) {
            Ok(c) => tenants.push(c),
            Err(e) => tracing::error!("{e}; this tenant is not served"),
        }
    }
    gw.set_console_state(tenants, overrides);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> StoredTenant {
        StoredTenant {
            id: "c1".into(),
            name: "Console one".into(),
            key_sha256: hex::encode(key_sha256("sk-console-key-0123456789abcdef")),
            key_hint: "sk-…cdef".into(),
            enabled: true,
            allowed_models: r#"["*sonnet*"]"#.into(),
            limits: r#"{"daily": {"maxUSD": 2.5}, "rpm": 7}"#.into(),
            expires_at: None,
            created_ms: 1,
            updated_ms: 1,
        }
    }

    #[test]
    fn a_stored_tenant_becomes_a_runtime_tenant() {
        let c = to_config(&stored()).unwrap();
        assert_eq!(c.source, TenantSource::Console);
        assert!(c.key.is_empty(), "the key itself is never known");
        assert_eq!(
            c.key_sha256,
            Some(key_sha256("sk-console-key-0123456789abcdef"))
        );
        assert_eq!(c.limits.daily_nanousd, Some(2_500_000_000));
        assert_eq!(c.limits.rpm, Some(7));
        assert_eq!(c.allowed_models, vec!["*sonnet*".to_string()]);
    }

    #[test]
    fn broken_rows_are_refused_with_the_reason() {
        let bad = |f: fn(&mut StoredTenant)| {
            let mut t = stored();
            f(&mut t);
            to_config(&t).unwrap_err().to_string()
        };
        assert!(bad(|t| t.key_sha256 = "xyz".into()).contains("key_sha256"));
        assert!(bad(|t| t.allowed_models = "{}".into()).contains("allowed_models"));
        assert!(bad(|t| t.limits = r#"{"daily": {"maxUSD": -1}}"#.into()).contains("daily"));
    }
}
