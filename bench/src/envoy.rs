//! One Envoy under measurement: the harness's [`EnvoyProcess`] started from a bootstrap
//! with one worker (optionally pinned to a CPU of its own), and what the benchmark reads of
//! it besides: CPU time from `/proc`, the allocator's view from `/memory`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use modelgate_e2e::HarnessError;
use modelgate_e2e::envoy::{EcdsState, EnvoyOptions, EnvoyProcess};
use serde_json::Value;

/// How long Envoy may take to start (100,000 models included).
const STARTUP_DEADLINE: Duration = Duration::from_secs(120);

/// A running Envoy; dropping it kills the process.
pub struct Envoy {
    process: EnvoyProcess,
}

impl Envoy {
    /// Starts Envoy with `bootstrap` written into `dir` (its log goes there too), with
    /// `workers` worker threads, pinned to `cpu` when given, and waits until it is ready.
    pub fn start(dir: &Path, bootstrap: &Value, workers: u32, cpu: Option<usize>) -> Result<Self> {
        Self::start_logging(dir, bootstrap, workers, cpu, &[])
    }

    /// [`Envoy::start`] with more of Envoy's logging arguments (e.g. the filter's own
    /// messages, which it logs at `info` only when its configuration changes).
    pub fn start_logging(
        dir: &Path,
        bootstrap: &Value,
        workers: u32,
        cpu: Option<usize>,
        log_args: &[&str],
    ) -> Result<Self> {
        let mut options = EnvoyOptions {
            cpu,
            startup_deadline: STARTUP_DEADLINE,
            ..EnvoyOptions::new(workers)
        };
        options
            .log_args
            .extend(log_args.iter().map(|a| a.to_string()));
        Ok(Self {
            process: EnvoyProcess::start(dir, bootstrap, &options)?,
        })
    }

    /// An error carrying the end of Envoy's log.
    pub fn failure(&self, what: &str) -> HarnessError {
        self.process.failure(what)
    }

    /// The address clients send requests to.
    pub fn address(&self) -> std::net::SocketAddr {
        self.process.address()
    }

    /// When the process was spawned.
    pub fn started(&self) -> Instant {
        self.process.started()
    }

    /// Resident memory (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        Ok(self.process.rss_kib()?)
    }

    /// Where the ECDS subscription of the Wasm filter's slot stands.
    pub fn ecds_state(&self) -> Result<EcdsState> {
        Ok(self.process.ecds_state()?)
    }

    /// Envoy's log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// CPU time used so far by every thread of Envoy (user + system), in microseconds, at
    /// the kernel's clock-tick resolution.
    pub fn cpu_micros(&self) -> Result<u64> {
        let pid = self.process.pid();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        cpu_micros_of_stat(&stat, clock_ticks_per_second())
            .with_context(|| format!("unexpected /proc/{pid}/stat: {stat}"))
    }

    /// Envoy's allocator (tcmalloc) from its `/memory`: what it holds live, and all it
    /// holds, live or freed and kept for reuse.
    pub fn heap(&self) -> Result<Heap> {
        let memory = self.process.admin_get("/memory")?.json();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_the_command_name() {
        let stat = "4242 (envoy (main) x) S 1 4242 4242 0 -1 4194560 9 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(cpu_micros_of_stat(stat, 100), Some(3_000_000));
        assert_eq!(cpu_micros_of_stat("garbage", 100), None);
    }
}
