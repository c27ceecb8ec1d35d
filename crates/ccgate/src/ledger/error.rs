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
    #[error("ledger schema migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("ledger database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("unknown outcome {0:?} in the ledger")]
    UnknownOutcome(String),
    #[error("{} is not a UTF-8 path, which SQLite needs", .0.display())]
    NonUtf8Path(PathBuf),
}
