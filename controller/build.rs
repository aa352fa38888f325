//! Embeds the filter's `.wasm` in the controller, which serves it to the gateways.
//!
//! Uses, in order: the file named by `MODELGATE_FILTER_WASM`; the workspace's
//! `target/wasm32-wasip1/release/modelgate_filter.wasm` when it is newer than the filter's
//! sources; else builds the filter itself (`cargo build -p modelgate-filter --target
//! wasm32-wasip1 --release`) into a directory of its own, so a plain `cargo test` works on
//! a fresh clone once the `wasm32-wasip1` target is installed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

const WASM_NAME: &str = "modelgate_filter.wasm";

fn main() {
    println!("cargo:rerun-if-env-changed=MODELGATE_FILTER_WASM");
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .parent()
        .expect("controller/ sits in the workspace")
        .to_path_buf();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));

    let sources = [
        workspace.join("filter/src"),
        workspace.join("filter/core/src"),
        workspace.join("filter/Cargo.toml"),
        workspace.join("filter/core/Cargo.toml"),
    ];
    for source in &sources {
        println!("cargo:rerun-if-changed={}", source.display());
    }

    let wasm = match std::env::var_os("MODELGATE_FILTER_WASM") {
        Some(path) => {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "MODELGATE_FILTER_WASM={} is not a file",
                path.display()
            );
            path
        }
        None => {
            let built = workspace
                .join("target/wasm32-wasip1/release")
                .join(WASM_NAME);
            let sources_changed = newest(&sources);
            match modified(&built) {
                Some(at) if sources_changed.is_none_or(|s| s <= at) => built,
                _ => build_filter(&workspace, &out_dir),
            }
        }
    };
    println!("cargo:rerun-if-changed={}", wasm.display());
    std::fs::copy(&wasm, out_dir.join(WASM_NAME)).expect("copy the filter module into OUT_DIR");
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The latest modification time of any file under these paths.
fn newest(paths: &[PathBuf]) -> Option<SystemTime> {
    let mut latest = None;
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else if let Some(at) = modified(&path) {
            latest = latest.max(Some(at));
        }
    }
    latest
}

fn build_filter(workspace: &Path, out_dir: &Path) -> PathBuf {
    // <target>/<profile>/build/<pkg>-<hash>/out: share one directory per target dir, so
    // the filter is not rebuilt from scratch whenever this build script's hash changes.
    let target_dir = out_dir.ancestors().nth(4).map_or_else(
        || out_dir.join("filter-target"),
        |t| t.join("modelgate-filter-wasm"),
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!(
        "cargo:warning=building the filter module (no up-to-date target/wasm32-wasip1/release/{WASM_NAME}) into {}",
        target_dir.display()
    );
    let status = Command::new(cargo)
        .current_dir(workspace)
        .args([
            "build",
            "-p",
            "modelgate-filter",
            "--target",
            "wasm32-wasip1",
            "--release",
            "--target-dir",
        ])
        .arg(&target_dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("run cargo to build the filter module");
    assert!(
        status.success(),
        "building the filter module failed; install the target with `rustup target add wasm32-wasip1`, or set MODELGATE_FILTER_WASM"
    );
    target_dir.join("wasm32-wasip1/release").join(WASM_NAME)
}
