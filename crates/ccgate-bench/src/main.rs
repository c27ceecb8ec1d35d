//! `ccgate-bench [--smoke] [--out DIR]`: CCGate against direct access and nginx, in one run.
//!
//! Starts the fast mock upstream, nginx as a plain reverse proxy in front of it (if installed), the hyper floor
//! (`ccgate-hyper-floor`: hyper + tokio alone, in CCGate's worker layout) and CCGate (auth and SQLite metering
//! on), then measures every path with the same load generator, writes `DIR/latest.json` and
//! `DIR/latest.md`, prints ratios against nginx and direct, and stops everything it started.
//! Normally run through `bench/run.sh`, which builds the release binaries and installs nginx first.

mod bodies;
mod load;
mod procs;
mod report;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Parser;
use http::{HeaderName, HeaderValue};
use load::Target;
use procs::Child;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "ccgate-bench",
    about = "End-to-end benchmark: direct vs nginx vs CCGate (/anthropic, /openai)"
)]
struct Args {
    /// Short run that checks the harness works (0.5 s cells, 200 slow streams); fails on any error.
    #[arg(long)]
    smoke: bool,
    /// Measure nothing: read a results JSON written by an earlier run, recompute its ratios and targets, and write
    /// it and its markdown report again (into --out, default the JSON's folder).
    #[arg(long, value_name = "JSON")]
    render: Option<PathBuf>,
    /// Output folder for latest.json and latest.md (default bench/results, smoke: target/bench-smoke).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Folder with the release binaries ccgate and ccgate-mock (default: this binary's folder).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Measured seconds per cell (default 3, smoke 0.5).
    #[arg(long)]
    duration: Option<f64>,
    /// Warm-up seconds per cell (default 1, smoke 0.2).
    #[arg(long)]
    warmup: Option<f64>,
    /// Concurrent slow streams held through CCGate (default 10000, smoke 200).
    #[arg(long)]
    slow_streams: Option<usize>,
    /// Delay between the slow streams' events, in ms.
    #[arg(long, default_value_t = 200)]
    slow_event_delay_ms: u64,
    /// Concurrent fast streams for the memory check (default 1000, smoke 100).
    #[arg(long)]
    streams: Option<usize>,
    /// Repeat the whole matrix this many times and keep, per cell, the quietest round (least CPU used by other
    /// workloads on the machine; default 1).
    #[arg(long)]
    rounds: Option<usize>,
    /// A cell during which other workloads used more than this % of the machine's CPU is measured again.
    #[arg(long, default_value_t = 10.0)]
    max_foreign: f64,
    /// How many times a noisy cell may be measured again (default 4, smoke 0).
    #[arg(long)]
    retries: Option<usize>,
    /// Worker threads of the load generator.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Do not start nginx (its rows are then missing).
    #[arg(long)]
    no_nginx: bool,
    /// Also measure LiteLLM's proxy (its Anthropic-format `/v1/messages`) in front of the same mock: the path
    /// `litellm`, started from this `litellm` executable (`bench/run.sh --with-litellm` installs one). Its errors
    /// are reported, never fatal.
    #[arg(long, value_name = "BIN")]
    litellm: Option<PathBuf>,
    /// Only these paths (comma-separated: direct,nginx,floor,litellm,anthropic,openai).
    #[arg(long)]
    paths: Option<String>,
    /// Only these bodies (comma-separated: small,large,sse).
    #[arg(long)]
    bodies: Option<String>,
    /// Only these concurrencies (comma-separated, default 1,32,256).
    #[arg(long)]
    conns: Option<String>,
    /// Skip the slow-stream run straight against the mock (the baseline of the ccgate one).
    #[arg(long)]
    no_slow_baseline: bool,
    /// Streams per connection in the HTTP/2 (h2c) slow-stream run, which holds the full --slow-streams through
    /// ccgate with one socket each side per stream group instead of per stream; 0 skips that run.
    #[arg(long, default_value_t = 100)]
    slow_h2_streams_per_conn: usize,
    /// Skip the matrix (only the stream checks).
    #[arg(long)]
    no_matrix: bool,
    /// Extra environment for ccgate, KEY=VALUE (repeatable), e.g. MALLOC_ARENA_MAX=2 for an allocator experiment.
    #[arg(long)]
    ccgate_env: Vec<String>,
    /// Skip the 1,000-stream and slow-stream checks.
    #[arg(long)]
    no_streams: bool,
}

/// Process groups to stop when interrupted (the children's own `Drop` covers normal exits and errors).
static PGIDS: Mutex<Vec<i32>> = Mutex::new(Vec::new());
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn register(c: &Child) {
    PGIDS.lock().unwrap().push(c.pid as i32);
}

fn kill_registered() {
    let pgids = PGIDS.lock().map(|g| g.clone()).unwrap_or_default();
    for p in &pgids {
        // SAFETY: kill(2) takes plain integers and touches no memory of ours.
        unsafe {
            libc::kill(-p, libc::SIGTERM);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    for p in &pgids {
        // SAFETY: as above.
        unsafe {
            libc::kill(-p, libc::SIGKILL);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PathKind {
    Direct,
    Nginx,
    /// `ccgate-hyper-floor`: what the HTTP stack alone costs.
    Floor,
    /// LiteLLM's proxy, a peer gateway (only with `--litellm`).
    LiteLlm,
    Anthropic,
    OpenAi,
}

impl PathKind {
    pub fn name(self) -> &'static str {
        match self {
            PathKind::Direct => "direct",
            PathKind::Nginx => "nginx",
            PathKind::Floor => "hyper floor",
            PathKind::LiteLlm => "LiteLLM",
            PathKind::Anthropic => "ccgate /anthropic",
            PathKind::OpenAi => "ccgate /openai",
        }
    }
    pub fn key(self) -> &'static str {
        match self {
            PathKind::Direct => "direct",
            PathKind::Nginx => "nginx",
            PathKind::Floor => "floor",
            PathKind::LiteLlm => "litellm",
            PathKind::Anthropic => "anthropic",
            PathKind::OpenAi => "openai",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BodyKind {
    Small,
    Large,
    Sse,
}

impl BodyKind {
    pub fn key(self) -> &'static str {
        match self {
            BodyKind::Small => "small",
            BodyKind::Large => "large",
            BodyKind::Sse => "sse",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            BodyKind::Small => "small",
            BodyKind::Large => "75 KB",
            BodyKind::Sse => "SSE",
        }
    }
}

const TENANT_KEY: &str = "bench-tenant-key-0123456789";
const LITELLM_KEY: &str = "sk-bench-litellm-master-key";

struct Env {
    mock: SocketAddr,
    mock_pid: Option<u32>,
    nginx: Option<SocketAddr>,
    floor: SocketAddr,
    litellm: Option<SocketAddr>,
    ccgate: SocketAddr,
    bodies: Bodies,
}

struct Bodies {
    a_small: Bytes,
    a_large: Bytes,
    a_sse: Bytes,
    o_small: Bytes,
    o_large: Bytes,
    o_sse: Bytes,
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).expect("header value")
}

fn target(env: &Env, path: PathKind, body: BodyKind, extra: &[(&'static str, &str)]) -> Target {
    let (addr, uri) = match path {
        PathKind::Direct => (env.mock, "/v1/messages"),
        PathKind::Nginx => (env.nginx.expect("nginx"), "/v1/messages"),
        PathKind::Floor => (env.floor, "/v1/messages"),
        PathKind::LiteLlm => (env.litellm.expect("litellm"), "/v1/messages"),
        PathKind::Anthropic => (env.ccgate, "/anthropic/v1/messages"),
        PathKind::OpenAi => (env.ccgate, "/openai/v1/chat/completions"),
    };
    let b = &env.bodies;
    let payload = match (path, body) {
        (PathKind::OpenAi, BodyKind::Small) => b.o_small.clone(),
        (PathKind::OpenAi, BodyKind::Large) => b.o_large.clone(),
        (PathKind::OpenAi, BodyKind::Sse) => b.o_sse.clone(),
        (_, BodyKind::Small) => b.a_small.clone(),
        (_, BodyKind::Large) => b.a_large.clone(),
        (_, BodyKind::Sse) => b.a_sse.clone(),
    };
    let mut headers = vec![
        (http::header::HOST, hv(&addr.to_string())),
        (http::header::CONTENT_TYPE, hv("application/json")),
    ];
    // Every Anthropic-format path takes its key in `x-api-key`; they differ only in which key.
    let anthropic_key = match path {
        PathKind::Direct | PathKind::Nginx | PathKind::Floor => Some("k"),
        PathKind::LiteLlm => Some(LITELLM_KEY),
        PathKind::Anthropic => Some(TENANT_KEY),
        PathKind::OpenAi => None,
    };
    match anthropic_key {
        Some(key) => {
            headers.push((HeaderName::from_static("x-api-key"), hv(key)));
            headers.push((
                HeaderName::from_static("anthropic-version"),
                hv("2023-06-01"),
            ));
        }
        None => headers.push((
            http::header::AUTHORIZATION,
            hv(&format!("Bearer {TENANT_KEY}")),
        )),
    }
    for (k, v) in extra {
        headers.push((HeaderName::from_static(k), hv(v)));
    }
    let expect_tail: &'static [u8] = match (path, body) {
        (PathKind::OpenAi, BodyKind::Sse) => b"data: [DONE]",
        (_, BodyKind::Sse) => b"{\"type\":\"message_stop\"}",
        _ => b"}",
    };
    Target {
        addr,
        path: uri.to_string(),
        headers,
        body: payload,
        expect_tail: Some(expect_tail),
    }
}

/// Everything started, stopped on drop.
struct Procs {
    mock: Child,
    nginx: Option<Child>,
    floor: Child,
    litellm: Option<Child>,
    ccgate: Child,
}

fn nginx_conf(dir: &Path, port: u16, mock: SocketAddr, workers: usize) -> String {
    let d = dir.display();
    // SAFETY: geteuid(2) has no arguments and cannot fail.
    let user = if unsafe { libc::geteuid() } == 0 {
        "user root;\n"
    } else {
        ""
    };
    format!(
        r#"# Generated by ccgate-bench: nginx as a plain, fairly tuned reverse proxy in front of the mock.
{user}worker_processes {workers};
worker_rlimit_nofile 65536;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{
    worker_connections 16384;
    multi_accept on;
}}
http {{
    access_log off;
    client_body_temp_path {d}/nginx-body;
    proxy_temp_path {d}/nginx-proxy;
    fastcgi_temp_path {d}/nginx-fastcgi;
    uwsgi_temp_path {d}/nginx-uwsgi;
    scgi_temp_path {d}/nginx-scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    upstream mock {{
        server {mock};
        keepalive 256;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        client_max_body_size 64m;
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
            proxy_buffering off;
        }}
    }}
}}
"#
    )
}

fn write_ccgate_config(dir: &Path, port: u16, mock: SocketAddr) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("server.json"),
        json!({"server": {"port": port, "host": "127.0.0.1"}, "admin": {"password": "benchadmin123"}, "openai": {"enabled": true}})
            .to_string(),
    )?;
    std::fs::write(
        dir.join("upstreams.json"),
        json!({"upstreams": [{"id": "mock", "url": format!("http://{mock}"), "key": "k", "weight": 1}],
               "loadBalancer": {"healthCheckEnabled": false}})
        .to_string(),
    )?;
    std::fs::write(
        dir.join("tenants.json"),
        json!({"tenants": [{"id": "bench", "key": TENANT_KEY, "allowedModels": ["*"]}]})
            .to_string(),
    )?;
    Ok(())
}

/// CCGate, with auth and the SQLite ledger on (a fresh data dir per start).
fn start_ccgate(
    tmp: &Path,
    bins: &Path,
    mock_addr: SocketAddr,
    tag: &str,
    extra_env: &[String],
) -> Result<(Child, SocketAddr)> {
    let port = procs::free_port()?;
    let conf = tmp.join(format!("{tag}-config"));
    let data = tmp.join(format!("{tag}-data"));
    std::fs::create_dir_all(&data)?;
    write_ccgate_config(&conf, port, mock_addr)?;
    let mut cmd = Command::new(bins.join("ccgate"));
    cmd.arg("serve")
        .arg("--config-dir")
        .arg(&conf)
        .arg("--data-dir")
        .arg(&data);
    for kv in extra_env {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--ccgate-env {kv:?}: expected KEY=VALUE"))?;
        cmd.env(k, v);
    }
    let log = tmp.join(format!("{tag}.log"));
    let (ccgate, line) = Child::spawn(
        "ccgate",
        cmd,
        &log,
        "CCGate listening on",
        Duration::from_secs(30),
        libc::SIGKILL,
    )?;
    register(&ccgate);
    let addr = procs::addr_in(&line)?;
    println!(
        "ccgate  pid {} on {addr} (config {}, ledger {})",
        ccgate.pid,
        conf.display(),
        data.display()
    );
    Ok((ccgate, addr))
}

fn start_all(
    args: &Args,
    tmp: &Path,
    bins: &Path,
    notes: &mut Vec<String>,
) -> Result<(Procs, Started)> {
    // Mock.
    let (mock, mock_addr) = spawn_listening(
        bins,
        "ccgate-mock",
        &[
            "--port",
            "0",
            "--config-json",
            r#"{"record":false,"chunks":20}"#,
        ],
        &tmp.join("mock.log"),
    )?;
    println!("mock    pid {} on {mock_addr}", mock.pid);

    // nginx.
    let mut nginx = None;
    let mut nginx_addr = None;
    if args.no_nginx {
        notes.push("nginx skipped (--no-nginx): no nginx rows or ratios.".into());
    } else if let Some(bin) = procs::find_nginx() {
        let port = procs::free_port()?;
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let conf = tmp.join("nginx.conf");
        std::fs::write(&conf, nginx_conf(tmp, port, mock_addr, workers))?;
        let mut cmd = Command::new(&bin);
        cmd.arg("-p")
            .arg(tmp)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(tmp.join("nginx-error.log"));
        // nginx prints nothing when ready: an empty marker returns at once, readiness is probed below.
        let (c, _) = spawn_no_marker("nginx", cmd, &tmp.join("nginx.log"))?;
        register(&c);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        println!(
            "nginx   pid {} on {addr} ({workers} workers, {})",
            c.pid,
            bin.display()
        );
        nginx = Some(c);
        nginx_addr = Some(addr);
    } else {
        let msg = "NOTE: nginx is not installed and could not be installed: the nginx rows and ratios are missing.";
        if !args.smoke {
            bail!("{msg} Install it (apt-get install -y nginx) or pass --no-nginx.");
        }
        eprintln!("{msg}");
        notes.push(msg.into());
    }

    // The hyper floor, with as many workers as CCGate and nginx.
    let (floor, floor_addr) = spawn_listening(
        bins,
        "ccgate-hyper-floor",
        &["--upstream", &mock_addr.to_string()],
        &tmp.join("floor.log"),
    )?;
    println!("floor   pid {} on {floor_addr}", floor.pid);

    let (litellm, litellm_addr) = match &args.litellm {
        Some(bin) => {
            let (c, addr) = start_litellm(bin, tmp, mock_addr)?;
            (Some(c), Some(addr))
        }
        None => (None, None),
    };

    let (ccgate, ccgate_addr) = start_ccgate(tmp, bins, mock_addr, "ccgate", &args.ccgate_env)?;
    Ok((
        Procs {
            mock,
            nginx,
            floor,
            litellm,
            ccgate,
        },
        Started {
            mock: mock_addr,
            nginx: nginx_addr,
            floor: floor_addr,
            litellm: litellm_addr,
            ccgate: ccgate_addr,
        },
    ))
}

/// LiteLLM's proxy in front of the mock, one model (`claude-sonnet-4-6`, what the bench bodies ask for) through its
/// Anthropic provider, a master key, no database, one worker per core (as nginx and CCGate get), and the price
/// table it ships with (no download at start).
fn start_litellm(bin: &Path, tmp: &Path, mock: SocketAddr) -> Result<(Child, SocketAddr)> {
    let port = procs::free_port()?;
    let conf = tmp.join("litellm.yaml");
    std::fs::write(
        &conf,
        format!(
            "model_list:\n  - model_name: claude-sonnet-4-6\n    litellm_params:\n      model: anthropic/claude-sonnet-4-6\n      api_base: http://{mock}\n      api_key: k\ngeneral_settings:\n  master_key: {LITELLM_KEY}\n"
        ),
    )?;
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut cmd = Command::new(bin);
    cmd.arg("--config")
        .arg(&conf)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--num_workers", &workers.to_string()])
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("LITELLM_LOG", "ERROR");
    let (c, _) = Child::spawn(
        "litellm",
        cmd,
        &tmp.join("litellm.log"),
        // On stdout once the config is loaded; uvicorn's workers may still be starting, which the readiness
        // requests below wait for.
        "Proxy initialized with Config",
        Duration::from_secs(180),
        libc::SIGKILL,
    )?;
    register(&c);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    println!(
        "litellm pid {} on {addr} ({workers} workers, {})",
        c.pid,
        bin.display()
    );
    Ok((c, addr))
}

/// Where the started processes listen.
struct Started {
    mock: SocketAddr,
    nginx: Option<SocketAddr>,
    floor: SocketAddr,
    litellm: Option<SocketAddr>,
    ccgate: SocketAddr,
}

/// Starts `bins/name` with `args` and waits for its `<name> listening on http://ADDR` line (the mock's and the
/// floor's).
fn spawn_listening(
    bins: &Path,
    name: &str,
    args: &[&str],
    log: &Path,
) -> Result<(Child, SocketAddr)> {
    let mut cmd = Command::new(bins.join(name));
    cmd.args(args);
    let (child, line) = Child::spawn(
        name,
        cmd,
        log,
        &format!("{name} listening on"),
        Duration::from_secs(20),
        libc::SIGKILL,
    )?;
    register(&child);
    let addr = procs::addr_in(&line)?;
    Ok((child, addr))
}

fn spawn_no_marker(name: &str, cmd: Command, log: &Path) -> Result<(Child, String)> {
    // nginx prints nothing when ready: wait briefly for an early exit; readiness is probed with requests later.
    Child::spawn(
        name,
        cmd,
        log,
        "",
        Duration::from_millis(500),
        libc::SIGTERM,
    )
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(json) = &args.render {
        let results: Value = serde_json::from_slice(
            &std::fs::read(json).with_context(|| format!("read {}", json.display()))?,
        )
        .with_context(|| format!("{} is not a results JSON", json.display()))?;
        if !results["runs"].is_array() {
            bail!(
                "{} has no \"runs\": not a results JSON written by ccgate-bench",
                json.display()
            );
        }
        let out_dir = match &args.out {
            Some(o) => o.clone(),
            None => json.parent().map(Path::to_path_buf).unwrap_or_default(),
        };
        return write_results(results, &out_dir);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()?;
    // Ctrl-C / SIGTERM: stop the children, then exit.
    rt.spawn(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("signal");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        INTERRUPTED.store(true, Ordering::SeqCst);
        eprintln!("\ninterrupted: stopping mock, nginx and ccgate");
        kill_registered();
        std::process::exit(130);
    });
    let res = run(&args, &rt);
    if let Err(e) = &res {
        eprintln!("ccgate-bench: {e:#}");
    }
    let code = match res {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(_) => 2,
    };
    rt.shutdown_timeout(Duration::from_secs(1));
    std::process::exit(code);
}

fn parse_list<T>(s: &Option<String>, all: &[T], name: impl Fn(&T) -> &str) -> Result<Vec<T>>
where
    T: Copy,
{
    let Some(s) = s else { return Ok(all.to_vec()) };
    s.split(',')
        .map(|x| {
            all.iter()
                .copied()
                .find(|t| name(t) == x.trim())
                .with_context(|| format!("unknown item {x:?}"))
        })
        .collect()
}

/// The whole benchmark; Ok(false) if anything had errors.
fn run(args: &Args, rt: &tokio::runtime::Runtime) -> Result<bool> {
    let smoke = args.smoke;
    let rounds_n = args.rounds.unwrap_or(1).max(1);
    let duration = Duration::from_secs_f64(args.duration.unwrap_or(if smoke { 0.5 } else { 3.0 }));
    let warmup = Duration::from_secs_f64(args.warmup.unwrap_or(if smoke { 0.2 } else { 1.0 }));
    let streams_n = args.streams.unwrap_or(if smoke { 100 } else { 1000 });
    let slow_requested = args
        .slow_streams
        .unwrap_or(if smoke { 200 } else { 10_000 });
    let out_dir = args.out.clone().unwrap_or_else(|| {
        if smoke {
            "target/bench-smoke".into()
        } else {
            "bench/results".into()
        }
    });
    let bins = match &args.bin_dir {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("exe dir")?
            .to_path_buf(),
    };
    for b in ["ccgate", "ccgate-mock", "ccgate-hyper-floor"] {
        if !bins.join(b).is_file() {
            bail!("{} not found: build with `cargo build --profile dist -p ccgate -p ccgate-mock -p ccgate-bench` (or use bench/run.sh)", bins.join(b).display());
        }
    }
    let mut notes: Vec<String> = Vec::new();
    let nofile = procs::raise_nofile();
    // CCGate holds two sockets per stream (client + upstream); leave room for the listener, the ledger and stdio.
    let slow_n = slow_requested.min((nofile.saturating_sub(200) / 2) as usize);
    if slow_n < slow_requested {
        let msg = format!(
            "open-file limit is {nofile} (hard limit; `ulimit -n 65536` was refused), so {slow_n} slow streams were held instead of {slow_requested}: CCGate needs two sockets per stream"
        );
        eprintln!("NOTE: {msg}");
        notes.push(msg);
    }

    if smoke {
        notes.push("smoke run: cells of a fraction of a second and a few hundred streams; it checks that every path works, the figures and targets are not meaningful".into());
    }
    let loadavg_before = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string();
    let tmp = std::env::temp_dir().join(format!("ccgate-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    println!(
        "ccgate-bench: {} mode, work dir {}",
        if smoke { "smoke" } else { "full" },
        tmp.display()
    );

    let bodies = Bodies {
        a_small: bodies::anthropic_small(false).into(),
        a_large: bodies::anthropic_large().into(),
        a_sse: bodies::anthropic_small(true).into(),
        o_small: bodies::openai_small(false).into(),
        o_large: bodies::openai_large().into(),
        o_sse: bodies::openai_small(true).into(),
    };
    println!(
        "bodies: small {} B, large {} B (openai {} B), sse {} B",
        bodies.a_small.len(),
        bodies.a_large.len(),
        bodies.o_large.len(),
        bodies.a_sse.len()
    );

    let (mut procs, started) = start_all(args, &tmp, &bins, &mut notes)?;
    let mut env = Env {
        mock: started.mock,
        mock_pid: Some(procs.mock.pid),
        nginx: started.nginx,
        floor: started.floor,
        litellm: started.litellm,
        ccgate: started.ccgate,
        bodies,
    };

    // Readiness and correctness: one request per path and body must succeed.
    let mut paths = vec![PathKind::Direct];
    if env.nginx.is_some() {
        paths.push(PathKind::Nginx);
    }
    paths.push(PathKind::Floor);
    if env.litellm.is_some() {
        paths.push(PathKind::LiteLlm);
    }
    paths.push(PathKind::Anthropic);
    paths.push(PathKind::OpenAi);
    let paths = parse_list(&args.paths, &paths, |p| p.key())?;
    let body_kinds = parse_list(
        &args.bodies,
        &[BodyKind::Small, BodyKind::Large, BodyKind::Sse],
        |b| b.key(),
    )?;
    let conns: Vec<usize> = match &args.conns {
        Some(s) => s
            .split(',')
            .map(|x| x.trim().parse().context("--conns"))
            .collect::<Result<_>>()?,
        None => vec![1, 32, 256],
    };
    // A peer that cannot serve a body loses that body's rows (with a note); any other path failing stops the run.
    let mut unanswered: Vec<(PathKind, BodyKind)> = Vec::new();
    for &p in &paths {
        for &b in &body_kinds {
            let t = target(&env, p, b, &[]);
            // LiteLLM's workers import for many seconds after its master reports the config loaded.
            let patience = if p == PathKind::LiteLlm { 120 } else { 15 };
            let deadline = Instant::now() + Duration::from_secs(patience);
            loop {
                let st = rt.block_on(load::run(&t, 1, Duration::ZERO, Duration::from_millis(50)));
                if st.errors == 0 && st.requests > 0 {
                    break;
                }
                if Instant::now() > deadline {
                    if p == PathKind::LiteLlm {
                        let msg = format!(
                            "LiteLLM never answered the {} body correctly ({:?}); its rows for that body are missing",
                            b.label(),
                            st.error_samples
                        );
                        eprintln!("NOTE: {msg}");
                        notes.push(msg);
                        unanswered.push((p, b));
                        break;
                    }
                    bail!(
                        "{} {} never answered correctly: {:?}",
                        p.name(),
                        b.label(),
                        st.error_samples
                    );
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    if args.no_matrix {
        println!("all paths answer; matrix skipped (--no-matrix)");
    } else {
        println!(
            "all paths answer; running the matrix ({} cells of {:.1}+{:.1} s, {} round(s))",
            paths.len() * body_kinds.len() * conns.len(),
            warmup.as_secs_f64(),
            duration.as_secs_f64(),
            rounds_n
        );
    }

    let ccgate_pid = procs.ccgate.pid;
    let mock_pid = procs.mock.pid;
    let nginx_pid = procs.nginx.as_ref().map(|c| c.pid);
    let floor_pid = procs.floor.pid;
    let litellm_pid = procs.litellm.as_ref().map(|c| c.pid);
    let self_pid = std::process::id();
    let mut all_rounds: Vec<Vec<Value>> = Vec::new();
    let mut all_ok = true;
    // Children of this process, so not the tree of `self_pid` (that would count them twice). The stream checks run
    // on a fresh ccgate, hence the argument.
    let ours_with = |ccgate_pid: u32| -> Vec<u32> {
        [
            Some(mock_pid),
            Some(ccgate_pid),
            Some(floor_pid),
            nginx_pid,
            litellm_pid,
        ]
        .into_iter()
        .flatten()
        .collect()
    };
    let ours_pids = ours_with(ccgate_pid);
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    let rounds = if args.no_matrix { 0 } else { rounds_n };
    let max_retries = args.retries.unwrap_or(if smoke { 0 } else { 4 });
    for round in 0..rounds {
        if rounds > 1 {
            println!("round {} of {rounds}", round + 1);
        }
        let mut runs: Vec<Value> = Vec::new();
        for &b in &body_kinds {
            for &c in &conns {
                for &p in &paths {
                    if INTERRUPTED.load(Ordering::SeqCst) {
                        bail!("interrupted");
                    }
                    if unanswered.contains(&(p, b)) {
                        continue;
                    }
                    // Re-measure a cell (bounded) while other workloads take more than --max-foreign % of the
                    // machine; keep the quietest attempt.
                    let mut kept: Option<Value> = None;
                    for attempt in 0..=max_retries {
                        let t = target(&env, p, b, &[]);
                        let proxy_pid = match p {
                            PathKind::Direct => None,
                            PathKind::Nginx => nginx_pid,
                            PathKind::Floor => Some(floor_pid),
                            PathKind::LiteLlm => litellm_pid,
                            _ => Some(ccgate_pid),
                        };
                        let ours = ours_pids.clone();
                        let (st, cpu) = rt.block_on(async {
                            let sampler = tokio::spawn(async move {
                                tokio::time::sleep(warmup).await;
                                let a = sample_cpu(proxy_pid, mock_pid, self_pid, &ours);
                                tokio::time::sleep(duration).await;
                                let b = sample_cpu(proxy_pid, mock_pid, self_pid, &ours);
                                let mut d = [0.0; 5];
                                for i in 0..5 {
                                    d[i] = b[i] - a[i];
                                }
                                d
                            });
                            let st = load::run(&t, c, warmup, duration).await;
                            (st, sampler.await.unwrap_or([0.0; 5]))
                        });
                        if let (PathKind::LiteLlm, Some(pid)) = (p, litellm_pid) {
                            wait_until_idle(pid, "LiteLLM");
                        }
                        let per_req = |s: f64| {
                            if st.requests > 0 {
                                s * 1e6 / st.requests as f64
                            } else {
                                0.0
                            }
                        };
                        let row = json!({
                            "path": p.key(), "body": b.key(), "conns": c,
                            "requests": st.requests, "errors": st.errors, "reconnects": st.reconnects,
                            "rps": round1(st.rps()),
                            "p50_us": round1(st.lat_us(0.5)), "p90_us": round1(st.lat_us(0.9)), "p99_us": round1(st.lat_us(0.99)),
                            "p999_us": round1(st.lat_us(0.999)), "max_us": round1(st.latency.max() as f64 / 1000.0),
                            "ttfb_p50_us": round1(st.ttfb_us(0.5)), "ttfb_p99_us": round1(st.ttfb_us(0.99)),
                            "proxy_cpu_us_per_req": proxy_pid.map(|_| round1(per_req(cpu[0]))),
                            "mock_cpu_us_per_req": round1(per_req(cpu[1])),
                            "loadgen_cpu_us_per_req": round1(per_req(cpu[2])),
                            // CPU used on the machine by anything but the bench, the mock, nginx and ccgate, in % of
                            // all cores over the measured window: other workloads sharing the machine.
                            "foreign_cpu_pct": round1(((cpu[4] - cpu[3]).max(0.0) / (ncpu * duration.as_secs_f64()) * 100.0).min(100.0)),
                            "bytes_per_req": st.bytes.checked_div(st.requests).unwrap_or(0),
                            "error_samples": st.error_samples,
                        });
                        println!(
                        "{:<18} {:<6} c={:<4} {:>9.0} req/s  p50 {:>8.1} µs  p99 {:>8.1} µs  ttfb p50 {:>7.1} µs  cpu {:>6} µs/req  errors {}",
                        p.name(),
                        b.label(),
                        c,
                        st.rps(),
                        st.lat_us(0.5),
                        st.lat_us(0.99),
                        st.ttfb_us(0.5),
                        proxy_pid.map(|_| format!("{:.1}", per_req(cpu[0]))).unwrap_or_else(|| "-".into()),
                        st.errors
                    );
                        if st.errors > 0 {
                            // A peer's failures are its own result, not a failure of the benchmark.
                            if p != PathKind::LiteLlm {
                                all_ok = false;
                            }
                            eprintln!("  errors: {:?}", st.error_samples);
                        }
                        let quieter = kept.as_ref().is_none_or(|k| {
                            row["foreign_cpu_pct"].as_f64().unwrap_or(0.0)
                                < k["foreign_cpu_pct"].as_f64().unwrap_or(0.0)
                        });
                        let noisy =
                            row["foreign_cpu_pct"].as_f64().unwrap_or(0.0) > args.max_foreign;
                        let mut row = row;
                        row["attempts"] = json!(attempt + 1);
                        if quieter {
                            kept = Some(row);
                        }
                        if !noisy || attempt == max_retries {
                            break;
                        }
                        println!(
                            "    (noisy: other workloads took {:.0} % of the machine or more; measuring again)",
                            kept.as_ref()
                                .and_then(|k| k["foreign_cpu_pct"].as_f64())
                                .unwrap_or(0.0)
                        );
                        std::thread::sleep(Duration::from_secs(2));
                    }
                    let row = kept.expect("one attempt");
                    runs.push(row);
                    if !procs.ccgate.alive() || !procs.mock.alive() {
                        bail!(
                            "ccgate or the mock died during {} {} c={c}; logs in {}",
                            p.name(),
                            b.label(),
                            tmp.display()
                        );
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        all_rounds.push(runs);
    }
    let runs = pick_rows(all_rounds);
    let matrix_peak = procs::status_mib(ccgate_pid, "VmHWM");
    let nginx_peak = nginx_pid.map(|p| procs::tree_status_mib(p, "VmHWM"));

    let matrix_rss_end = procs::status_mib(ccgate_pid, "VmRSS");
    if !procs.ccgate.alive() {
        all_ok = false;
        notes.push("ccgate was not running at the end of the matrix".into());
    }

    // Memory with many concurrent streams, on a fresh ccgate (the matrix's 75 KB bodies at c=256 leave the
    // allocator with a large heap that says nothing about streams).
    let mut streams_json = Vec::new();
    let mut slow_json = Value::Null;
    let mut slow_direct_json = Value::Null;
    let mut slow_h2_json = Value::Null;
    let mut ccgate_pid = ccgate_pid;
    let mut fresh_rss = None;
    if !args.no_streams {
        procs.ccgate.stop(Duration::from_secs(3));
        let (c, addr) = start_ccgate(&tmp, &bins, env.mock, "ccgate-streams", &args.ccgate_env)?;
        ccgate_pid = c.pid;
        procs.ccgate = c;
        env.ccgate = addr;
        // One request each way so the fresh process has its pools and lazies set up before the baseline.
        // A slow start (a valgrind wrapper via --bin-dir, say) gets a few seconds before this counts as a failure.
        for p in [PathKind::Anthropic, PathKind::OpenAi] {
            let mut attempts = 0;
            let st = loop {
                let st = rt.block_on(load::run(
                    &target(&env, p, BodyKind::Sse, &[]),
                    1,
                    Duration::ZERO,
                    Duration::from_millis(100),
                ));
                attempts += 1;
                if (st.errors == 0 && st.requests > 0) || attempts >= 50 {
                    break st;
                }
                std::thread::sleep(Duration::from_millis(100));
            };
            if st.errors > 0 || st.requests == 0 {
                bail!(
                    "fresh ccgate does not answer on {}: {:?}",
                    p.name(),
                    st.error_samples
                );
            }
        }
        fresh_rss = Some(procs::status_mib(ccgate_pid, "VmRSS"));
        let mut stream_paths = Vec::new();
        if let Some(np) = nginx_pid {
            stream_paths.push((PathKind::Nginx, np));
        }
        stream_paths.push((PathKind::Anthropic, ccgate_pid));
        stream_paths.push((PathKind::OpenAi, ccgate_pid));
        for (p, pid) in stream_paths {
            let t = target(&env, p, BodyKind::Sse, &[]);
            // nginx: master + workers, summed.
            let pids = procs::tree(pid);
            let reset = pids.iter().all(|&x| procs::reset_peak(x));
            let rss0: f64 = pids.iter().map(|&x| procs::status_mib(x, "VmRSS")).sum();
            let ours = ours_with(ccgate_pid);
            let f0 = foreign_sample(&ours);
            let st = rt.block_on(load::run(&t, streams_n, warmup, duration));
            let foreign = foreign_pct(f0, foreign_sample(&ours), warmup + duration);
            let peak: f64 = pids.iter().map(|&x| procs::status_mib(x, "VmHWM")).sum();
            println!(
                "{} concurrent fast streams on {}: {:.0} streams/s, peak RSS {:.1} MiB (before {:.1} MiB), errors {}",
                streams_n,
                p.name(),
                st.rps(),
                peak,
                rss0,
                st.errors
            );
            if st.errors > 0 {
                all_ok = false;
                eprintln!("  errors: {:?}", st.error_samples);
            }
            streams_json.push(json!({
                "path": p.key(), "streams": streams_n, "rps": round1(st.rps()), "errors": st.errors,
                "p50_us": round1(st.lat_us(0.5)), "p99_us": round1(st.lat_us(0.99)),
                "peak_rss_mib": round1(peak), "rss_before_mib": round1(rss0), "peak_was_reset": reset,
                "error_samples": st.error_samples, "foreign_cpu_pct": round1(foreign),
            }));
            std::thread::sleep(Duration::from_millis(500));
        }

        // Many slow streams, each client holding its own stream open: first straight to the mock (the baseline:
        // what the mock, the kernel and the load generator manage), then through ccgate.
        let mut slow_paths = vec![PathKind::Anthropic];
        if !args.no_slow_baseline {
            slow_paths.insert(0, PathKind::Direct);
        }
        for sp in slow_paths {
            let watch_pid = if sp == PathKind::Direct {
                mock_pid
            } else {
                ccgate_pid
            };
            let run = SlowRun {
                path: sp,
                n: slow_n,
                delay_ms: args.slow_event_delay_ms,
                h2_streams_per_conn: None,
            };
            let v = slow_streams(rt, &env, run, watch_pid, &mut all_ok);
            if sp == PathKind::Direct {
                slow_direct_json = v;
            } else {
                slow_json = v;
                slow_json["requested"] = json!(slow_requested);
                slow_json["nofile_limit"] = json!(nofile);
            }
        }
        // The same through ccgate over HTTP/2: every requested stream, whatever the fd limit, as ccgate then
        // holds one client socket per connection and one upstream socket per stream.
        if args.slow_h2_streams_per_conn > 0 {
            std::thread::sleep(Duration::from_secs(2));
            let run = SlowRun {
                path: PathKind::Anthropic,
                n: slow_requested.min(nofile.saturating_sub(200) as usize),
                delay_ms: args.slow_event_delay_ms,
                h2_streams_per_conn: Some(args.slow_h2_streams_per_conn),
            };
            slow_h2_json = slow_streams(rt, &env, run, ccgate_pid, &mut all_ok);
            slow_h2_json["requested"] = json!(slow_requested);
        }
    }

    let ccgate_ok = procs.ccgate.alive();
    let final_rss = procs::status_mib(ccgate_pid, "VmRSS");
    if let Some(n) = procs.nginx.as_mut() {
        n.stop(Duration::from_secs(3));
    }
    procs.floor.stop(Duration::from_secs(1));
    if let Some(l) = procs.litellm.as_mut() {
        l.stop(Duration::from_secs(3));
    }
    procs.ccgate.stop(Duration::from_secs(3));
    procs.mock.stop(Duration::from_secs(1));
    if !ccgate_ok {
        all_ok = false;
        notes.push("ccgate was not running at the end of the benchmark".into());
    }

    let settings = json!({
        "mode": if smoke { "smoke" } else { "full" },
        "duration_s": duration.as_secs_f64(), "warmup_s": warmup.as_secs_f64(), "rounds": rounds_n,
        "client_threads": args.client_threads, "streams": streams_n,
        "slow_streams": slow_n, "slow_streams_requested": slow_requested, "nofile_limit": nofile,
        "bodies_bytes": {
            "anthropic_small": env.bodies.a_small.len(), "anthropic_large": env.bodies.a_large.len(),
            "anthropic_sse": env.bodies.a_sse.len(), "openai_small": env.bodies.o_small.len(),
            "openai_large": env.bodies.o_large.len(), "openai_sse": env.bodies.o_sse.len(),
        },
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "ccgate_env": args.ccgate_env,
        "git": git_describe(),
        "loadavg_before": loadavg_before,
    });
    let results = json!({
        "timestamp_unix": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "machine": procs::machine(),
        "settings": settings,
        "notes": notes,
        "runs": runs,
        "ccgate": {
            "peak_rss_mib_matrix": round1(matrix_peak),
            "rss_after_matrix_mib": round1(matrix_rss_end),
            "fresh_rss_mib": fresh_rss.map(round1),
            "rss_end_mib": round1(final_rss),
            "streams": streams_json,
            "slow_streams": slow_json,
            "slow_streams_direct_baseline": slow_direct_json,
            "slow_streams_h2": slow_h2_json,
        },
        "nginx": { "peak_rss_mib_matrix_all_processes": nginx_peak.map(round1) },
    });
    write_results(results, &out_dir)?;
    if all_ok {
        let _ = std::fs::remove_dir_all(&tmp);
    } else {
        println!("ERRORS were recorded; logs kept in {}", tmp.display());
    }
    Ok(all_ok)
}

/// Per cell, the quietest round: the one where other workloads on the machine used the least CPU (its
/// latencies and CPU figures come along, so a row stays one consistent measurement). Errors are summed over the
/// rounds, and every round's throughput and foreign CPU are kept.
fn pick_rows(rounds: Vec<Vec<Value>>) -> Vec<Value> {
    let Some(first) = rounds.first() else {
        return Vec::new();
    };
    if rounds.len() == 1 {
        return first.clone();
    }
    (0..first.len())
        .map(|i| {
            let cells: Vec<&Value> = rounds.iter().filter_map(|r| r.get(i)).collect();
            let errors: u64 = cells.iter().filter_map(|c| c["errors"].as_u64()).sum();
            let all: Vec<f64> = cells.iter().filter_map(|c| c["rps"].as_f64()).collect();
            let foreign: Vec<f64> = cells
                .iter()
                .filter_map(|c| c["foreign_cpu_pct"].as_f64())
                .collect();
            let best = cells
                .iter()
                .min_by(|a, b| {
                    let fa = a["foreign_cpu_pct"].as_f64().unwrap_or(0.0);
                    let fb = b["foreign_cpu_pct"].as_f64().unwrap_or(0.0);
                    fa.partial_cmp(&fb).unwrap_or(std::cmp::Ordering::Equal)
                })
                .expect("one round");
            let mut row = (*best).clone();
            row["errors"] = json!(errors);
            row["rps_rounds"] = json!(all);
            row["foreign_cpu_pct_rounds"] = json!(foreign);
            row
        })
        .collect()
}

/// One slow-stream run: `n` streams on `path`, `delay_ms` between events, over HTTP/1.1 or (with
/// `h2_streams_per_conn`) HTTP/2.
struct SlowRun {
    path: PathKind,
    n: usize,
    delay_ms: u64,
    h2_streams_per_conn: Option<usize>,
}

/// Holds a [`SlowRun`]'s streams and watches `pid` (the server side: ccgate, or the mock for direct).
fn slow_streams(
    rt: &tokio::runtime::Runtime,
    env: &Env,
    run: SlowRun,
    pid: u32,
    all_ok: &mut bool,
) -> Value {
    let SlowRun {
        path,
        n,
        delay_ms,
        h2_streams_per_conn,
    } = run;
    let delay = delay_ms.to_string();
    let t = target(
        env,
        path,
        BodyKind::Sse,
        &[("x-mock-event-delay-ms", delay.as_str())],
    );
    std::thread::sleep(Duration::from_millis(500));
    let reset = procs::reset_peak(pid);
    let rss0 = procs::status_mib(pid, "VmRSS");
    let drops0 = procs::listen_drops();
    let ramp = if n >= 2000 { 2.5 } else { 1.0 };
    let rate = (n as f64 / ramp).max(1.0);
    let open = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut max_rss, mut max_fds) = (0.0f64, 0usize);
            while !stop.load(Ordering::Relaxed) {
                max_rss = max_rss.max(procs::status_mib(pid, "VmRSS"));
                max_fds = max_fds.max(procs::fd_count(pid));
                std::thread::sleep(Duration::from_millis(100));
            }
            (max_rss, max_fds)
        })
    };
    let cpu0 = procs::cpu_seconds(pid);
    let limit = Duration::from_secs_f64(ramp + 60.0);
    println!(
        "holding {n} slow streams ({delay_ms} ms between events) on {}{}...",
        path.name(),
        h2_streams_per_conn.map_or(String::new(), |k| format!(
            " over HTTP/2, {k} per connection"
        ))
    );
    let mut ours: Vec<u32> = [env.mock_pid, Some(pid)].into_iter().flatten().collect();
    ours.sort_unstable();
    ours.dedup();
    let f0 = foreign_sample(&ours);
    let t0 = Instant::now();
    let hs = rt.block_on(load::hold_streams(
        &t,
        n,
        rate,
        limit,
        open,
        h2_streams_per_conn,
    ));
    let foreign = foreign_pct(f0, foreign_sample(&ours), t0.elapsed());
    stop.store(true, Ordering::Relaxed);
    let (max_rss, max_fds) = sampler.join().unwrap_or_default();
    let cpu = procs::cpu_seconds(pid) - cpu0;
    let peak = procs::status_mib(pid, "VmHWM");
    let drops = procs::listen_drops().saturating_sub(drops0);
    println!(
        "  {} started, {} completed, {} errors, peak open {}, server peak RSS {:.1} MiB, peak fds {}, TTFB p50 {:.1} ms p99 {:.1} ms, stream p50 {:.2} s, listen drops {}, wall {:.1} s",
        hs.started,
        hs.completed,
        hs.errors,
        hs.peak_open,
        peak,
        max_fds,
        hs.ttfb.value_at_quantile(0.5) as f64 / 1e6,
        hs.ttfb.value_at_quantile(0.99) as f64 / 1e6,
        hs.duration.value_at_quantile(0.5) as f64 / 1e9,
        drops,
        hs.wall.as_secs_f64()
    );
    if hs.errors > 0 {
        *all_ok = false;
        eprintln!("  errors: {:?}", hs.error_samples);
    }
    json!({
        "path": path.key(), "streams": n, "event_delay_ms": delay_ms, "ramp_s": ramp,
        "h2_streams_per_conn": h2_streams_per_conn,
        "completed": hs.completed, "errors": hs.errors, "peak_open": hs.peak_open,
        "peak_rss_mib": round1(peak), "sampled_max_rss_mib": round1(max_rss), "rss_before_mib": round1(rss0),
        "peak_was_reset": reset, "peak_fds": max_fds, "listen_drops": drops,
        "ttfb_p50_ms": round1(hs.ttfb.value_at_quantile(0.5) as f64 / 1e6),
        "ttfb_p99_ms": round1(hs.ttfb.value_at_quantile(0.99) as f64 / 1e6),
        "stream_p50_s": (hs.duration.value_at_quantile(0.5) as f64 / 1e7).round() / 100.0,
        "stream_max_s": (hs.duration.max() as f64 / 1e7).round() / 100.0,
        "server_cpu_s": round1(cpu * 10.0) / 10.0, "wall_s": round1(hs.wall.as_secs_f64()),
        "error_samples": hs.error_samples, "foreign_cpu_pct": round1(foreign),
    })
}

/// The commit measured, with a `+dirty` mark if the workspace has local changes.
fn git_describe() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    let mut s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if s.is_empty() {
        return None;
    }
    let st = Command::new("git")
        .args([
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            "crates",
        ])
        .output()
        .ok()?;
    if !st.stdout.is_empty() {
        s.push_str("+dirty");
    }
    Some(s)
}

/// (machine busy, ours) CPU seconds, for [`foreign_pct`].
fn foreign_sample(ours: &[u32]) -> (f64, f64) {
    let mine = procs::cpu_seconds(std::process::id())
        + ours
            .iter()
            .map(|&p| procs::tree_cpu_seconds(p))
            .sum::<f64>();
    (procs::machine_busy_seconds(), mine)
}

/// CPU used by other workloads between two samples, in % of all cores.
fn foreign_pct(a: (f64, f64), b: (f64, f64), over: Duration) -> f64 {
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    (((b.0 - a.0) - (b.1 - a.1)).max(0.0) / (ncpu * over.as_secs_f64().max(1e-3)) * 100.0)
        .min(100.0)
}

/// [proxy tree, mock, load generator, all of ours, whole machine busy] CPU seconds.
/// Waits (up to two minutes) until `pid` and its children use less than 5 % of a core. A Python proxy keeps working
/// through the requests queued in it after the load generator has hung up, and would otherwise take CPU from the
/// cells measured after it.
fn wait_until_idle(pid: u32, name: &str) {
    let step = Duration::from_millis(500);
    let started = Instant::now();
    let mut last = procs::tree_cpu_seconds(pid);
    while started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(step);
        let now = procs::tree_cpu_seconds(pid);
        if now - last < 0.05 * step.as_secs_f64() {
            if started.elapsed() > Duration::from_secs(2) {
                println!(
                    "    ({name} went idle after {:.1} s)",
                    started.elapsed().as_secs_f64()
                );
            }
            return;
        }
        last = now;
    }
    println!("    ({name} still busy after 120 s; the next cells share the machine with it)");
}

fn sample_cpu(proxy: Option<u32>, mock: u32, me: u32, ours: &[u32]) -> [f64; 5] {
    [
        proxy.map(procs::tree_cpu_seconds).unwrap_or(0.0),
        procs::cpu_seconds(mock),
        procs::cpu_seconds(me),
        procs::cpu_seconds(me)
            + ours
                .iter()
                .map(|&p| procs::tree_cpu_seconds(p))
                .sum::<f64>(),
        procs::machine_busy_seconds(),
    ]
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Adds the ratios and targets to `results`, writes `latest.json` and `latest.md` into `out_dir` and prints the
/// summary.
fn write_results(results: Value, out_dir: &Path) -> Result<()> {
    let results = report::with_ratios_and_targets(results);
    std::fs::create_dir_all(out_dir).with_context(|| format!("create {}", out_dir.display()))?;
    let json_path = out_dir.join("latest.json");
    let md_path = out_dir.join("latest.md");
    std::fs::write(&json_path, serde_json::to_string_pretty(&results)? + "\n")?;
    std::fs::write(&md_path, report::markdown(&results))?;
    println!("\n{}", report::summary(&results));
    println!("wrote {} and {}", json_path.display(), md_path.display());
    Ok(())
}
