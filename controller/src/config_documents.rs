//! The referenced configurations this controller serves (`GET /config/<sha256>`, setting
//! `configByReference`): content-addressed and immutable, the most recent
//! [`KEPT_DOCUMENTS`] kept, so a gateway still fetching the one it was told before the
//! latest change gets exactly that one. Memory is bounded by that count times
//! `referencedConfigMaxBytes`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::generate::by_reference::ConfigDocument;

/// How many documents are kept: the current one and the two before it.
pub const KEPT_DOCUMENTS: usize = 3;

/// The documents, newest last; cloning shares them.
#[derive(Debug, Clone, Default)]
pub struct ConfigDocuments {
    kept: Arc<Mutex<VecDeque<ConfigDocument>>>,
}

impl ConfigDocuments {
    /// Serves `document` from now on (a document already kept becomes the newest), and
    /// forgets the oldest beyond [`KEPT_DOCUMENTS`].
    pub fn publish(&self, document: ConfigDocument) {
        let mut kept = self.lock();
        kept.retain(|d| d.sha256 != document.sha256);
        kept.push_back(document);
        while kept.len() > KEPT_DOCUMENTS {
            kept.pop_front();
        }
    }

    /// The document with this SHA-256, if it is kept.
    pub fn get(&self, sha256: &str) -> Option<Arc<[u8]>> {
        self.lock()
            .iter()
            .find(|d| d.sha256 == sha256)
            .map(|d| d.bytes.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<ConfigDocument>> {
        // A panic while holding the lock leaves a consistent queue: keep serving.
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
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
            documents.publish(d.clone());
        }
        for d in &all[..2] {
            assert!(documents.get(&d.sha256).is_none());
        }
        for d in &all[2..] {
            assert_eq!(documents.get(&d.sha256).as_deref(), Some(&*d.bytes));
        }
        // Published again, an old one is the newest: the oldest other goes.
        documents.publish(all[2].clone());
        documents.publish(all[0].clone());
        assert!(documents.get(&all[3].sha256).is_none());
        assert!(documents.get(&all[2].sha256).is_some());
        assert!(documents.get(&all[0].sha256).is_some());
    }
}
