//! The optional AuthorizationPolicy on a model's pods: only the ingress gateway may call
//! them (so the filter cannot be bypassed from inside the mesh), plus `GET /prometheus`
//! on Seldon's metrics ports for scraping.

use crate::istio::{
    AuthorizationPolicy, AuthorizationPolicySpec, Operation, Rule, RuleFrom, RuleSource, RuleTo,
    WorkloadSelector,
};
use crate::seldon::SeldonDeployment;
use crate::settings::Settings;

/// The label Seldon puts on every pod of a SeldonDeployment, valued with its `seldonId`.
pub const SELDON_ID_LABEL: &str = "seldon-deployment-id";

/// The AuthorizationPolicy `<seldonId>` of a SeldonDeployment.
pub fn render_authorization_policy(
    sdep: &SeldonDeployment,
    settings: &Settings,
) -> AuthorizationPolicy {
    AuthorizationPolicy {
        metadata: super::owned_metadata(sdep, sdep.seldon_id()),
        spec: AuthorizationPolicySpec {
            selector: WorkloadSelector {
                match_labels: [(SELDON_ID_LABEL.to_string(), sdep.seldon_id())].into(),
            },
            action: "ALLOW".into(),
            rules: vec![
                Rule {
                    from: vec![RuleFrom {
                        source: RuleSource {
                            principals: vec![settings.gateway_principal.clone()],
                        },
                    }],
                    to: vec![],
                },
                Rule {
                    from: vec![],
                    to: vec![RuleTo {
                        operation: Operation {
                            methods: vec!["GET".into()],
                            paths: vec!["/prometheus".into()],
                            ports: vec!["6000".into(), "8000".into(), "6001".into()],
                        },
                    }],
                },
            ],
        },
    }
}
