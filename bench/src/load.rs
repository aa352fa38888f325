//! Load generation: `wrk` (one thread, N keep-alive connections, for a fixed duration),
//! driven by two small Lua scripts, one for a fixed request and one cycling through a file
//! of tokens; or, when `wrk` is not installed, a plain Rust loop (smoke runs only: its
//! figures are not comparable to wrk's).

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use modelgate_e2e::Client;
use modelgate_e2e::envoy::pin_and_die_with_parent;

use crate::workloads::Workload;

/// Both scripts' first two arguments: the method and a file holding the body (`-`: none).
const METHOD_AND_BODY_FUNCTION: &str = r#"
function set_method_and_body(args)
  wrk.method = args[1]
  if args[2] ~= "-" then
    local f = assert(io.open(args[2], "rb"))
    wrk.body = f:read("*a")
    f:close()
  end
end
"#;

/// Sends the same request again and again (headers come with `-H`).
const FIXED_SCRIPT: &str = r#"-- wrk -s fixed.lua URL -- METHOD BODY_FILE|-
function init(args)
  set_method_and_body(args)
end
"#;

/// Sends each token of a file once per pass, starting at a given line: requests are
/// formatted once in `init`, so the per-request cost in wrk is a table lookup.
const POOL_SCRIPT: &str = r#"-- wrk -s pool.lua URL -- METHOD BODY_FILE|- TOKENS_FILE START
local requests = {}
local i = 0
function init(args)
  set_method_and_body(args)
  for token in io.lines(args[3]) do
    wrk.headers["authorization"] = "Bearer " .. token
    requests[#requests + 1] = wrk.format()
  end
  wrk.headers["authorization"] = nil
  i = tonumber(args[4]) % #requests
end
function request()
  i = i + 1
  if i > #requests then i = 1 end
  return requests[i]
end
"#;

/// Prints the figures in one line the harness parses (latencies in microseconds).
const REPORT_FUNCTION: &str = r#"
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK-RESULT requests=%d duration_us=%d status_errors=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"#;

/// One measurement's load.
pub struct Load<'a> {
    /// Envoy's listener.
    pub address: SocketAddr,
    /// What is sent.
    pub workload: Workload,
    /// The token of every request, for workloads with a fixed one.
    pub token: Option<&'a str>,
    /// For the cold workload: the token pool and the index of the first token to send.
    pub pool: Option<(&'a [String], usize)>,
    /// Concurrent keep-alive connections.
    pub connections: u32,
    /// How long to send.
    pub duration: Duration,
}

/// What a load run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadResult {
    /// Responses received.
    pub requests: u64,
    /// How long the run lasted.
    pub duration: Duration,
    /// Responses with a status of 400 or more.
    pub status_errors: u64,
    /// Connection, read and write errors and timeouts.
    pub socket_errors: u64,
    /// Median latency, in microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, in microseconds.
    pub p99_us: f64,
}

impl LoadResult {
    /// Requests per second.
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.duration.as_secs_f64().max(1e-9)
    }
}

/// The load generator.
pub enum LoadGenerator {
    /// `wrk`, with its scripts in a directory, pinned to a CPU when given.
    Wrk {
        /// Where the scripts, bodies and token files are written.
        dir: PathBuf,
        /// The CPU wrk runs on.
        cpu: Option<usize>,
    },
    /// A Rust loop of blocking clients, one thread per connection.
    Builtin,
}

impl LoadGenerator {
    /// `wrk` if it is installed, else the built-in loop.
    pub fn detect(dir: &Path, cpu: Option<usize>) -> Result<Self> {
        let installed = Command::new("wrk")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !installed {
            return Ok(Self::Builtin);
        }
        fs::create_dir_all(dir)?;
        fs::write(
            dir.join("fixed.lua"),
            format!("{FIXED_SCRIPT}{METHOD_AND_BODY_FUNCTION}{REPORT_FUNCTION}"),
        )?;
        fs::write(
            dir.join("pool.lua"),
            format!("{POOL_SCRIPT}{METHOD_AND_BODY_FUNCTION}{REPORT_FUNCTION}"),
        )?;
        Ok(Self::Wrk {
            dir: dir.to_path_buf(),
            cpu,
        })
    }

    /// The generator's name, for the report.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Wrk { .. } => "wrk",
            Self::Builtin => "built-in loop (wrk not installed)",
        }
    }

    /// Writes the cold workload's token file (once per pool).
    pub fn prepare_pool(&self, pool: &[String]) -> Result<()> {
        if let Self::Wrk { dir, .. } = self {
            fs::write(dir.join("tokens.txt"), pool.join("\n") + "\n")?;
        }
        Ok(())
    }

    /// Runs one load and returns its figures.
    pub fn run(&self, load: &Load<'_>) -> Result<LoadResult> {
        match self {
            Self::Wrk { dir, cpu } => run_wrk(dir, *cpu, load),
            Self::Builtin => run_builtin(load),
        }
    }
}

fn run_wrk(dir: &Path, cpu: Option<usize>, load: &Load<'_>) -> Result<LoadResult> {
    let (method, target) = load.workload.method_and_target();
    let body_file = match load.workload.body() {
        Some(body) => {
            let file = dir.join("body.json");
            fs::write(&file, body)?;
            file.display().to_string()
        }
        None => "-".to_string(),
    };
    let mut command = Command::new("wrk");
    command
        .args(["-t1", "-c", &load.connections.to_string()])
        .args(["-d", &format!("{}s", load.duration.as_secs().max(1))])
        .args(["--timeout", "10s"]);
    if load.workload.body().is_some() {
        command.args(["-H", "content-type: application/json"]);
    }
    if let Some(token) = load.token {
        command.args(["-H", &format!("authorization: Bearer {token}")]);
    }
    let url = format!("http://{}{target}", load.address);
    match load.pool {
        Some((_, start)) => command
            .arg("-s")
            .arg(dir.join("pool.lua"))
            .arg(&url)
            .args(["--", method, &body_file])
            .arg(dir.join("tokens.txt"))
            .arg(start.to_string()),
        None => command
            .arg("-s")
            .arg(dir.join("fixed.lua"))
            .arg(&url)
            .args(["--", method, &body_file]),
    };
    pin_and_die_with_parent(&mut command, cpu);
    let output = command
        .stdin(Stdio::null())
        .output()
        .context("cannot run wrk")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse_wrk_result(&stdout)
        .with_context(|| format!("no WRK-RESULT line in wrk's output:\n{stdout}"))
}

/// Reads the `WRK-RESULT key=value ...` line the report function prints.
fn parse_wrk_result(stdout: &str) -> Option<LoadResult> {
    let line = stdout.lines().find_map(|l| l.strip_prefix("WRK-RESULT "))?;
    let field = |name: &str| -> Option<u64> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))?
            .parse()
            .ok()
    };
    Some(LoadResult {
        requests: field("requests")?,
        duration: Duration::from_micros(field("duration_us")?),
        status_errors: field("status_errors")?,
        socket_errors: field("connect_errors")?
            + field("read_errors")?
            + field("write_errors")?
            + field("timeouts")?,
        p50_us: field("p50_us")? as f64,
        p99_us: field("p99_us")? as f64,
    })
}

fn run_builtin(load: &Load<'_>) -> Result<LoadResult> {
    let next_token = AtomicUsize::new(load.pool.map_or(0, |(_, start)| start));
    let start = Instant::now();
    let deadline = start + load.duration;
    let per_connection: Vec<(Vec<u32>, u64, u64)> = thread::scope(|scope| {
        let workers: Vec<_> = (0..load.connections.max(1))
            .map(|_| {
                let next_token = &next_token;
                scope.spawn(move || {
                    let mut client = Client::new(load.address);
                    let (mut latencies, mut status_errors, mut socket_errors) = (Vec::new(), 0, 0);
                    while Instant::now() < deadline {
                        let token = match load.pool {
                            Some((pool, _)) if !pool.is_empty() => {
                                let i = next_token.fetch_add(1, Ordering::Relaxed);
                                Some(pool[i % pool.len()].as_str())
                            }
                            _ => load.token,
                        };
                        let sent = Instant::now();
                        match client.send(&load.workload.request(token)) {
                            Ok(response) => {
                                let micros = sent.elapsed().as_micros();
                                latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
                                if response.status >= 400 {
                                    status_errors += 1;
                                }
                            }
                            Err(_) => {
                                socket_errors += 1;
                                client = Client::new(load.address);
                            }
                        }
                    }
                    (latencies, status_errors, socket_errors)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let duration = start.elapsed();
    let mut latencies: Vec<u32> = Vec::new();
    let (mut status_errors, mut socket_errors) = (0, 0);
    for (l, s, e) in per_connection {
        latencies.extend(l);
        status_errors += s;
        socket_errors += e;
    }
    latencies.sort_unstable();
    let percentile = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * (latencies.len() - 1) as f64).round() as usize;
        f64::from(latencies[rank.min(latencies.len() - 1)])
    };
    Ok(LoadResult {
        requests: latencies.len() as u64,
        duration,
        status_errors,
        socket_errors,
        p50_us: percentile(50.0),
        p99_us: percentile(99.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_line_is_read_among_wrks_own_output() {
        let out = "Running 5s test @ http://127.0.0.1:1/\n  1 threads and 16 connections\n\
                   WRK-RESULT requests=1000 duration_us=5000000 status_errors=10 connect_errors=0 read_errors=1 write_errors=0 timeouts=2 p50_us=640 p99_us=1900\n";
        let r = parse_wrk_result(out).unwrap();
        assert_eq!(r.requests, 1000);
        assert_eq!(r.status_errors, 10);
        assert_eq!(r.socket_errors, 3);
        assert_eq!(r.p99_us, 1900.0);
        assert_eq!(r.throughput(), 200.0);
        assert!(parse_wrk_result("Running 5s test").is_none());
    }
}
