//! Which ledger a command uses: `CCGATE_DATABASE_URL`, else `storage.url` in `server.json`, else the embedded
//! SQLite file `<data-dir>/ccgate.db` (as before either existed).

use crate::config::{InvalidStorageUrl, StorageUrl};
use crate::ledger::journal;
use crate::ledger::postgres::PgStore;
use crate::ledger::sqlite::SqliteStore;
use crate::ledger::{LedgerError, Store};
use std::path::Path;
use std::sync::Arc;

pub const ENV: &str = "CCGATE_DATABASE_URL";

/// `CCGATE_DATABASE_URL`, if set and not empty. It wins over the config file, so a deployment can point every
/// instance at the shared database without editing a file they share.
pub fn from_env() -> Result<Option<StorageUrl>, InvalidStorageUrl> {
    match std::env::var(ENV) {
        Ok(v) if !v.trim().is_empty() => StorageUrl::parse(&v).map(Some),
        _ => Ok(None),
    }
}

pub fn resolve(
    env: Option<StorageUrl>,
    configured: Option<&StorageUrl>,
    data_dir: &Path,
) -> StorageUrl {
    env.or_else(|| configured.cloned())
        .unwrap_or_else(|| StorageUrl::Sqlite(super::serve::db_path(data_dir)))
}

/// Opens (and migrates) the store. `journal_dir`: the gateway's crash journal, whose id keys its high-water mark
/// in a shared database; `None` for the commands that only read or delete.
pub async fn open(
    url: &StorageUrl,
    journal_dir: Option<&Path>,
) -> Result<Arc<dyn Store>, LedgerError> {
    Ok(match url {
        StorageUrl::Sqlite(path) => Arc::new(SqliteStore::open(path).await?),
        StorageUrl::Postgres(raw) => {
            let journal_id = match journal_dir {
                Some(dir) => {
                    journal::journal_id(dir).map_err(|source| LedgerError::NotWritable {
                        path: dir.to_owned(),
                        source,
                    })?
                }
                None => String::new(),
            };
            Arc::new(PgStore::open(raw, &url.to_string(), &journal_id).await?)
        }
    })
}

/// `server.instanceId`, or `hostname:port`: unique among instances on different machines, and among instances
/// on one machine (they cannot share a port), and the same across restarts of one instance.
pub fn instance_id(configured: Option<&str>, port: u16) -> String {
    match configured {
        Some(id) => id.to_owned(),
        None => format!("{}:{port}", hostname()),
    }
}

fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .chain(std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .find(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_wins_then_the_config_then_the_data_folder() {
        let pg = StorageUrl::parse("postgres://db/ccgate").unwrap();
        let file = StorageUrl::Sqlite("/srv/ledger.db".into());
        let data = Path::new("data");
        assert_eq!(resolve(Some(pg.clone()), Some(&file), data), pg);
        assert_eq!(resolve(None, Some(&file), data), file);
        assert_eq!(
            resolve(None, None, data),
            StorageUrl::Sqlite("data/ccgate.db".into())
        );
    }

    #[test]
    fn instance_id_is_the_configured_one_or_host_and_port() {
        assert_eq!(instance_id(Some("gw-a"), 3000), "gw-a");
        let id = instance_id(None, 3000);
        assert!(id.ends_with(":3000") && id.len() > ":3000".len(), "{id}");
    }
}
