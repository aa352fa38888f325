//! The SeldonDeployment (`machinelearning.seldon.io/v1`), typed with just the fields the
//! controller reads, and Seldon's naming rules for the objects derived from it.

use std::collections::BTreeMap;

use kube::CustomResource;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

/// The predictor annotation that overrides a predictor's Service name (Seldon's rule).
pub const SVC_NAME_ANNOTATION: &str = "seldon.io/svc-name";

/// Names longer than this are replaced by a hash, as Seldon does.
const MAX_NAME: usize = 63;

/// The spec of a SeldonDeployment: the parts that decide routing and authorization.
/// Everything else (graphs, component specs) is accepted and ignored.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "machinelearning.seldon.io",
    version = "v1",
    kind = "SeldonDeployment",
    namespaced,
    schema = "disabled",
    shortname = "sdep"
)]
#[serde(rename_all = "camelCase")]
pub struct SeldonDeploymentSpec {
    /// Deprecated deployment name; not used for addressing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The predictors, in order.
    #[serde(default)]
    pub predictors: Vec<PredictorSpec>,
    /// Annotations that take precedence over `metadata.annotations`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// One predictor of a SeldonDeployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PredictorSpec {
    /// The predictor's name: the DestinationRule subset and the A/B header value.
    #[serde(default)]
    pub name: String,
    /// Share of traffic (Seldon: the weights of the non-shadow predictors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<i64>,
    /// A shadow receives a mirror of the traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<bool>,
    /// Predictor annotations (`seldon.io/svc-name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Predictor labels (`version` selects the pods of the subset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

impl PredictorSpec {
    /// Whether the predictor is a shadow.
    pub fn is_shadow(&self) -> bool {
        self.shadow.unwrap_or(false)
    }

    /// The `version` label of the predictor's pods: its `version` label, else its name
    /// (Seldon's defaulting webhook sets it so).
    pub fn version_label(&self) -> &str {
        self.labels
            .as_ref()
            .and_then(|l| l.get("version"))
            .map_or(self.name.as_str(), String::as_str)
    }
}

/// `seldon-<md5 hex>` for names past 63 characters, the name itself otherwise.
pub(crate) fn seldon_name(name: String) -> String {
    if name.len() > MAX_NAME {
        let digest = Md5::digest(name.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("seldon-{hex}")
    } else {
        name
    }
}

impl SeldonDeployment {
    /// The SeldonDeployment's name.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// Its namespace (empty when the manifest names none and no default was applied).
    pub fn namespace_or_empty(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or_default()
    }

    /// `<namespace>/<name>`: the model's identity in the filter configuration.
    pub fn model_id(&self) -> String {
        format!("{}/{}", self.namespace_or_empty(), self.name())
    }

    /// Seldon's `seldonId`: the name, or `seldon-<md5 hex of name>` past 63 characters.
    pub fn seldon_id(&self) -> String {
        seldon_name(self.name().to_string())
    }

    /// The Service of a predictor: its `seldon.io/svc-name` annotation, else
    /// `<sdep>-<predictor>` (hashed past 63 characters).
    pub fn predictor_service(&self, predictor: &PredictorSpec) -> String {
        match predictor
            .annotations
            .as_ref()
            .and_then(|a| a.get(SVC_NAME_ANNOTATION))
        {
            Some(name) => name.clone(),
            None => seldon_name(format!("{}-{}", self.name(), predictor.name)),
        }
    }

    /// The predictors that take traffic (not shadows), in order.
    pub fn serving_predictors(&self) -> impl Iterator<Item = &PredictorSpec> {
        self.spec.predictors.iter().filter(|p| !p.is_shadow())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdep(name: &str) -> SeldonDeployment {
        let mut s = SeldonDeployment::new(name, SeldonDeploymentSpec::default());
        s.metadata.namespace = Some("ns".into());
        s
    }

    #[test]
    fn long_names_are_hashed_like_seldon() {
        assert_eq!(sdep("iris").seldon_id(), "iris");
        let long = "a".repeat(64);
        let id = sdep(&long).seldon_id();
        // md5("a" * 64), as Seldon's operator computes it.
        assert_eq!(id, "seldon-014842d480b571495a4a0363793f7367");
        assert_eq!(sdep(&"a".repeat(63)).seldon_id(), "a".repeat(63));
    }

    #[test]
    fn service_names_follow_the_annotation_or_the_seldon_rule() {
        let s = sdep("iris");
        let mut p = PredictorSpec {
            name: "main".into(),
            ..Default::default()
        };
        assert_eq!(s.predictor_service(&p), "iris-main");
        p.annotations = Some([(SVC_NAME_ANNOTATION.to_string(), "custom".to_string())].into());
        assert_eq!(s.predictor_service(&p), "custom");
        assert_eq!(p.version_label(), "main");
        p.labels = Some([("version".to_string(), "v2".to_string())].into());
        assert_eq!(p.version_label(), "v2");
    }
}
