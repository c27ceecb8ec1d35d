//! `ccgate backup FILE`: a consistent copy of the ledger while the gateway runs.
//!
//! Copying `ccgate.db` by hand is not a backup: in WAL mode the newest rows sit in `ccgate.db-wal` until a
//! checkpoint, and a copy taken during a write can be torn. `VACUUM INTO` reads the ledger in one transaction (the
//! gateway goes on writing meanwhile) and writes a compact, self-contained database file. It is written next to
//! the destination under a temporary name and renamed when complete, so an interrupted backup never leaves a
//! half-written file under the name, and `--force` replaces an old backup only once the new one is whole.

use super::serve::db_path;
use super::Dirs;
use crate::ledger::sqlite::SqliteStore;
use crate::ledger::{LedgerError, Store};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("no ledger at {} (has the gateway run with this --data-dir?)", .0.display())]
    NoLedger(PathBuf),
    #[error("{} already exists; pass --force to replace it", .0.display())]
    Exists(PathBuf),
    #[error("{} is the ledger itself; write the backup elsewhere", .0.display())]
    SameFile(PathBuf),
    #[error("no folder {} to write the backup in", .0.display())]
    NoFolder(PathBuf),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub async fn backup(dirs: &Dirs, dest: &Path, force: bool) -> Result<(), BackupError> {
    let db = db_path(&dirs.data_dir);
    if !db.exists() {
        return Err(BackupError::NoLedger(db));
    }
    if same_file(&db, dest) {
        return Err(BackupError::SameFile(dest.to_owned()));
    }
    if dest.exists() && !force {
        return Err(BackupError::Exists(dest.to_owned()));
    }
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(BackupError::NoFolder(dir.to_owned()));
        }
    }
    let store = SqliteStore::open(&db).await?;
    let partial = partial_name(dest);
    // A leftover from an interrupted run would make VACUUM INTO fail.
    let _ = std::fs::remove_file(&partial);
    if let Err(e) = store.backup_into(&partial).await {
        let _ = std::fs::remove_file(&partial);
        return Err(e.into());
    }
    std::fs::rename(&partial, dest).map_err(|source| {
        let _ = std::fs::remove_file(&partial);
        BackupError::Io {
            path: dest.to_owned(),
            source,
        }
    })?;
    let requests = store.count_requests().await?;
    println!(
        "Backed up the ledger ({requests} request record(s)) to {}",
        dest.display()
    );
    Ok(())
}

/// `FILE.partial-PID` beside `FILE`: same folder, so the final rename cannot cross file systems.
fn partial_name(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".partial-{}", std::process::id()));
    dest.with_file_name(name)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partial_file_sits_beside_the_destination() {
        let p = partial_name(Path::new("/backups/ccgate-2026.db"));
        assert_eq!(p.parent(), Some(Path::new("/backups")));
        assert!(p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("ccgate-2026.db.partial-")));
    }
}
