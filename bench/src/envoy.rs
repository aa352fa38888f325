//! One Envoy under measurement: started from a bootstrap on loopback ports with one worker
//! (optionally pinned to a CPU of its own), its CPU time and resident memory read from
//! `/proc`, killed when dropped.
//!
//! The e2e harness's `Gateway` starts Envoy only in its own shape (the modelgate filter in
//! front of stand-in model servers); the benchmark needs other chains, so it starts Envoy
//! itself and takes the binary, the filter build and the ECDS documents from the harness.

use std::fs;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use modelgate_e2e::bootstrap::FILTER_NAME;
use modelgate_e2e::{Client, Request, locate};
use serde_json::Value;

/// How long Envoy may take to start (100,000 models included) or apply a configuration.
const DEADLINE: Duration = Duration::from_secs(120);

/// A running Envoy.
pub struct Envoy {
    child: Child,
    dir: PathBuf,
    admin: SocketAddr,
    listener: SocketAddr,
    started: Instant,
}

impl Envoy {
    /// Starts Envoy with `bootstrap` written into `dir` (its log goes there too), with
    /// `workers` worker threads, pinned to `cpu` when given, and waits until it is ready.
    pub fn start(dir: &Path, bootstrap: &Value, workers: u32, cpu: Option<usize>) -> Result<Self> {
        let binary = locate::envoy_binary()?;
        fs::create_dir_all(dir)?;
        let bootstrap_file = dir.join("bootstrap.json");
        fs::write(&bootstrap_file, serde_json::to_vec_pretty(bootstrap)?)?;
        let admin_file = dir.join("admin-address");
        let _ = fs::remove_file(&admin_file);
        let log = fs::File::create(dir.join("envoy.log"))?;
        let mut command = Command::new(&binary);
        command
            .arg("-c")
            .arg(&bootstrap_file)
            .args(["--concurrency", &workers.max(1).to_string()])
            .args(["-l", "warning"])
            .arg("--disable-hot-restart")
            .arg("--admin-address-path")
            .arg(&admin_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        pin_and_die_with_parent(&mut command, cpu);
        let started = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let mut envoy = Self {
            child,
            dir: dir.to_path_buf(),
            admin: ([127, 0, 0, 1], 0).into(),
            listener: ([127, 0, 0, 1], 0).into(),
            started,
        };
        envoy.admin = envoy.wait_until_ready(&admin_file)?;
        envoy.listener = envoy.listener_address()?;
        Ok(envoy)
    }

    fn wait_until_ready(&mut self, admin_file: &Path) -> Result<SocketAddr> {
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(self.failure(&format!("Envoy exited at startup ({status})")));
            }
            if let Some(admin) = fs::read_to_string(admin_file)
                .ok()
                .and_then(|a| a.trim().parse::<SocketAddr>().ok())
                && Client::new(admin)
                    .send(&Request::get("/ready"))
                    .is_ok_and(|r| r.status == 200)
            {
                return Ok(admin);
            }
            if self.started.elapsed() > DEADLINE {
                bail!(self.failure("Envoy did not become ready"));
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn listener_address(&self) -> Result<SocketAddr> {
        let listeners = self.admin_get("/listeners?format=json")?;
        let listeners: Value = serde_json::from_str(&listeners)?;
        let port =
            listeners["listener_statuses"][0]["local_address"]["socket_address"]["port_value"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .with_context(|| format!("no listener port in {listeners}"))?;
        Ok(([127, 0, 0, 1], port).into())
    }

    /// A GET on the admin interface, its body.
    pub fn admin_get(&self, path: &str) -> Result<String> {
        let response = Client::new(self.admin).send(&Request::get(path))?;
        if response.status != 200 {
            bail!("admin {path}: {}", response.summary());
        }
        Ok(response.text())
    }

    /// An error message carrying the end of Envoy's log.
    pub fn failure(&self, what: &str) -> String {
        let log = fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "{what}; log {}:\n{}",
            self.dir.join("envoy.log").display(),
            tail.join("\n")
        )
    }

    /// The address clients send requests to.
    pub fn address(&self) -> SocketAddr {
        self.listener
    }

    /// When the process was spawned.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Envoy's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time used so far by every thread of Envoy (user + system), in microseconds, at
    /// the kernel's clock-tick resolution.
    pub fn cpu_micros(&self) -> Result<u64> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        cpu_micros_of_stat(&stat, clock_ticks_per_second())
            .with_context(|| format!("unexpected /proc/{}/stat: {stat}", self.pid()))
    }

    /// Resident memory (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        rss_kib_of_status(&status)
            .with_context(|| format!("no VmRSS in /proc/{}/status", self.pid()))
    }

    /// Envoy's allocator (tcmalloc) from its `/memory`: what it holds live, and all it
    /// holds, live or freed and kept for reuse.
    pub fn heap(&self) -> Result<Heap> {
        let memory: Value = serde_json::from_str(&self.admin_get("/memory")?)?;
        let bytes = |field: &str| {
            memory[field]
                .as_str()
                .and_then(|a| a.parse().ok())
                .with_context(|| format!("no {field} in /memory: {memory}"))
        };
        Ok(Heap {
            allocated: bytes("allocated")?,
            size: bytes("heap_size")?.saturating_sub(bytes("pageheap_unmapped")?),
        })
    }

    /// The ECDS version Envoy has applied to the Wasm filter slot, and how many updates it
    /// rejected.
    pub fn ecds_state(&self) -> Result<(String, u64)> {
        let prefix = format!("extension_config_discovery.http_filter.{FILTER_NAME}.");
        let text = self.admin_get(&format!("/stats?filter=^{}", prefix.replace('.', "\\.")))?;
        let (mut version, mut rejected) = (String::new(), 0);
        for line in text.lines() {
            let Some((name, value)) = line.split_once(": ") else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match name.strip_prefix(&prefix) {
                Some("version_text") => version = value.to_string(),
                Some("update_rejected") | Some("update_failure") => {
                    rejected += value.parse::<u64>().unwrap_or(0)
                }
                _ => {}
            }
        }
        Ok((version, rejected))
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Envoy's allocator, in bytes (from `allocated`, `heap_size` and `pageheap_unmapped` of
/// `/memory`).
#[derive(Debug, Clone, Copy)]
pub struct Heap {
    /// Held by live allocations.
    pub allocated: u64,
    /// Held from the system and not returned: live allocations and freed memory kept for
    /// reuse.
    pub size: u64,
}

/// Makes a child die with the thread that started it (no orphaned Envoy or wrk if the
/// benchmark is killed) and, when `cpu` is given, run on that CPU only.
pub fn pin_and_die_with_parent(command: &mut Command, cpu: Option<usize>) {
    // SAFETY: prctl and sched_setaffinity are async-signal-safe and touch no memory of
    // the parent; the CPU set lives on the child's stack.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(cpu) = cpu {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).unwrap_or(100).max(1)
}

/// `utime + stime` of a `/proc/<pid>/stat` line, in microseconds. The command name may hold
/// spaces and parentheses, so fields are counted from the last `)`.
fn cpu_micros_of_stat(stat: &str, ticks_per_second: u64) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of proc(5); the state (field 3) is fields[0].
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 1_000_000 / ticks_per_second)
}

fn rss_kib_of_status(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_the_command_name() {
        let stat = "4242 (envoy (main) x) S 1 4242 4242 0 -1 4194560 9 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(cpu_micros_of_stat(stat, 100), Some(3_000_000));
        assert_eq!(cpu_micros_of_stat("garbage", 100), None);
    }

    #[test]
    fn rss_is_read_in_kib() {
        let status = "Name:\tenvoy\nVmPeak:\t 9 kB\nVmRSS:\t   51234 kB\nThreads: 12\n";
        assert_eq!(rss_kib_of_status(status), Some(51234));
    }
}
