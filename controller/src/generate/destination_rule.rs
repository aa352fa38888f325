//! One DestinationRule per predictor (shadows included), named like the predictor's
//! Service: the subset the VirtualService routes to, selected by the `version` label.

use crate::istio::{
    ClientTls, ConnectionPool, DestinationRule, DestinationRuleSpec, HttpPool, Subset,
    TrafficPolicy,
};
use crate::seldon::SeldonDeployment;
use crate::settings::Settings;

/// HTTP idle timeout to the model pods (Seldon's value).
pub const IDLE_TIMEOUT: &str = "60s";

/// The DestinationRules of a SeldonDeployment, in predictor order.
pub fn render_destination_rules(
    sdep: &SeldonDeployment,
    settings: &Settings,
) -> Vec<DestinationRule> {
    sdep.spec
        .predictors
        .iter()
        .map(|predictor| {
            let service = sdep.predictor_service(predictor);
            DestinationRule {
                metadata: super::owned_metadata(sdep, service.clone()),
                spec: DestinationRuleSpec {
                    host: format!("{service}.{}.svc.cluster.local", sdep.namespace_or_empty()),
                    subsets: vec![Subset {
                        name: predictor.name.clone(),
                        labels: [("version".to_string(), predictor.version_label().to_string())]
                            .into(),
                    }],
                    traffic_policy: TrafficPolicy {
                        connection_pool: ConnectionPool {
                            http: HttpPool {
                                idle_timeout: IDLE_TIMEOUT.into(),
                            },
                        },
                        tls: settings.destination_tls_mode.map(|mode| ClientTls {
                            mode: mode.as_str().into(),
                        }),
                    },
                },
            }
        })
        .collect()
}
