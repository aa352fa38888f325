//! A mistake stays its own: the demo's manifests again, with one annotation value that
//! cannot be used, through the same generation. `check` must name that model alone, the
//! other models' policies and routing must be exactly what they were, and the broken
//! model (never configured before) must be denied, never let through.

use std::fs;
use std::path::{Path, PathBuf};

use modelgate_controller::Settings;
use modelgate_controller::from_files::generate_from_files;
use modelgate_core::config::{FilterConfig, Policy};
use modelgate_e2e::locate;

use crate::users::LEGACY;

const FILE: &str = "3-legacy-audit.yaml";
const GOOD: &str = "seldon.io/auth-mode: audit";
const BAD: &str = "seldon.io/auth-mode: permissive";

/// Generates from copies of `files` with [`BAD`] in [`FILE`], prints what `check` says and
/// whether the other models are untouched; returns the number of deviations.
pub fn show(files: &[PathBuf], good: &FilterConfig, settings: &Settings) -> usize {
    println!();
    println!("A mistake stays its own: {FILE} with \"{BAD}\", through check again:");
    match generate(files, settings) {
        Ok(broken) => compare(good, &broken),
        Err(why) => {
            println!("  {why}   <-- DEVIATES");
            1
        }
    }
}

fn generate(files: &[PathBuf], settings: &Settings) -> Result<Generated, String> {
    let dir = locate::work_root().join(format!("demo-mistake.{}", std::process::id()));
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut copies = Vec::new();
    for file in files {
        let text = fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let name = file.file_name().unwrap_or_default();
        let text = if Path::new(name) == Path::new(FILE) {
            if !text.contains(GOOD) {
                return Err(format!("{FILE} no longer says \"{GOOD}\""));
            }
            text.replace(GOOD, BAD)
        } else {
            text
        };
        let copy = dir.join(name);
        fs::write(&copy, text).map_err(|e| format!("{}: {e}", copy.display()))?;
        copies.push(copy);
    }
    let from = generate_from_files(&copies, settings, true).map_err(|e| e.to_string());
    // The copies are only this moment's input: nothing to keep for a post-mortem.
    let _ = fs::remove_dir_all(&dir);
    let generated = from?.generated;
    Ok(Generated {
        errors: generated.errors().map(ToString::to_string).collect(),
        config: generated.filter_config,
    })
}

struct Generated {
    errors: Vec<String>,
    config: FilterConfig,
}

fn compare(good: &FilterConfig, broken: &Generated) -> usize {
    let mut deviations = 0;
    for error in &broken.errors {
        println!("  error: {error}");
    }
    if broken.errors.len() != 1 || !broken.errors[0].contains(LEGACY) {
        println!("  expected one error, for {LEGACY}   <-- DEVIATES");
        deviations += 1;
    }
    let policy = |config: &FilterConfig, model: &str| {
        config
            .models
            .get(model)
            .map(|m| (config.policies.get(&m.policy).cloned(), m.routing.clone()))
    };
    let others: Vec<&String> = good.models.keys().filter(|m| *m != LEGACY).collect();
    let unchanged = others
        .iter()
        .filter(|m| policy(good, m) == policy(&broken.config, m))
        .count();
    let ok = unchanged == others.len();
    deviations += usize::from(!ok);
    println!(
        "  the other {} models' policies and routing: {unchanged} unchanged{}",
        others.len(),
        if ok { "" } else { "   <-- DEVIATES" }
    );
    let denied = matches!(
        policy(&broken.config, LEGACY),
        Some((Some(Policy::Deny { .. }), _))
    );
    deviations += usize::from(!denied);
    println!(
        "  {LEGACY}, never configured before, is {}{}",
        if denied {
            "denied (403 to every request) until it is fixed"
        } else {
            "not denied"
        },
        if denied { "" } else { "   <-- DEVIATES" }
    );
    println!(
        "  (the running controller would keep a model's last good configuration, if it had one, and post a Warning Event)"
    );
    deviations
}
