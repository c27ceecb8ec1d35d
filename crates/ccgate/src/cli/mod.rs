//! The command line: `ccgate [serve]`, `ccgate init`, `ccgate config validate`, `ccgate usage`, `ccgate clean`,
//! `ccgate health` — the original's `pnpm` scripts as subcommands of one binary.

mod serve;

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
    /// Request-serving threads, each with its own event loop, listening socket and upstream connection pool
    /// (default: one per CPU).
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
    serve::init_tracing();
    // Requests are served on the per-CPU worker threads that `serve` starts; this runtime runs the control
    // plane (config reloads, health checks, the ledger writer) and the other commands.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("ccgate-control")
        .on_thread_start(yield_to_request_workers)
        .enable_all()
        .build()
    {
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
            Some(Command::Health { dirs, url, json }) => {
                serve::health(&dirs, url.as_deref(), json).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Lowers the scheduling priority of the calling thread (nice +10), so that the control plane's bursts (a ledger
/// batch commit, a health probe round, a config reload) give way to the request workers when the CPUs are busy,
/// rather than delaying whichever request arrives during them. Nothing on these threads is latency-bound: the
/// ledger batches every 50 ms and requests never wait on it.
fn yield_to_request_workers() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain integer arguments; on Linux the nice value is per thread, and `gettid` names this one. A
    // refusal (seccomp, say) leaves the priority as it was.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10);
    }
}
