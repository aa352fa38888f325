//! Managed Gateway API Gateways (setting `routing: gateway-api`): a Gateway a model names in
//! `gatewayNamespace` that tenancy lets it claim is created when missing, like a managed
//! Istio Gateway. With Istio each one is a proxy Deployment and Service istiod deploys, so
//! the controller creates the default Gateway and at most `gatewayApi.maxCreatedGateways`
//! others, in automated deployment (no `addresses`): only the proxy istiod deploys for a
//! Gateway carries the `gateway.networking.k8s.io/gateway-name` label the extension's
//! `targetRefs` reach. Each listener accepts HTTPRoutes only from the namespaces of the
//! models on it.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use serde::Deserialize;

use super::{GeneratedModel, MAX_TARGET_REFS, tenancy};
use crate::annotations::{self, GatewayRef, ModelWarning};
use crate::gateway_api::{
    AllowedRoutes, GROUP, Gateway, GatewaySpec, Listener, ListenerTls, RouteGroupKind,
    RouteNamespaces, SecretReference,
};
use crate::seldon::SeldonDeployment;
use crate::settings::Settings;

/// The most Gateways `gatewayApi.maxCreatedGateways` may allow besides the default: the
/// extension attaches to at most [`MAX_TARGET_REFS`] Gateways, the default one of them.
pub const MAX_CREATED_GATEWAYS: usize = MAX_TARGET_REFS - 1;

/// The most namespaces a listener names in its `allowedRoutes` selector. Past it (a
/// platform's choice: a tenant adds no namespace) the listener accepts routes from every
/// namespace, and the object stays well under etcd's 1.5 MiB.
pub const MAX_LISTED_NAMESPACES: usize = 1000;

/// The label every namespace carries with its own name (Kubernetes 1.22+).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// What the controller creates with `routing: gateway-api`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct GatewayApiSettings {
    /// `gatewayClassName` of the Gateways the controller creates.
    pub class_name: String,
    /// How many Gateways besides the default the controller creates at most (each one a
    /// proxy Deployment and Service): 0 (the default) to [`MAX_CREATED_GATEWAYS`].
    pub max_created_gateways: usize,
}

impl Default for GatewayApiSettings {
    fn default() -> Self {
        Self {
            class_name: "istio".into(),
            max_created_gateways: 0,
        }
    }
}

impl GatewayApiSettings {
    /// The setting that is wrong, its value, and what was expected.
    pub fn problem(&self) -> Option<(&'static str, String, String)> {
        if !modelgate_core::names::is_dns_subdomain(&self.class_name) {
            return Some((
                "gatewayApi.className",
                self.class_name.clone(),
                "a GatewayClass name".into(),
            ));
        }
        if self.max_created_gateways > MAX_CREATED_GATEWAYS {
            return Some((
                "gatewayApi.maxCreatedGateways",
                self.max_created_gateways.to_string(),
                format!(
                    "0 to {MAX_CREATED_GATEWAYS}: the extension attaches to at most {MAX_TARGET_REFS} Gateways, the default one of them"
                ),
            ));
        }
        None
    }
}

/// The Gateway `<namespace>/<name>` as the controller creates it: HTTP on 80, HTTPS on 443
/// with the certificate of `gatewayTlsSecret` when set, each accepting HTTPRoutes from
/// `route_namespaces` only.
pub fn render_gateway_api_gateway(
    namespace: &str,
    name: &str,
    route_namespaces: &BTreeSet<String>,
    settings: &Settings,
) -> Gateway {
    let allowed_routes = AllowedRoutes {
        namespaces: if route_namespaces.len() > MAX_LISTED_NAMESPACES {
            RouteNamespaces {
                from: "All".into(),
                selector: None,
            }
        } else {
            RouteNamespaces {
                from: "Selector".into(),
                selector: Some(LabelSelector {
                    match_expressions: Some(vec![LabelSelectorRequirement {
                        key: NAMESPACE_NAME_LABEL.into(),
                        operator: "In".into(),
                        values: Some(route_namespaces.iter().cloned().collect()),
                    }]),
                    match_labels: None,
                }),
            }
        },
        kinds: vec![RouteGroupKind {
            group: GROUP.into(),
            kind: "HTTPRoute".into(),
        }],
    };
    let mut listeners = vec![Listener {
        name: "http".into(),
        port: 80,
        protocol: "HTTP".into(),
        tls: None,
        allowed_routes: allowed_routes.clone(),
    }];
    if let Some(secret) = &settings.gateway_tls_secret {
        listeners.push(Listener {
            name: "https".into(),
            port: 443,
            protocol: "HTTPS".into(),
            tls: Some(ListenerTls {
                mode: "Terminate".into(),
                certificate_refs: vec![SecretReference {
                    group: String::new(),
                    kind: "Secret".into(),
                    name: secret.clone(),
                }],
            }),
            allowed_routes,
        });
    }
    Gateway {
        metadata: super::managed_metadata(namespace, name),
        spec: GatewaySpec {
            gateway_class_name: settings.gateway_api.class_name.clone(),
            listeners,
        },
    }
}

/// The Gateway API Gateways to create when missing, in order: the default Gateway when a
/// model uses it, then those models of namespaces tenancy allows name in
/// `gatewayNamespace`, in the order of their oldest model (then by name), up to
/// `gatewayApi.maxCreatedGateways`. The models on a Gateway past the bound get a warning:
/// they are served only if it exists. (The running controller also keeps the managed ones
/// it created while models name them: [`claimed_gateway_api_gateways`].)
pub fn managed_gateway_api_gateways(
    models: &mut [GeneratedModel],
    sdeps: &[&SeldonDeployment],
    settings: &Settings,
) -> Vec<Gateway> {
    let created: BTreeMap<String, _> = sdeps
        .iter()
        .map(|s| (s.model_id(), s.metadata.creation_timestamp.clone()))
        .collect();
    let users = users(models, settings);
    // Each Gateway's oldest claim: models without a creation time (read from files) after
    // the others, by id.
    let oldest = |name: &str| {
        users[name]
            .1
            .iter()
            .map(|&i| {
                let at = created.get(&models[i].id).cloned().flatten().map(|t| t.0);
                (at.is_none(), at, models[i].id.clone())
            })
            .min()
    };
    let default = default_name(settings);
    let mut others: Vec<&str> = users
        .keys()
        .map(String::as_str)
        .filter(|name| Some(*name) != default.as_deref())
        .collect();
    others.sort_by_cached_key(|name| (oldest(name), *name));
    let max = settings.gateway_api.max_created_gateways;
    let beyond = others.split_off(others.len().min(max));
    let why = if max == 0 {
        "modelgate creates no Gateway API Gateway besides the default (setting gatewayApi.maxCreatedGateways is 0: each one is a proxy Deployment)".to_string()
    } else {
        format!(
            "modelgate creates at most {max} Gateway API Gateways besides the default (setting gatewayApi.maxCreatedGateways: each one is a proxy Deployment), taken by the Gateways of models created earlier"
        )
    };
    for name in beyond {
        for &i in &users[name].1 {
            let model = &mut models[i];
            model.warnings.push(ModelWarning {
                object: model.id.clone(),
                annotation: annotations::ISTIO_GATEWAY.into(),
                message: format!(
                    "{}/{name}: {}; the model is served only if that Gateway exists",
                    settings.gateway_namespace, why
                ),
            });
        }
    }
    let kept = default
        .as_deref()
        .filter(|d| users.contains_key(*d))
        .into_iter()
        .chain(others);
    kept.into_iter()
        .map(|name| {
            render_gateway_api_gateway(&settings.gateway_namespace, name, &users[name].0, settings)
        })
        .collect()
}

/// Every Gateway in `gatewayNamespace` models name that tenancy lets them claim, as the
/// controller would create it, bound or not: the running controller keeps a managed one it
/// already created as long as models name it ([`managed_gateway_api_gateways`] orders only
/// the Gateways still to create).
pub fn claimed_gateway_api_gateways(
    models: &[GeneratedModel],
    settings: &Settings,
) -> BTreeMap<String, Gateway> {
    users(models, settings)
        .into_iter()
        .map(|(name, (namespaces, _))| {
            let gateway = render_gateway_api_gateway(
                &settings.gateway_namespace,
                &name,
                &namespaces,
                settings,
            );
            (name, gateway)
        })
        .collect()
}

/// The name of `defaultGateway` when it is in `gatewayNamespace`.
pub fn default_name(settings: &Settings) -> Option<String> {
    match annotations::parse_gateway(&settings.default_gateway, "") {
        Ok(GatewayRef::Named { namespace, name }) if namespace == settings.gateway_namespace => {
            Some(name)
        }
        _ => None,
    }
}

/// Per Gateway name in `gatewayNamespace`: the namespaces of the models on it that tenancy
/// lets claim it, and those models (by index).
fn users(
    models: &[GeneratedModel],
    settings: &Settings,
) -> BTreeMap<String, (BTreeSet<String>, Vec<usize>)> {
    let mut users: BTreeMap<String, (BTreeSet<String>, Vec<usize>)> = BTreeMap::new();
    for (i, model) in models.iter().enumerate() {
        let Some(gateway @ GatewayRef::Named { namespace, name }) = &model.gateway else {
            continue;
        };
        if *namespace != settings.gateway_namespace
            || !tenancy::may_create_gateway(settings, &model.namespace, gateway)
        {
            continue;
        }
        let entry = users.entry(name.clone()).or_default();
        entry.0.insert(model.namespace.clone());
        entry.1.push(i);
    }
    users
}
