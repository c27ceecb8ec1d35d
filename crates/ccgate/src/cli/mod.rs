//! The command line: `ccgate [serve]`, `ccgate init`, `ccgate config validate`, `ccgate usage`, `ccgate clean`,
//! `ccgate health`, `ccgate backup`, `ccgate alerts test`, `ccgate import-usage` — the original's `pnpm` scripts as subcommands of one binary.

mod backup;
mod import;
mod report;
mod serve;
mod storage;
mod table;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "ccgate",
    version,
    about = "Share Claude Code API keys with tenants: budgets, permissions, metering, failover."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Args, Debug, Clone, Default)]
pub struct Dirs {
    /// Folder holding server.json, upstreams.json, tenants.json (and optional pricing.json).
    #[arg(
        long,
        env = "CCGATE_CONFIG_DIR",
        default_value = "config",
        global = true
    )]
    pub config_dir: PathBuf,
    /// Folder for the ledger database (ccgate.db).
    #[arg(long, env = "CCGATE_DATA_DIR", default_value = "data", global = true)]
    pub data_dir: PathBuf,
}

#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    #[command(flatten)]
    pub dirs: Dirs,
    /// Overrides server.port.
    #[arg(long, env = "CCGATE_PORT")]
    pub port: Option<u16>,
    /// Overrides server.host.
    #[arg(long, env = "CCGATE_HOST")]
    pub host: Option<String>,
    /// Worker threads of the async runtime that serves requests (default: one per CPU).
    #[arg(long, env = "CCGATE_WORKERS")]
    pub workers: Option<usize>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway (the default).
    Serve(ServeArgs),
    /// Write the example config files (never overwrites).
    Init {
        #[command(flatten)]
        dirs: Dirs,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print usage per tenant, day and model.
    Usage {
        #[command(flatten)]
        dirs: Dirs,
        #[arg(long)]
        tenant: Option<String>,
        /// First day, YYYY-MM-DD.
        #[arg(long)]
        from: Option<String>,
        /// Last day, YYYY-MM-DD.
        #[arg(long)]
        to: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete recorded usage (the original's "clean logs and usage").
    Clean {
        #[command(flatten)]
        dirs: Dirs,
        /// Delete days before this one (YYYY-MM-DD); without it, everything.
        #[arg(long)]
        before: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
    },
    /// Write a consistent copy of the ledger to FILE (works while the gateway runs).
    Backup {
        #[command(flatten)]
        dirs: Dirs,
        /// Where to write the copy (a SQLite database file).
        file: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Show a running gateway's upstream health as a table (the admin credentials and the port come from
    /// the config folder's server.json).
    Health {
        #[command(flatten)]
        dirs: Dirs,
        /// The gateway's base URL (default: http://127.0.0.1:<server.port>).
        #[arg(long)]
        url: Option<String>,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Webhook alerts.
    Alerts {
        #[command(subcommand)]
        command: AlertsCommand,
    },
    /// Import the original CCGate's usage files (data/usage/{tenant}/{YYYY-MM}/{YYYY-MM-DD}.json) into the ledger
    /// as historical rows. Safe to run again: rows already imported are skipped.
    ImportUsage {
        #[command(flatten)]
        dirs: Dirs,
        /// The original's data/usage folder (or any folder holding {tenant}/{YYYY-MM}/{YYYY-MM-DD}.json).
        dir: PathBuf,
    },
    /// Read a password from stdin (its first line) and print its argon2id hash for server.json's
    /// `admin.passwordHash`, so the plaintext password need not be kept in the file.
    HashPassword,
}

#[derive(Subcommand, Debug)]
pub enum AlertsCommand {
    /// Send a test message to every webhook in server.json's `alerts`.
    Test {
        #[command(flatten)]
        dirs: Dirs,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Check the config folder and report every problem with its file and field path.
    Validate {
        #[command(flatten)]
        dirs: Dirs,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, None | Some(Command::Serve(_)));
    if !serving {
        // `serve` sets up its logging (console and files) once its config is read.
        crate::telemetry::logs::init_console();
        restore_default_sigpipe();
    }
    // One multi-threaded runtime for everything: requests, config reloads, health probes and the ledger writer
    // (whose synchronous SQLite batches run under `block_in_place`, so requests move to the other workers).
    let workers = match &cli.command {
        Some(Command::Serve(args)) => args.workers,
        None => cli.serve.workers,
        Some(_) => None,
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.thread_name("ccgate-worker").enable_all();
    if let Some(n) = workers {
        builder.worker_threads(n.max(1));
    }
    let rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            None => serve::serve(cli.serve).await,
            Some(Command::Serve(args)) => serve::serve(args).await,
            Some(Command::Init { dirs }) => serve::init(&dirs),
            Some(Command::Config {
                command: ConfigCommand::Validate { dirs },
            }) => serve::validate(&dirs),
            Some(Command::Usage {
                dirs,
                tenant,
                from,
                to,
                json,
            }) => serve::usage(&dirs, tenant, from, to, json).await,
            Some(Command::Clean { dirs, before, yes }) => serve::clean(&dirs, before, yes).await,
            Some(Command::Backup { dirs, file, force }) => backup::backup(&dirs, &file, force)
                .await
                .map_err(anyhow::Error::from),
            Some(Command::Health { dirs, url, json }) => {
                serve::health(&dirs, url.as_deref(), json).await
            }
            Some(Command::Alerts {
                command: AlertsCommand::Test { dirs },
            }) => serve::alerts_test(&dirs).await,
            Some(Command::ImportUsage { dirs, dir }) => import::import_usage(&dirs, &dir).await,
            Some(Command::HashPassword) => hash_password(),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The top message only: the error types already put their cause into it.
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `ccgate hash-password`: the password comes from stdin, never from the command line (where `ps` and the shell
/// history would show it). The same strength rules as `admin.password` apply.
fn hash_password() -> anyhow::Result<()> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    if let Some(problem) = crate::config::defaults::admin_password_problem(password) {
        anyhow::bail!("{}; choose another password", problem.explain());
    }
    let phc = crate::config::PasswordHash::hash(password).map_err(|e| anyhow::anyhow!(e))?;
    println!("{phc}");
    Ok(())
}

/// The report commands print to stdout, which is often a pipe (`ccgate usage | head`). Rust ignores SIGPIPE, so a
/// closed pipe turns every `println!` into a panic; with the default action the command ends quietly, as other
/// Unix tools do. The gateway itself keeps ignoring it: a client hanging up must never end the process.
fn restore_default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: `signal` only changes this process's disposition of SIGPIPE; it is called once, at start-up, before
    // any thread of ours exists, with a valid signal number and the default handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
