//! One Envoy process, as the tests and the benchmark start it: from a bootstrap written into
//! a scratch directory (its log beside it), on the loopback ports the bootstrap asks the
//! kernel for, ready once `/ready` answers; its resident set read from `/proc`; killed when
//! dropped, and with the thread that started it if the test or benchmark dies first.

use std::fs;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::HarnessError;
use crate::bootstrap::FILTER_NAME;
use crate::client::{Client, Request, Response};
use crate::locate;

/// How an Envoy is run.
#[derive(Debug, Clone)]
pub struct EnvoyOptions {
    /// Worker threads (`--concurrency`), at least 1.
    pub workers: u32,
    /// The only CPU Envoy may run on, if any.
    pub cpu: Option<usize>,
    /// Log levels (`-l`, `--component-log-level`).
    pub log_args: Vec<String>,
    /// How long Envoy may take to become ready.
    pub startup_deadline: Duration,
}

impl EnvoyOptions {
    /// One worker on any CPU, warnings only, 30 s to start.
    pub fn new(workers: u32) -> Self {
        Self {
            workers,
            cpu: None,
            log_args: vec!["-l".into(), "warning".into()],
            startup_deadline: Duration::from_secs(30),
        }
    }
}

/// A running Envoy. Dropping it kills the process.
pub struct EnvoyProcess {
    child: Child,
    dir: PathBuf,
    admin: SocketAddr,
    listener: SocketAddr,
    started: Instant,
}

impl EnvoyProcess {
    /// Writes `bootstrap` into `dir` as `bootstrap.json`, starts Envoy on it (its log in
    /// `dir/envoy.log`) and waits until it is ready. The bootstrap's admin interface and
    /// first listener must be on loopback port 0: the kernel picks free ports, so parallel
    /// instances never clash.
    pub fn start(
        dir: &Path,
        bootstrap: &Value,
        options: &EnvoyOptions,
    ) -> Result<Self, HarnessError> {
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
            .args(["--concurrency", &options.workers.max(1).to_string()])
            .args(&options.log_args)
            // No shared memory: parallel instances cannot clash on a base id.
            .arg("--disable-hot-restart")
            .arg("--admin-address-path")
            .arg(&admin_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        pin_and_die_with_parent(&mut command, options.cpu);
        let started = Instant::now();
        let child = command
            .spawn()
            .map_err(|e| HarnessError::new(format!("cannot start {}: {e}", binary.display())))?;
        let mut envoy = Self {
            child,
            dir: dir.to_path_buf(),
            admin: ([127, 0, 0, 1], 0).into(),
            listener: ([127, 0, 0, 1], 0).into(),
            started,
        };
        envoy.admin = envoy.wait_until_ready(&admin_file, options.startup_deadline)?;
        envoy.listener = envoy.listener_address()?;
        Ok(envoy)
    }

    fn wait_until_ready(
        &mut self,
        admin_file: &Path,
        deadline: Duration,
    ) -> Result<SocketAddr, HarnessError> {
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(self.failure(&format!("Envoy exited at startup ({status})")));
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
            if self.started.elapsed() > deadline {
                return Err(self.failure("Envoy did not become ready"));
            }
            // Short: the benchmark times Envoy's start.
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn listener_address(&self) -> Result<SocketAddr, HarnessError> {
        let listeners = self.admin_get("/listeners?format=json")?.json();
        let address = &listeners["listener_statuses"][0]["local_address"]["socket_address"];
        let port = address["port_value"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| self.failure(&format!("no listener port in {listeners}")))?;
        Ok(([127, 0, 0, 1], port).into())
    }

    /// The address clients send requests to: the bootstrap's first listener.
    pub fn address(&self) -> SocketAddr {
        self.listener
    }

    /// The admin interface's address.
    pub fn admin_address(&self) -> SocketAddr {
        self.admin
    }

    /// When the process was spawned.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The scratch directory: the bootstrap and the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Envoy's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default()
    }

    /// An error carrying the end of Envoy's log.
    pub fn failure(&self, what: &str) -> HarnessError {
        let log = self.log();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        HarnessError::new(format!(
            "{what}; log {}:\n{}",
            self.dir.join("envoy.log").display(),
            tail.join("\n")
        ))
    }

    /// A GET on the admin interface; anything but `200` is an error.
    pub fn admin_get(&self, path: &str) -> Result<Response, HarnessError> {
        let response = Client::new(self.admin).send(&Request::get(path))?;
        if response.status != 200 {
            return Err(HarnessError::new(format!(
                "admin {path}: {}",
                response.summary()
            )));
        }
        Ok(response)
    }

    /// Resident memory (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> Result<u64, HarnessError> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        rss_kib_of_status(&status)
            .ok_or_else(|| HarnessError::new(format!("no VmRSS in /proc/{}/status", self.pid())))
    }

    /// Where the ECDS subscription of the modelgate filter's slot stands.
    pub fn ecds_state(&self) -> Result<EcdsState, HarnessError> {
        let prefix = format!("extension_config_discovery.http_filter.{FILTER_NAME}.");
        let text = self
            .admin_get(&format!("/stats?filter=^{}", prefix.replace('.', "\\.")))?
            .text();
        let mut state = EcdsState::default();
        for line in text.lines() {
            let Some((name, value)) = line.split_once(": ") else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match name.strip_prefix(&prefix) {
                Some("version_text") => state.version = value.to_string(),
                Some("update_rejected") => state.rejected = value.parse().unwrap_or(0),
                Some("update_failure") => state.failed = value.parse().unwrap_or(0),
                _ => {}
            }
        }
        Ok(state)
    }
}

impl Drop for EnvoyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The ECDS subscription of the filter's slot, from Envoy's stats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EcdsState {
    /// The version last applied (`version_text`).
    pub version: String,
    /// Updates Envoy refused (`update_rejected`): the filter rejected the configuration.
    pub rejected: u64,
    /// Updates that could not be read (`update_failure`).
    pub failed: u64,
}

impl EcdsState {
    /// Updates that did not take effect, whatever the cause.
    pub fn refused(&self) -> u64 {
        self.rejected + self.failed
    }
}

/// Makes a child die with the thread that started it (no orphaned Envoy or load generator
/// if a test or the benchmark is killed before `Drop` runs) and, when `cpu` is given, run
/// on that CPU only.
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
    fn rss_is_read_in_kib() {
        let status = "Name:\tenvoy\nVmPeak:\t 9 kB\nVmRSS:\t   51234 kB\nThreads: 12\n";
        assert_eq!(rss_kib_of_status(status), Some(51234));
        assert_eq!(rss_kib_of_status("Name:\tenvoy\n"), None);
    }
}
