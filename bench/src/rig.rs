//! What every measurement needs: the built artifacts, the tokens, the load generator, the
//! CPUs Envoy and the load generator run on, and a scratch directory; and Envoy started
//! with one of the compared chains.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use modelgate_e2e::bootstrap::write_ecds_document;
use modelgate_e2e::{Client, Request};

use crate::chains::{self, Chain};
use crate::envoy::Envoy;
use crate::load::LoadGenerator;
use crate::tokens::Tokens;
use crate::workloads::Workload;

/// The benchmark's fixed inputs.
pub struct Rig {
    /// Scratch directory (bootstraps, logs, rendered manifests).
    pub work: PathBuf,
    /// The built modelgate filter.
    pub filter_wasm: PathBuf,
    /// The built no-op filter.
    pub noop_wasm: PathBuf,
    /// The controller binary, `modelgate`.
    pub modelgate: PathBuf,
    /// The issuer's key set and the workloads' tokens.
    pub tokens: Tokens,
    /// `wrk`, or the built-in loop.
    pub load: LoadGenerator,
    /// The CPU Envoy is pinned to (the load generator gets another one).
    pub envoy_cpu: Option<usize>,
}

impl Rig {
    /// Starts Envoy with `chain` in `dir`. `plugin_config` is modelgate's configuration
    /// (ignored by the other chains); the Wasm chains get their filter by ECDS.
    pub fn start(
        &self,
        dir: &Path,
        chain: Chain,
        plugin_config: &str,
        workers: u32,
    ) -> Result<Envoy> {
        let _ = fs::remove_dir_all(dir);
        let ecds_file = dir.join("ecds").join("filter.json");
        fs::create_dir_all(dir.join("ecds"))?;
        match chain {
            Chain::NoopWasm => write_ecds_document(&ecds_file, 1, &self.noop_wasm, "{}")?,
            Chain::Modelgate => {
                write_ecds_document(&ecds_file, 1, &self.filter_wasm, plugin_config)?
            }
            _ => {}
        }
        let bootstrap = chains::bootstrap(chain, &self.tokens.jwks, &ecds_file);
        Envoy::start(dir, &bootstrap, workers, self.envoy_cpu)
    }

    /// Sends ECDS version `version` of modelgate's configuration and waits until it is in
    /// force: Envoy reports it applied, and a request to the model `probe` (`<ns>/<name>`)
    /// without a token is answered `status` (`401` by a configuration that has the model,
    /// `200` by one that does not), which it must not be before. Returns the time until each.
    pub fn switch_modelgate(
        &self,
        envoy: &Envoy,
        dir: &Path,
        version: u64,
        plugin_config: &str,
        probe: &str,
        status: u16,
    ) -> Result<(Duration, Duration)> {
        let before = probe_status(envoy, probe)?;
        if before == status {
            bail!("before ECDS version {version}, {probe} is already answered {status}");
        }
        let refused_before = envoy.ecds_state()?.refused();
        let ecds_file = dir.join("ecds").join("filter.json");
        let started = Instant::now();
        write_ecds_document(&ecds_file, version, &self.filter_wasm, plugin_config)?;
        let applied = loop {
            let state = envoy.ecds_state()?;
            if state.version == version.to_string() {
                break started.elapsed();
            }
            if state.refused() > refused_before {
                bail!(envoy.failure(&format!("ECDS version {version} was refused")));
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!(envoy.failure(&format!("ECDS version {version} was never applied")));
            }
            thread::sleep(Duration::from_millis(1));
        };
        loop {
            if probe_status(envoy, probe).is_ok_and(|s| s == status) {
                return Ok((applied, started.elapsed()));
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!(envoy.failure(&format!(
                    "{probe} was never answered {status} after ECDS version {version}"
                )));
            }
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits until the listener answers the hot workload's request with `status`, and
    /// returns the time from Envoy's spawn until then.
    pub fn time_until_serving(&self, envoy: &Envoy, status: u16) -> Result<Duration> {
        let request: Request = Workload::Hot.request(Some(&self.tokens.hot));
        loop {
            if let Ok(response) = Client::new(envoy.address()).send(&request)
                && response.status == status
            {
                return Ok(envoy.started().elapsed());
            }
            if envoy.started().elapsed() > Duration::from_secs(120) {
                bail!(envoy.failure(&format!("the listener never answered {status}")));
            }
            thread::sleep(Duration::from_millis(2));
        }
    }
}

/// The status of a request to the model `probe` (`<ns>/<name>`) without a token.
fn probe_status(envoy: &Envoy, probe: &str) -> Result<u16> {
    let request = Request::get(&format!("/seldon/{probe}/api/v1.0/predictions"));
    Ok(Client::new(envoy.address()).send(&request)?.status)
}
