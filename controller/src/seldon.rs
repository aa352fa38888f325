//! The SeldonDeployment (`machinelearning.seldon.io/v1`), typed with just the fields the
//! controller reads, the checks its spec must pass, and Seldon's naming rules for the
//! objects derived from it.

use std::collections::BTreeMap;

use kube::CustomResource;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::annotations::ModelError;
use modelgate_core::names::{is_dns_label, is_dns_subdomain};

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

    /// Every problem with the names and predictors the generated objects depend on.
    pub fn spec_errors(&self) -> Vec<ModelError> {
        let mut errors = Vec::new();
        let mut error = |field: String, value: &str, expected: &str| {
            errors.push(ModelError::Spec {
                object: self.model_id(),
                field,
                value: value.to_string(),
                expected: expected.to_string(),
            });
        };
        if !is_dns_label(self.namespace_or_empty()) {
            error(
                "metadata.namespace".into(),
                self.namespace_or_empty(),
                "a namespace name",
            );
        }
        if !is_dns_subdomain(self.name()) {
            error(
                "metadata.name".into(),
                self.name(),
                "a Kubernetes object name",
            );
        }
        let predictors = &self.spec.predictors;
        if predictors.is_empty() {
            error("spec.predictors".into(), "[]", "at least one predictor");
            return errors;
        }
        for (i, p) in predictors.iter().enumerate() {
            if !is_dns_label(&p.name) {
                error(
                    format!("spec.predictors[{i}].name"),
                    &p.name,
                    "a DNS label (lowercase letters, digits and '-', at most 63): it names an Istio subset",
                );
            } else if predictors[..i].iter().any(|q| q.name == p.name) {
                error(
                    format!("spec.predictors[{i}].name"),
                    &p.name,
                    "a name no other predictor has",
                );
            }
            if let Some(traffic) = p.traffic
                && !(0..=i64::from(i32::MAX)).contains(&traffic)
            {
                error(
                    format!("spec.predictors[{i}].traffic"),
                    &traffic.to_string(),
                    "a weight of 0 or more",
                );
            }
            if let Some(svc) = p
                .annotations
                .as_ref()
                .and_then(|a| a.get(SVC_NAME_ANNOTATION))
                && !is_dns_label(svc)
            {
                error(
                    format!("spec.predictors[{i}].annotations[{SVC_NAME_ANNOTATION}]"),
                    svc,
                    "a Service name (DNS label)",
                );
            }
        }
        let serving: Vec<_> = self.serving_predictors().collect();
        if serving.is_empty() {
            error(
                "spec.predictors".into(),
                "only shadows",
                "at least one predictor that is not a shadow",
            );
        } else if serving.len() > 1 && serving.iter().all(|p| p.traffic.unwrap_or(0) == 0) {
            error(
                "spec.predictors[*].traffic".into(),
                "all 0",
                "traffic weights that are not all 0 when there are several predictors",
            );
        }
        let shadows = predictors.iter().filter(|p| p.is_shadow()).count();
        if shadows > 1 {
            error(
                "spec.predictors[*].shadow".into(),
                &format!("{shadows} shadows"),
                "at most one shadow predictor (a route mirrors to one destination)",
            );
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdep(name: &str) -> SeldonDeployment {
        SeldonDeployment::fixture("ns", name)
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

    /// Two predictors, `a` (80) and `b` (20).
    fn two_predictors() -> SeldonDeployment {
        sdep("iris").predictor("a", 80).predictor("b", 20)
    }

    fn spec_errors(s: &SeldonDeployment) -> Vec<String> {
        s.spec_errors().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn spec_problems_are_errors_with_their_field() {
        assert!(spec_errors(&two_predictors()).is_empty());

        let mut s = two_predictors();
        s.spec.predictors[1].name = "A_B".into();
        s.spec.predictors[0].traffic = Some(-1);
        let err = spec_errors(&s);
        assert!(
            err.iter()
                .any(|e| e.contains("spec.predictors[1].name=\"A_B\": a DNS label")),
            "{err:?}"
        );
        assert!(
            err.iter()
                .any(|e| e.contains("spec.predictors[0].traffic=\"-1\"")),
            "{err:?}"
        );

        let mut s = two_predictors();
        s.spec.predictors[0].traffic = Some(0);
        s.spec.predictors[1].traffic = None;
        let err = spec_errors(&s);
        assert!(err[0].contains("not all 0"), "{err:?}");

        let mut s = two_predictors();
        s.spec.predictors[1].name = "a".into();
        let err = spec_errors(&s);
        assert!(err[0].contains("a name no other predictor has"), "{err:?}");

        let mut s = two_predictors();
        s.spec.predictors[0].shadow = Some(true);
        s.spec.predictors[1].shadow = Some(true);
        let err = spec_errors(&s);
        assert!(
            err.iter()
                .any(|e| e.contains("at least one predictor that is not a shadow")),
            "{err:?}"
        );
        assert!(
            err.iter().any(|e| e.contains("at most one shadow")),
            "{err:?}"
        );
    }
}
