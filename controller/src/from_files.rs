//! Generation from manifest files, as `render`, `check` and `explain` do it: read the
//! SeldonDeployments, generate once to learn the JWKS URIs they name, fetch those under
//! the same rules and limits as `run`, and generate again with the keys.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use modelgate_core::config::KeySet;

use crate::generate::{Generated, Inputs, Planned, WasmSource, plan};
use crate::manifests::{self, ManifestError};
use crate::seldon::SeldonDeployment;
use crate::settings::{RunSettings, Settings};
use crate::{jwks, wasm};

/// Why nothing could be generated from the files.
#[derive(Debug, thiserror::Error)]
pub enum FromFilesError {
    /// A manifest cannot be read or parsed.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The JWKS HTTP client cannot be built.
    #[error(transparent)]
    JwksClient(#[from] jwks::fetch::ClientError),
    /// The runtime the fetches run on cannot start.
    #[error(transparent)]
    Runtime(#[from] std::io::Error),
}

/// Something met on the way that the user should know, besides the models' own problems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// A document that is not a SeldonDeployment, as `<path>: document <n>: <apiVersion> <kind>`.
    Skipped(String),
    /// A JWKS URI not fetched because the caller asked for no network.
    NotFetched(String),
    /// A JWKS URI whose fetch failed: why.
    FetchFailed(String),
}

/// The line the CLI prints, with its `note:` or `warning:` prefix.
impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Note::Skipped(what) => write!(f, "note: skipped {what} (not a SeldonDeployment)"),
            Note::NotFetched(uri) => write!(
                f,
                "note: JWKS {uri} not fetched (--offline): models using it deny every request"
            ),
            Note::FetchFailed(why) => {
                write!(f, "warning: {why}: models using it deny every request")
            }
        }
    }
}

/// What was generated from the files, and the notes met on the way, in order.
#[derive(Debug)]
pub struct FromFiles {
    /// Every object, problem and the filter configuration.
    pub generated: Generated,
    /// What the user should know besides the models' problems.
    pub notes: Vec<Note>,
}

/// Generates everything from these manifest files; with `offline`, no JWKS URI is
/// fetched (those models' key sets stay empty, so they deny every request).
pub fn generate_from_files(
    files: &[PathBuf],
    settings: &Settings,
    offline: bool,
) -> Result<FromFiles, FromFilesError> {
    let Read {
        seldon_deployments,
        mut notes,
    } = read_files(files, settings)?;
    let generated = plan_from_files(&seldon_deployments, settings, offline, &mut notes)?;
    Ok(FromFiles {
        generated: generated.into_generated(),
        notes,
    })
}

/// The SeldonDeployments of manifest files, and the notes met reading them.
#[derive(Debug)]
pub struct Read {
    /// The SeldonDeployments, in reading order.
    pub seldon_deployments: Vec<SeldonDeployment>,
    /// Documents skipped.
    pub notes: Vec<Note>,
}

/// Reads the SeldonDeployments of these manifest files.
pub fn read_files(files: &[PathBuf], settings: &Settings) -> Result<Read, FromFilesError> {
    let manifests = manifests::read(files, &settings.default_namespace)?;
    Ok(Read {
        seldon_deployments: manifests.seldon_deployments,
        notes: manifests.skipped.into_iter().map(Note::Skipped).collect(),
    })
}

/// [`generate_from_files`] from SeldonDeployments already read, each model's own objects
/// left to be made one at a time ([`Planned`]); the notes met are added to `notes`.
pub fn plan_from_files<'a>(
    seldon_deployments: &'a [SeldonDeployment],
    settings: &Settings,
    offline: bool,
    notes: &mut Vec<Note>,
) -> Result<Planned<'a>, FromFilesError> {
    let wasm_source = WasmSource::from_settings(settings, &wasm::filter_sha256());
    let last_good = BTreeMap::new();
    let no_keys = BTreeMap::new();
    let inputs = Inputs {
        settings,
        jwks: &no_keys,
        last_good: &last_good,
        wasm: &wasm_source,
    };
    let first = plan(seldon_deployments, inputs);
    let uris = &first.generated.jwks_uris;
    if offline || uris.is_empty() {
        notes.extend(uris.iter().cloned().map(Note::NotFetched));
        return Ok(first);
    }
    let keys = fetch_keys(uris, settings, notes)?;
    drop(first);
    Ok(plan(
        seldon_deployments,
        Inputs {
            jwks: &keys,
            ..inputs
        },
    ))
}

/// Fetches every URI under the same rules and limits as `run`, all at once.
fn fetch_keys(
    uris: &BTreeSet<String>,
    settings: &Settings,
    notes: &mut Vec<Note>,
) -> Result<BTreeMap<String, KeySet>, FromFilesError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let defaults = RunSettings::default();
    let fetcher = jwks::Fetcher::new(&settings.jwks, defaults.jwks_timeout)?;
    let schedule = jwks::Schedule {
        refresh: defaults.jwks_refresh,
        retry: defaults.jwks_retry,
    };
    let refresher = jwks::Refresher::new(fetcher, schedule, defaults.jwks_concurrency);
    let cache = jwks::JwksCache::default();
    cache.track(uris);
    let report = runtime.block_on(refresher.refresh_due(&cache));
    notes.extend(report.failed.into_iter().map(|(_, e)| Note::FetchFailed(e)));
    Ok(cache.snapshot())
}
