//! `ccgate-mock [--host 127.0.0.1] [--port 0] [--config-json '{...}']`
//!
//! Prints `ccgate-mock listening on http://HOST:PORT` once bound, then serves until killed.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};

use ccgate_mock::MockConfig;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "ccgate-mock",
    about = "Mock Anthropic-compatible upstream for CCGate"
)]
struct Args {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to bind (0 = pick a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Initial MockConfig as JSON (partial objects are fine).
    #[arg(long)]
    config_json: Option<String>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();

    let config = match args.config_json.as_deref() {
        None => MockConfig::default(),
        Some(json) => match serde_json::from_str::<MockConfig>(json) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("ccgate-mock: invalid --config-json: {e}");
                std::process::exit(2);
            }
        },
    };
    let handle = match ccgate_mock::start_on(SocketAddr::new(args.host, args.port), config).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("ccgate-mock: cannot bind {}:{}: {e}", args.host, args.port);
            std::process::exit(1);
        }
    };
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "ccgate-mock listening on {}", handle.url());
        let _ = out.flush();
    }
    // Serve until killed (SIGINT/SIGTERM end the process).
    let _ = tokio::signal::ctrl_c().await;
    drop(handle);
}
