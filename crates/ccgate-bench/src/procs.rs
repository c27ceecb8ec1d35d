//! Child processes (mock, nginx, ccgate) and what /proc says about them.
//!
//! Every child runs in its own process group with a parent-death signal, so it is stopped when the bench ends,
//! fails, is interrupted, or is killed. [`Child`]'s `Drop` stops the group (TERM, then KILL).

use anyhow::{anyhow, bail, Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct Child {
    pub pid: u32,
    inner: Option<std::process::Child>,
}

impl Child {
    /// Spawns `cmd` with stdout piped (for the readiness line) and stderr to `log`, then waits up to `timeout`
    /// for a stdout line containing `ready`. Returns the child and that line. With an empty `ready` (a child that
    /// prints nothing), returns once it is still running after `timeout`; the caller probes readiness.
    pub fn spawn(
        name: &str,
        mut cmd: Command,
        log: &Path,
        ready: &str,
        timeout: Duration,
        pdeath: i32,
    ) -> Result<(Child, String)> {
        let err =
            std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, pdeath as libc::c_ulong, 0, 0, 0);
                Ok(())
            });
        }
        let mut child = cmd.spawn().with_context(|| format!("start {name}"))?;
        let pid = child.id();
        let stdout = child.stdout.take().expect("piped");
        let mut me = Child {
            pid,
            inner: Some(child),
        };
        let (tx, rx) = mpsc::channel();
        let ready_marker = ready.to_string();
        let mut out_log = std::fs::OpenOptions::new().append(true).open(log).ok();
        // Reads stdout for the whole life of the child (a full pipe would block it).
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(f) = out_log.as_mut() {
                    let _ = writeln!(f, "[stdout] {line}");
                }
                if !ready_marker.is_empty() && line.contains(&ready_marker) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(line);
                    }
                }
            }
        });
        let deadline = Instant::now() + timeout;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => return Ok((me, line)),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {}
            }
            if let Some(st) = me.inner.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let tail = std::fs::read_to_string(log).unwrap_or_default();
                let tail: String = tail
                    .lines()
                    .rev()
                    .take(15)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                bail!(
                    "{name} exited before it was ready ({st}); log {}:\n{tail}",
                    log.display()
                );
            }
            if Instant::now() > deadline {
                if ready.is_empty() {
                    return Ok((me, String::new()));
                }
                bail!("{name} not ready after {timeout:?}; see {}", log.display());
            }
        }
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.inner.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// TERM to the child's process group, then KILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut c) = self.inner.take() else {
            return;
        };
        let pgid = self.pid as i32;
        // SAFETY: kill(2) takes plain integers and touches no memory of ours.
        unsafe {
            libc::kill(-pgid, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Whatever is left in the group (nginx workers, a hung child) goes now.
        // SAFETY: as above.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(2));
    }
}

/// A free TCP port on 127.0.0.1 (bound and released; a race with another process is possible but unlikely).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Parses `http://HOST:PORT` out of a readiness line.
pub fn addr_in(line: &str) -> Result<std::net::SocketAddr> {
    let i = line
        .find("http://")
        .ok_or_else(|| anyhow!("no address in {line:?}"))?;
    let rest = &line[i + 7..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '/')
        .unwrap_or(rest.len());
    rest[..end]
        .parse()
        .with_context(|| format!("address in {line:?}"))
}

/// The process and its descendants (nginx: master + workers).
pub fn tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for t in tasks.flatten() {
                let path = t.path().join("children");
                if let Ok(s) = std::fs::read_to_string(path) {
                    out.extend(s.split_whitespace().filter_map(|x| x.parse::<u32>().ok()));
                }
            }
        }
        i += 1;
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf(3) takes a constant and returns a number.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of one process, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let Some(i) = s.rfind(')') else { return 0.0 };
    let f: Vec<&str> = s[i + 2..].split_whitespace().collect();
    // After ')': state(0) ppid(1) ... utime is field 14 overall → index 11 here, stime index 12.
    let ut: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    let st: f64 = f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    (ut + st) / clk_tck()
}

/// Sum of utime + stime over the process tree.
pub fn tree_cpu_seconds(pid: u32) -> f64 {
    tree(pid).into_iter().map(cpu_seconds).sum()
}

/// A `kB` field of /proc/PID/status (VmHWM, VmRSS), in MiB.
pub fn status_mib(pid: u32, field: &str) -> f64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0.0;
    };
    for line in s.lines() {
        if let Some(rest) = line.strip_prefix(field).and_then(|r| r.strip_prefix(':')) {
            let kb: f64 = rest
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .unwrap_or(0.0);
            return kb / 1024.0;
        }
    }
    0.0
}

pub fn tree_status_mib(pid: u32, field: &str) -> f64 {
    tree(pid).into_iter().map(|p| status_mib(p, field)).sum()
}

/// Resets VmHWM to the current RSS (`echo 5 > /proc/PID/clear_refs`), so the next peak is the next phase's.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Open file descriptors of a process.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Raises this process's soft open-file limit to its hard limit; returns the resulting soft limit.
pub fn raise_nofile() -> u64 {
    // SAFETY: getrlimit/setrlimit read and write only the local `rlimit` passed by reference.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 1024;
        }
        let want = r.rlim_max.min(1 << 20);
        if r.rlim_cur < want {
            let n = libc::rlimit {
                rlim_cur: want,
                rlim_max: r.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &n) == 0 {
                r.rlim_cur = want;
            }
        }
        r.rlim_cur
    }
}

/// `nginx` from PATH or the usual sbin folders.
pub fn find_nginx() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push("/usr/sbin".into());
    dirs.push("/usr/local/sbin".into());
    dirs.push("/usr/local/nginx/sbin".into());
    dirs.into_iter()
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
}

/// Machine facts for the report.
pub fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).trim().to_string())
        })
        .unwrap_or_default();
    let mem_kb: f64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:").map(|r| {
                r.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .unwrap_or(0.0)
            })
        })
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    serde_json::json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "cpu_model": model,
        "mem_gib": (mem_kb / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "kernel": kernel,
    })
}

/// TcpExt ListenOverflows + ListenDrops from /proc/net/netstat (connections refused by a full accept queue).
pub fn listen_drops() -> u64 {
    let s = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let lines: Vec<&str> = s.lines().filter(|l| l.starts_with("TcpExt:")).collect();
    if lines.len() < 2 {
        return 0;
    }
    let names: Vec<&str> = lines[0].split_whitespace().collect();
    let vals: Vec<&str> = lines[1].split_whitespace().collect();
    names
        .iter()
        .zip(vals.iter())
        .filter(|(n, _)| **n == "ListenOverflows" || **n == "ListenDrops")
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum()
}

/// CPU seconds the whole machine spent in processes (user, nice, system, steal), from /proc/stat. Interrupt and
/// softirq time is left out: it is not charged to any process (loopback traffic of our own shows up there).
pub fn machine_busy_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = s.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: f64 = [0usize, 1, 2, 7].iter().filter_map(|&i| v.get(i)).sum();
    busy / clk_tck() - kernel_threads_cpu_seconds()
}

/// utime + stime of the kernel's own threads (kthreadd and its children: ksoftirqd, kworkers), which do work
/// for our traffic too.
fn kernel_threads_cpu_seconds() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let mut total = 0.0;
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(st) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(i) = st.rfind(')') else { continue };
        let f: Vec<&str> = st[i + 2..].split_whitespace().collect();
        let ppid: u32 = f.get(1).and_then(|x| x.parse().ok()).unwrap_or(0);
        if pid == 2 || ppid == 2 {
            let ut: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0);
            let stt: f64 = f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
            total += ut + stt;
        }
    }
    total / clk_tck()
}
