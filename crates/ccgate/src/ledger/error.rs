use std::path::PathBuf;

/// What can go wrong between the ledger and its database. The writer retries any of them; callers outside the
/// ledger usually just print them.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open ledger {}: {source}", path.display())]
    Open { path: PathBuf, source: sqlx::Error },
    /// `url` without its password.
    #[error("cannot connect to the PostgreSQL ledger at {url}: {source}")]
    OpenPostgres { url: String, source: sqlx::Error },
    #[error("ledger schema migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("ledger database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("the ledger cannot write to {}: {} (run CCGate as a user who can write there, or choose another --data-dir)", path.display(), io_cause(source))]
    NotWritable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the database file {} was replaced by another file while the gateway ran; rows wait in memory and in the journal until it is moved away", path.display())]
    Replaced { path: PathBuf },
    #[error("cannot read the crash journal in {}: {source}", path.display())]
    Journal {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("unknown outcome {0:?} in the ledger")]
    UnknownOutcome(String),
    #[error("{} is not a UTF-8 path, which SQLite needs", .0.display())]
    NonUtf8Path(PathBuf),
    #[error("ccgate backup copies the embedded SQLite ledger; back up a PostgreSQL ledger with pg_dump (for example: pg_dump --format=custom --file ccgate.dump \"$CCGATE_DATABASE_URL\")")]
    BackupUnsupported,
}

/// The cause of a write failure, in the words an operator searches for.
pub(crate) fn io_cause(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::PermissionDenied => format!("permission denied ({e})"),
        ErrorKind::ReadOnlyFilesystem => format!("read-only file system ({e})"),
        ErrorKind::NotFound => format!("the directory is missing ({e})"),
        ErrorKind::StorageFull => format!("the disk is full ({e})"),
        _ => e.to_string(),
    }
}
