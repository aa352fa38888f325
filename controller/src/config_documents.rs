//! The referenced configurations the controller serves (`GET /config/<sha256>`, setting
//! `configByReference`): content-addressed and immutable, the most recent
//! [`KEPT_DOCUMENTS`] kept in memory, so a gateway still fetching the one it was told
//! before the latest change gets exactly that one. Memory is bounded by that count times
//! `referencedConfigMaxBytes`.
//!
//! In `run`, every document is also stored in the cluster before any object names it:
//! gzip-compressed, in ConfigMaps of the controller's namespace
//! (`modelgate-config-<first 32 hex digits of its sha256>-<i>`, [`CHUNK_BYTES`] each).
//! So every replica answers for every document, a follower reading it from there the
//! first time it is asked, and a restarted leader reads back the one the live extension
//! object names (what it recovers from, as from an inline configuration). The stored
//! documents of the [`KEPT_DOCUMENTS`] latest are kept, older ones deleted.

use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams};

use crate::generate::MANAGED_BY;
use crate::generate::by_reference::ConfigDocument;
use modelgate_core::by_reference::sha256_hex;

/// How many documents are kept: the current one and the two before it.
pub const KEPT_DOCUMENTS: usize = 3;

/// The most compressed bytes one ConfigMap holds (the API server takes up to 1 MiB).
pub const CHUNK_BYTES: usize = 768 * 1024;

/// The label every stored document's ConfigMaps carry (with [`MANAGED_BY`]).
pub const COMPONENT: (&str, &str) = ("app.kubernetes.io/component", "config-document");
const DOCUMENT_LABEL: &str = "modelgate.seldon.io/config-document";
const SHA256_ANNOTATION: &str = "modelgate.seldon.io/config-sha256";
const CHUNKS_ANNOTATION: &str = "modelgate.seldon.io/config-chunks";
const DATA_KEY: &str = "document.json.gz";
/// How long a document found nowhere is not looked for again.
const MISS_MEMORY: Duration = Duration::from_secs(5);
/// At most this many misses remembered.
const MISSES_KEPT: usize = 64;

/// The documents, newest last; cloning shares them.
#[derive(Clone, Default)]
pub struct ConfigDocuments {
    kept: Arc<Mutex<VecDeque<ConfigDocument>>>,
    store: Option<Arc<Store>>,
}

impl std::fmt::Debug for ConfigDocuments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigDocuments")
            .field("kept", &self.lock().len())
            .field("stored", &self.store.is_some())
            .finish()
    }
}

/// Where documents are stored in the cluster.
struct Store {
    client: kube::Client,
    namespace: String,
    max_bytes: usize,
    timeout: Duration,
    /// Documents recently found nowhere, and when; held across a read, so one read of the
    /// API server is in flight at a time, whatever asks.
    misses: tokio::sync::Mutex<BTreeMap<String, Instant>>,
}

/// Why a document could not be stored, read or pruned.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The API server refused or did not answer.
    #[error("{action} ConfigMap {namespace}/{name}: {source}")]
    Api {
        /// What was attempted.
        action: &'static str,
        /// Where.
        namespace: String,
        /// Which (`*` for lists).
        name: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
    /// The stored document is not what its name says, or too large.
    #[error("stored configuration {0}: {1}")]
    Invalid(String, String),
}

impl ConfigDocuments {
    /// Documents also stored in ConfigMaps of `namespace` (`run`); a stored document over
    /// `max_bytes` once decompressed is not read.
    pub fn stored(
        client: kube::Client,
        namespace: String,
        max_bytes: usize,
        timeout: Duration,
    ) -> Self {
        Self {
            kept: Arc::default(),
            store: Some(Arc::new(Store {
                client,
                namespace,
                max_bytes,
                timeout,
                misses: tokio::sync::Mutex::default(),
            })),
        }
    }

    /// Serves `document` from now on, stored in the cluster first when documents are:
    /// nothing may name it before every replica can find it.
    pub async fn publish(&self, document: ConfigDocument) -> Result<(), StoreError> {
        if let Some(store) = &self.store
            && self.cached(&document.sha256).is_none()
        {
            store.write(&document).await?;
            store.misses.lock().await.remove(&document.sha256);
        }
        self.remember(document);
        Ok(())
    }

    /// Serves `document` from memory (a document already kept becomes the newest), and
    /// forgets the oldest beyond [`KEPT_DOCUMENTS`].
    pub fn remember(&self, document: ConfigDocument) {
        let mut kept = self.lock();
        kept.retain(|d| d.sha256 != document.sha256);
        kept.push_back(document);
        while kept.len() > KEPT_DOCUMENTS {
            kept.pop_front();
        }
    }

    /// The document with this SHA-256, if it is kept in memory.
    pub fn cached(&self, sha256: &str) -> Option<Arc<[u8]>> {
        self.lock()
            .iter()
            .find(|d| d.sha256 == sha256)
            .map(|d| d.bytes.clone())
    }

    /// The document with this SHA-256: from memory, or read from the cluster (then kept),
    /// verified against its hash. `None` when it is nowhere (or cannot be read now).
    pub async fn get(&self, sha256: &str) -> Option<Arc<[u8]>> {
        if let Some(bytes) = self.cached(sha256) {
            return Some(bytes);
        }
        let store = self.store.as_ref()?;
        if !is_sha256_hex(sha256) {
            return None;
        }
        let mut misses = store.misses.lock().await;
        // Another request may have read it while this one waited.
        if let Some(bytes) = self.cached(sha256) {
            return Some(bytes);
        }
        misses.retain(|_, at| at.elapsed() < MISS_MEMORY);
        if misses.contains_key(sha256) {
            return None;
        }
        match store.read(sha256).await {
            Ok(Some(bytes)) => {
                let bytes: Arc<[u8]> = bytes.into();
                self.remember(ConfigDocument {
                    sha256: sha256.to_string(),
                    bytes: bytes.clone(),
                });
                Some(bytes)
            }
            Ok(None) => {
                if misses.len() >= MISSES_KEPT {
                    misses.pop_first();
                }
                misses.insert(sha256.to_string(), Instant::now());
                None
            }
            Err(e) => {
                tracing::warn!("configuration {sha256}: {e}");
                None
            }
        }
    }

    /// Deletes the stored documents not kept in memory (older than the
    /// [`KEPT_DOCUMENTS`] latest). Returns how many documents were deleted.
    pub async fn prune(&self) -> Result<usize, StoreError> {
        let Some(store) = &self.store else {
            return Ok(0);
        };
        let kept: Vec<String> = self.lock().iter().map(|d| short(&d.sha256)).collect();
        store.prune(&kept).await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<ConfigDocument>> {
        // A panic while holding the lock leaves a consistent queue: keep serving.
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The part of a SHA-256 names and labels carry (label values take 63 characters).
fn short(sha256: &str) -> String {
    sha256.chars().take(32).collect()
}

fn chunk_name(sha256: &str, i: usize) -> String {
    format!("modelgate-config-{}-{i}", short(sha256))
}

/// A document's bytes, gzip-compressed, in chunks of at most [`CHUNK_BYTES`].
pub fn compress(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(bytes)
        .expect("writing into memory is infallible");
    let compressed = encoder.finish().expect("writing into memory is infallible");
    compressed.chunks(CHUNK_BYTES).map(<[u8]>::to_vec).collect()
}

/// The document from its chunks, or why not: more than `max_bytes` once decompressed,
/// not gzip, or not the document `sha256` names.
pub fn decompress(chunks: &[Vec<u8>], sha256: &str, max_bytes: usize) -> Result<Vec<u8>, String> {
    let compressed: Vec<u8> = chunks.concat();
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(compressed.as_slice())
        .take((max_bytes as u64).saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("not a gzip stream: {e}"))?;
    if bytes.len() > max_bytes {
        return Err(format!("over {max_bytes} bytes once decompressed"));
    }
    if sha256_hex(&bytes) != sha256 {
        return Err("its content does not hash to its name".into());
    }
    Ok(bytes)
}

impl Store {
    fn api(&self) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn error(&self, action: &'static str, name: &str, source: kube::Error) -> StoreError {
        StoreError::Api {
            action,
            namespace: self.namespace.clone(),
            name: name.to_string(),
            source,
        }
    }

    async fn call<T>(
        &self,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, kube::Error> {
        tokio::time::timeout(self.timeout, request)
            .await
            .unwrap_or_else(|_| {
                Err(kube::Error::Service(Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer from the API server within {:?}", self.timeout),
                ))))
            })
    }

    /// Writes the chunks, the first last: it names how many there are, so a reader that
    /// finds it finds them all.
    async fn write(&self, document: &ConfigDocument) -> Result<(), StoreError> {
        let chunks = compress(&document.bytes);
        let count = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate().rev() {
            let name = chunk_name(&document.sha256, i);
            let map = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(self.namespace.clone()),
                    labels: Some(BTreeMap::from([
                        (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
                        (COMPONENT.0.to_string(), COMPONENT.1.to_string()),
                        (DOCUMENT_LABEL.to_string(), short(&document.sha256)),
                    ])),
                    annotations: Some(BTreeMap::from([
                        (SHA256_ANNOTATION.to_string(), document.sha256.clone()),
                        (CHUNKS_ANNOTATION.to_string(), count.to_string()),
                    ])),
                    ..ObjectMeta::default()
                },
                binary_data: Some(BTreeMap::from([(DATA_KEY.to_string(), ByteString(chunk))])),
                immutable: Some(true),
                ..ConfigMap::default()
            };
            let params = PatchParams::apply(crate::reconcile::FIELD_MANAGER).force();
            self.call(self.api().patch(&name, &params, &Patch::Apply(&map)))
                .await
                .map_err(|e| self.error("apply", &name, e))?;
        }
        Ok(())
    }

    /// The document, if stored; an error when it cannot be read or is not what it says.
    async fn read(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let first = chunk_name(sha256, 0);
        let Some(head) = self
            .call(self.api().get_opt(&first))
            .await
            .map_err(|e| self.error("get", &first, e))?
        else {
            return Ok(None);
        };
        let annotations = head.metadata.annotations.clone().unwrap_or_default();
        if annotations.get(SHA256_ANNOTATION).map(String::as_str) != Some(sha256) {
            return Ok(None);
        }
        let count: usize = annotations
            .get(CHUNKS_ANNOTATION)
            .and_then(|n| n.parse().ok())
            .filter(|n| (1..=self.max_bytes / CHUNK_BYTES + 2).contains(n))
            .ok_or_else(|| StoreError::Invalid(sha256.into(), "bad chunk count".into()))?;
        let data = |map: ConfigMap| -> Vec<u8> {
            map.binary_data
                .and_then(|mut d| d.remove(DATA_KEY))
                .map(|b| b.0)
                .unwrap_or_default()
        };
        let mut chunks = vec![data(head)];
        for i in 1..count {
            let name = chunk_name(sha256, i);
            let map = self
                .call(self.api().get_opt(&name))
                .await
                .map_err(|e| self.error("get", &name, e))?
                .ok_or_else(|| StoreError::Invalid(sha256.into(), format!("chunk {i} missing")))?;
            chunks.push(data(map));
        }
        decompress(&chunks, sha256, self.max_bytes)
            .map(Some)
            .map_err(|why| StoreError::Invalid(sha256.into(), why))
    }

    async fn prune(&self, kept: &[String]) -> Result<usize, StoreError> {
        let selector = format!(
            "{}={},{}={}",
            MANAGED_BY.0, MANAGED_BY.1, COMPONENT.0, COMPONENT.1
        );
        let stored = self
            .call(
                self.api()
                    .list_metadata(&ListParams::default().labels(&selector)),
            )
            .await
            .map_err(|e| self.error("list", "*", e))?;
        let mut gone = std::collections::BTreeSet::new();
        for map in stored {
            let name = map.metadata.name.unwrap_or_default();
            let document = map
                .metadata
                .labels
                .and_then(|mut l| l.remove(DOCUMENT_LABEL))
                .unwrap_or_default();
            if kept.contains(&document) {
                continue;
            }
            match self
                .call(self.api().delete(&name, &DeleteParams::default()))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(self.error("delete", &name, e)),
            }
            gone.insert(document);
        }
        Ok(gone.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(text: &str) -> ConfigDocument {
        ConfigDocument {
            sha256: modelgate_core::by_reference::sha256_hex(text.as_bytes()),
            bytes: text.as_bytes().into(),
        }
    }

    #[test]
    fn the_latest_documents_are_kept_and_older_ones_forgotten() {
        let documents = ConfigDocuments::default();
        let all: Vec<_> = (0..5)
            .map(|i| document(&format!("{{\"n\":{i}}}")))
            .collect();
        for d in &all {
            documents.remember(d.clone());
        }
        for d in &all[..2] {
            assert!(documents.cached(&d.sha256).is_none());
        }
        for d in &all[2..] {
            assert_eq!(documents.cached(&d.sha256).as_deref(), Some(&*d.bytes));
        }
        // Published again, an old one is the newest: the oldest other goes.
        documents.remember(all[2].clone());
        documents.remember(all[0].clone());
        assert!(documents.cached(&all[3].sha256).is_none());
        assert!(documents.cached(&all[2].sha256).is_some());
        assert!(documents.cached(&all[0].sha256).is_some());
    }

    #[test]
    fn a_document_survives_its_chunks_and_nothing_else_passes_for_it() {
        // Incompressible enough to need several chunks.
        let mut state = 7u64;
        let text: String = (0..3 * CHUNK_BYTES)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                char::from(b'a' + (state >> 59) as u8 % 26)
            })
            .collect();
        let d = document(&text);
        let chunks = compress(&d.bytes);
        assert!(chunks.len() > 1 && chunks.iter().all(|c| c.len() <= CHUNK_BYTES));
        assert_eq!(
            decompress(&chunks, &d.sha256, d.bytes.len()).unwrap(),
            &*d.bytes
        );
        // Too large once decompressed, another document's name, a chunk missing.
        assert!(decompress(&chunks, &d.sha256, d.bytes.len() - 1).is_err());
        let other = document("{}");
        assert!(decompress(&chunks, &other.sha256, usize::MAX).is_err());
        assert!(decompress(&chunks[1..], &d.sha256, usize::MAX).is_err());
    }
}
