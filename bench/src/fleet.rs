//! Fleets of SeldonDeployments for the scale measurements, and `modelgate render` run on
//! them as a user runs it: the real binary, its wall time and peak memory, and the
//! WasmPlugin's `pluginConfig` taken from what it printed.
//!
//! Every model shares the benchmark's issuer, audience, claim and inline JWKS (one
//! identity provider for a whole platform); every tenth model is a sticky 90/10 canary.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::Value;

use crate::chains::MODEL_NAMESPACE;
use crate::tokens::{AUDIENCE, CLAIM, CLAIM_VALUE, ISSUER};

/// SeldonDeployments per manifest file.
const PER_FILE: usize = 1000;

/// The name of the `i`-th model (`model-0` is the one every workload addresses).
pub fn model_name(i: usize) -> String {
    format!("model-{i}")
}

/// Whether the `i`-th model is a canary with two predictors.
pub fn is_canary(i: usize) -> bool {
    i % 10 == 9
}

/// Writes `models` SeldonDeployments into `dir` (emptied first), in files of a thousand.
pub fn write_seldon_deployments(dir: &Path, models: usize, jwks: &str) -> Result<()> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir)?;
    let claims = format!(r#"{{"{CLAIM}": ["{CLAIM_VALUE}"]}}"#);
    for (file, start) in (0..models).step_by(PER_FILE).enumerate() {
        let mut yaml = String::new();
        for i in start..(start + PER_FILE).min(models) {
            let name = model_name(i);
            let _ = write!(
                yaml,
                "---\napiVersion: machinelearning.seldon.io/v1\nkind: SeldonDeployment\n\
                 metadata:\n  name: {name}\n  namespace: {MODEL_NAMESPACE}\nspec:\n  annotations:\n    \
                 seldon.io/jwt-issuer: {ISSUER}\n    seldon.io/jwt-audiences: {AUDIENCE}\n    \
                 seldon.io/jwt-claims: '{claims}'\n    seldon.io/jwt-jwks: '{jwks}'\n"
            );
            if is_canary(i) {
                yaml.push_str("    seldon.io/ab-sticky: claim:sub\n");
            }
            yaml.push_str("  predictors:\n");
            let predictors: &[(&str, u32)] = if is_canary(i) {
                &[("main", 90), ("canary", 10)]
            } else {
                &[("main", 100)]
            };
            for (predictor, traffic) in predictors {
                let _ = write!(
                    yaml,
                    "  - name: {predictor}\n    traffic: {traffic}\n    replicas: 1\n    graph:\n      \
                     name: classifier\n      type: MODEL\n      implementation: SKLEARN_SERVER\n      \
                     modelUri: gs://bench-models/{name}/{predictor}\n"
                );
            }
        }
        fs::write(dir.join(format!("seldon-{file:04}.yaml")), yaml)?;
    }
    Ok(())
}

/// The `i`-th SeldonDeployment of [`write_seldon_deployments`] as the API server stores
/// it (JSON), for the running controller's benchmark; `audience` is the one it requires
/// (the fleet's is [`AUDIENCE`]; a change of annotation changes it).
pub fn seldon_deployment(i: usize, jwks: &str, audience: &str) -> Value {
    let name = model_name(i);
    let mut annotations = serde_json::json!({
        "seldon.io/jwt-issuer": ISSUER,
        "seldon.io/jwt-audiences": audience,
        "seldon.io/jwt-claims": format!(r#"{{"{CLAIM}": ["{CLAIM_VALUE}"]}}"#),
        "seldon.io/jwt-jwks": jwks,
    });
    let predictors: &[(&str, u32)] = if is_canary(i) {
        annotations["seldon.io/ab-sticky"] = "claim:sub".into();
        &[("main", 90), ("canary", 10)]
    } else {
        &[("main", 100)]
    };
    let predictors: Vec<Value> = predictors
        .iter()
        .map(|(predictor, traffic)| {
            serde_json::json!({
                "name": predictor, "traffic": traffic, "replicas": 1,
                "graph": {"name": "classifier", "type": "MODEL",
                          "implementation": "SKLEARN_SERVER",
                          "modelUri": format!("gs://bench-models/{name}/{predictor}")},
            })
        })
        .collect();
    serde_json::json!({
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {"name": name, "namespace": MODEL_NAMESPACE},
        "spec": {"annotations": annotations, "predictors": predictors},
    })
}

/// One run of `modelgate render`.
#[derive(Debug, Clone)]
pub struct RenderRun {
    /// Wall time of the process, start to exit.
    pub wall: Duration,
    /// Its peak resident memory (`ru_maxrss`), in KiB.
    pub peak_rss_kib: u64,
    /// Where its standard output went.
    pub output: PathBuf,
}

/// Runs `<modelgate> render -f <manifests> --offline`, its output into `output`.
pub fn render(modelgate: &Path, manifests: &Path, output: &Path) -> Result<RenderRun> {
    render_with(modelgate, manifests, output, &[])
}

/// [`render`] with more arguments (settings).
pub fn render_with(
    modelgate: &Path,
    manifests: &Path,
    output: &Path,
    extra: &[&str],
) -> Result<RenderRun> {
    let stdout = fs::File::create(output)?;
    let stderr_file = output.with_extension("stderr");
    let stderr = fs::File::create(&stderr_file)?;
    let started = Instant::now();
    let child = Command::new(modelgate)
        .arg("render")
        .arg("-f")
        .arg(manifests)
        .arg("--offline")
        // Past some 18,000 models one WasmPlugin cannot hold them all within etcd's limit,
        // which the controller enforces (1 MiB by default): the 100,000-model fleet
        // measures what the filter does with a document that large all the same.
        .arg("--plugin-config-max-bytes")
        .arg((64usize << 20).to_string())
        .args(extra)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("cannot run {}", modelgate.display()))?;
    let (status, usage) = wait_with_usage(child.id())?;
    let wall = started.elapsed();
    if status != 0 {
        bail!(
            "{} render exited with {status}: {}",
            modelgate.display(),
            fs::read_to_string(&stderr_file).unwrap_or_default()
        );
    }
    Ok(RenderRun {
        wall,
        peak_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        output: output.to_path_buf(),
    })
}

/// Waits for a child and returns its exit status and resource usage (`wait4`).
fn wait_with_usage(pid: u32) -> Result<(i32, libc::rusage)> {
    let pid = libc::pid_t::try_from(pid)?;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 writes it and the status for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if waited != pid {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok((code, usage))
}

/// The WasmPlugin's `pluginConfig` in `render`'s output, as the compact JSON Envoy gets.
/// Only the WasmPlugin document is parsed: the output of 100,000 models is large.
pub fn plugin_config(render_output: &str) -> Result<String> {
    let plugin = wasm_plugin(render_output)?;
    let config = &plugin["spec"]["pluginConfig"];
    if !config.is_object() {
        bail!("the WasmPlugin has no pluginConfig object");
    }
    Ok(config.to_string())
}

/// The WasmPlugin in `render`'s output. Only that document is parsed: the output of
/// 100,000 models is large.
pub fn wasm_plugin(render_output: &str) -> Result<Value> {
    let document = render_output
        .split("\n---\n")
        .find(|d| d.contains("\nkind: WasmPlugin\n"))
        .context("render printed no WasmPlugin")?;
    Value::deserialize(serde_yaml_ng::Deserializer::from_str(
        document.trim_start_matches("---\n"),
    ))
    .context("render's WasmPlugin does not read back")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_come_in_files_of_a_thousand_with_every_tenth_a_canary() {
        let dir =
            std::env::temp_dir().join(format!("modelgate-bench-fleet-{}", std::process::id()));
        write_seldon_deployments(&dir, 1001, r#"{"keys":[]}"#).unwrap();
        let mut files: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        assert_eq!(files.len(), 2);
        let first = fs::read_to_string(&files[0]).unwrap();
        assert_eq!(first.matches("kind: SeldonDeployment").count(), 1000);
        assert_eq!(first.matches("seldon.io/ab-sticky").count(), 100);
        assert!(first.contains("name: model-999\n"));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_stored_seldon_deployments_are_the_manifests_models() {
        let dir =
            std::env::temp_dir().join(format!("modelgate-bench-fleet-json-{}", std::process::id()));
        let jwks = r#"{"keys":[{"kty":"oct"}]}"#;
        write_seldon_deployments(&dir, 10, jwks).unwrap();
        let text = fs::read_to_string(dir.join("seldon-0000.yaml")).unwrap();
        let manifests: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
            .map(|d| Value::deserialize(d).unwrap())
            .collect();
        assert_eq!(manifests.len(), 10);
        for (i, manifest) in manifests.iter().enumerate() {
            assert_eq!(manifest, &seldon_deployment(i, jwks, AUDIENCE), "model {i}");
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_plugin_config_is_taken_from_the_wasm_plugin_document() {
        let output = "---\nkind: VirtualService\nspec: {}\n---\napiVersion: x\nkind: WasmPlugin\nspec:\n  pluginConfig:\n    version: 1\n    models: {}\n";
        assert_eq!(
            plugin_config(output).unwrap(),
            r#"{"models":{},"version":1}"#
        );
        assert!(plugin_config("---\nkind: Gateway\n").is_err());
    }
}
