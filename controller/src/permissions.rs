//! The controller's Kubernetes permissions, declared once: every API request `run` makes
//! (its own, and those kube-runtime and kube-lease-manager make for it), where, and why.
//! `modelgate permissions` prints the table resolved for a settings file; the chart's RBAC
//! grants exactly that, and the tests' API-server doubles refuse anything outside it.

use serde::Serialize;

use crate::generate::EXTENSION_NAME;
use crate::settings::{RoutingApi, RunSettings, Settings};

use Verb::{Create, Delete, Get, List, Patch, Watch};

/// A verb of the API server's authorizer: what a request asks to do, as RBAC names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    /// `GET` of one object.
    Get,
    /// `GET` of a collection.
    List,
    /// `GET` of a collection with `watch=true`.
    Watch,
    /// `POST`; also a server-side apply (`PATCH`) of an object that does not exist yet.
    Create,
    /// `PUT`.
    Update,
    /// `PATCH`, server-side apply included.
    Patch,
    /// `DELETE` of one object.
    Delete,
    /// `DELETE` of a collection.
    DeleteCollection,
}

impl Verb {
    /// The name RBAC rules use.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

impl std::fmt::Display for Verb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a permission holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Scope {
    /// Requests without a namespace: cluster-scoped objects, and lists and watches across
    /// every namespace.
    Cluster,
    /// The namespaces of the models the controller watches: `run.namespaces`, or every
    /// namespace when it lists none.
    ModelNamespaces,
    /// `gatewayNamespace`, where the ingress gateway workload and the extension object
    /// (WasmPlugin or TrafficExtension) are.
    GatewayNamespace,
    /// `run.leaseNamespace`, where the leader-election Lease is.
    LeaseNamespace,
    /// Any namespace: a model may name a Gateway anywhere (tenancy decides which, in the
    /// process, before any request).
    AnyNamespace,
}

/// The objects a permission is restricted to, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Names {
    /// Any object. Creates, lists and watches carry no name to restrict.
    Any,
    /// The CRDs [`crate::run::required_crds`] checks for.
    RequiredCrds,
    /// The one extension object, of either kind ([`EXTENSION_NAME`]).
    Extension,
    /// The leader-election Lease (`run.leaseName`).
    Lease,
}

/// A setting a permission depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Condition {
    /// `authorizationPolicy`: an AuthorizationPolicy per SeldonDeployment.
    AuthorizationPolicy,
    /// `extensionKind` is `wasm-plugin`, or `auto` (which may settle on it).
    WritesWasmPlugin,
    /// `extensionKind` is `traffic-extension`, or `auto` (which may settle on it).
    WritesTrafficExtension,
    /// `routing` is `gateway-api`: an HTTPRoute per SeldonDeployment.
    GatewayApiRouting,
    /// `configByReference` is `auto` or `always`: referenced configurations stored in
    /// ConfigMaps of the controller's namespace.
    ConfigByReference,
}

impl Condition {
    fn holds(self, settings: &Settings) -> bool {
        match self {
            Condition::AuthorizationPolicy => settings.authorization_policy,
            Condition::WritesWasmPlugin => settings.extension_kind.may_write_wasm_plugin(),
            Condition::WritesTrafficExtension => {
                settings.extension_kind.may_write_traffic_extension()
            }
            Condition::GatewayApiRouting => settings.routing == RoutingApi::GatewayApi,
            Condition::ConfigByReference => {
                settings.config_by_reference != crate::settings::ConfigByReference::Never
            }
        }
    }
}

/// One row of [`TABLE`].
#[derive(Debug, Clone, Copy)]
pub struct Permission {
    /// The API group (`""` for the core group).
    pub group: &'static str,
    /// The resource, as the API server names it (plural, lower case).
    pub resource: &'static str,
    /// What may be done.
    pub verbs: &'static [Verb],
    /// Where.
    pub scope: Scope,
    /// On which objects.
    pub names: Names,
    /// The setting without which the controller never makes these requests.
    pub only_with: Option<Condition>,
    /// The code that makes the requests, and why.
    pub why: &'static str,
}

/// Every request the controller makes. A row restricted by name holds no `create`, `list`
/// or `watch`: those requests carry no name, so RBAC would refuse them.
pub const TABLE: &[Permission] = &[
    Permission {
        group: "apiextensions.k8s.io",
        resource: "customresourcedefinitions",
        verbs: &[Get],
        scope: Scope::Cluster,
        names: Names::RequiredCrds,
        only_with: None,
        why: "run::check_crds: the start-up check that the CRDs it needs are installed",
    },
    Permission {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &[Create],
        scope: Scope::LeaseNamespace,
        names: Names::Any,
        only_with: None,
        why: "run::run, leader election (kube-lease-manager): the Lease is created once",
    },
    Permission {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &[Get, Patch],
        scope: Scope::LeaseNamespace,
        names: Names::Lease,
        only_with: None,
        why: "run::run, leader election (kube-lease-manager): the Lease is read and renewed",
    },
    Permission {
        group: "",
        resource: "configmaps",
        verbs: &[Get, List, Create, Patch, Delete],
        scope: Scope::LeaseNamespace,
        names: Names::Any,
        only_with: Some(Condition::ConfigByReference),
        why: "config_documents: each referenced configuration is stored (server-side apply) before the extension object names it, read by any replica asked for it and by a new leader, and deleted once older than the 3 kept (listed by label)",
    },
    Permission {
        group: "events.k8s.io",
        resource: "events",
        verbs: &[Create, Patch],
        scope: Scope::ModelNamespaces,
        names: Names::Any,
        only_with: None,
        why: "reconcile::report (kube-runtime's Recorder): Warning Events on SeldonDeployments \
              with bad annotations; a repeated Event is patched",
    },
    Permission {
        group: "extensions.istio.io",
        resource: "trafficextensions",
        verbs: &[Create],
        scope: Scope::GatewayNamespace,
        names: Names::Any,
        only_with: Some(Condition::WritesTrafficExtension),
        why: "reconcile_global: the server-side apply of a missing TrafficExtension is a create",
    },
    Permission {
        group: "extensions.istio.io",
        resource: "trafficextensions",
        verbs: &[Patch],
        scope: Scope::GatewayNamespace,
        names: Names::Extension,
        only_with: Some(Condition::WritesTrafficExtension),
        why: "reconcile_global: apply_extension of the one TrafficExtension",
    },
    Permission {
        group: "extensions.istio.io",
        resource: "trafficextensions",
        verbs: &[Get, Delete],
        scope: Scope::GatewayNamespace,
        names: Names::Extension,
        only_with: None,
        why: "reconcile_global: the one TrafficExtension is read (apply_if_changed; \
              live_filter_config after a restart or a change of kind), and a managed one \
              deleted once a WasmPlugin replaced it (remove_other_kind)",
    },
    Permission {
        group: "extensions.istio.io",
        resource: "wasmplugins",
        verbs: &[Create],
        scope: Scope::GatewayNamespace,
        names: Names::Any,
        only_with: Some(Condition::WritesWasmPlugin),
        why: "reconcile_global: the server-side apply of a missing WasmPlugin is a create",
    },
    Permission {
        group: "extensions.istio.io",
        resource: "wasmplugins",
        verbs: &[Patch],
        scope: Scope::GatewayNamespace,
        names: Names::Extension,
        only_with: Some(Condition::WritesWasmPlugin),
        why: "reconcile_global: apply_extension of the one WasmPlugin",
    },
    Permission {
        group: "extensions.istio.io",
        resource: "wasmplugins",
        verbs: &[Get, Delete],
        scope: Scope::GatewayNamespace,
        names: Names::Extension,
        only_with: None,
        why: "reconcile_global: the one WasmPlugin is read (apply_if_changed; \
              live_filter_config after a restart or a change of kind), and a managed one \
              deleted once a TrafficExtension replaced it (remove_other_kind)",
    },
    Permission {
        group: "machinelearning.seldon.io",
        resource: "seldondeployments",
        verbs: &[List, Watch],
        scope: Scope::Cluster,
        names: Names::Any,
        only_with: None,
        why: "run::lead: Controller::new watches SeldonDeployments in every namespace \
              (run.namespaces filters them in the process)",
    },
    Permission {
        group: "networking.istio.io",
        resource: "virtualservices",
        verbs: &[List, Watch],
        scope: Scope::Cluster,
        names: Names::Any,
        only_with: None,
        why: "run::lead: Controller::owns watches the managed VirtualServices",
    },
    Permission {
        group: "networking.istio.io",
        resource: "virtualservices",
        verbs: &[Get, Create, Patch, Delete],
        scope: Scope::ModelNamespaces,
        names: Names::Any,
        only_with: None,
        why: "reconcile_model: apply_if_changed (get, then server-side apply); \
              recover_last_good and vs_routes_on read it; remove_routes deletes a removed \
              model's before the filter forgets the model",
    },
    Permission {
        group: "gateway.networking.k8s.io",
        resource: "httproutes",
        verbs: &[Get, List, Delete],
        scope: Scope::ModelNamespaces,
        names: Names::Any,
        only_with: None,
        why: "reconcile_model: with routing istio, the managed HTTPRoutes left from routing \
              gateway-api are listed by label once per namespace (reconcile::unwatched; a \
              get per model if that list fails) and each model's deleted (a Gateway the \
              filter left must route nothing); vs_routes_on and remove_routes read and \
              delete a model's",
    },
    Permission {
        group: "gateway.networking.k8s.io",
        resource: "httproutes",
        verbs: &[Create, Patch],
        scope: Scope::ModelNamespaces,
        names: Names::Any,
        only_with: Some(Condition::GatewayApiRouting),
        why: "reconcile_model: apply_if_changed of the model's HTTPRoute",
    },
    Permission {
        group: "gateway.networking.k8s.io",
        resource: "httproutes",
        verbs: &[List, Watch],
        scope: Scope::Cluster,
        names: Names::Any,
        only_with: Some(Condition::GatewayApiRouting),
        why: "run::lead: Controller::owns watches the managed HTTPRoutes",
    },
    Permission {
        group: "networking.istio.io",
        resource: "destinationrules",
        verbs: &[List, Watch],
        scope: Scope::Cluster,
        names: Names::Any,
        only_with: None,
        why: "run::lead: Controller::owns watches the managed DestinationRules",
    },
    Permission {
        group: "networking.istio.io",
        resource: "destinationrules",
        verbs: &[Get, List, Create, Patch, Delete],
        scope: Scope::ModelNamespaces,
        names: Names::Any,
        only_with: None,
        why: "reconcile_model: apply_if_changed of each predictor's DestinationRule; those of \
              predictors that are gone are listed by label and deleted",
    },
    Permission {
        group: "networking.istio.io",
        resource: "gateways",
        verbs: &[Get, Create, Patch, Delete],
        scope: Scope::AnyNamespace,
        names: Names::Any,
        only_with: None,
        why: "reconcile_global: check_gateway reads a Gateway a model names (unmanaged ones \
              are left alone) and applies it when missing; reconcile_gateways deletes managed \
              ones no model names any more",
    },
    Permission {
        group: "networking.istio.io",
        resource: "gateways",
        verbs: &[List],
        scope: Scope::Cluster,
        names: Names::Any,
        only_with: None,
        why: "reconcile_gateways: the managed Gateways, listed by label in every namespace",
    },
    Permission {
        group: "gateway.networking.k8s.io",
        resource: "gateways",
        verbs: &[Get, List, Delete],
        scope: Scope::GatewayNamespace,
        names: Names::Any,
        only_with: None,
        why: "reconcile_gateways: with routing gateway-api, check_gateway_api_gateway reads each \
              Gateway models name (those modelgate did not create are never modified); \
              remove_unused_gateway_api_gateways lists the managed ones by label and deletes \
              those no model needs (all of them after a switch back to routing istio)",
    },
    Permission {
        group: "gateway.networking.k8s.io",
        resource: "gateways",
        verbs: &[Create, Patch],
        scope: Scope::GatewayNamespace,
        names: Names::Any,
        only_with: Some(Condition::GatewayApiRouting),
        why: "reconcile_gateways: check_gateway_api_gateway applies a managed Gateway that is \
              missing or differs (the default, and at most gatewayApi.maxCreatedGateways others)",
    },
    Permission {
        group: "security.istio.io",
        resource: "authorizationpolicies",
        verbs: &[Get, List, Delete],
        scope: Scope::ModelNamespaces,
        names: Names::Any,
        only_with: None,
        why: "reconcile_model: a model's AuthorizationPolicy is read, and with \
              authorizationPolicy off the managed ones are listed by label once per namespace \
              (reconcile::unwatched; a get per model if that list fails) and each model's \
              deleted: that is how turning it off cleans up",
    },
    Permission {
        group: "security.istio.io",
        resource: "authorizationpolicies",
        verbs: &[Create, Patch],
        scope: Scope::ModelNamespaces,
        names: Names::Any,
        only_with: Some(Condition::AuthorizationPolicy),
        why: "reconcile_model: apply_if_changed of the model's AuthorizationPolicy",
    },
    Permission {
        group: "security.istio.io",
        resource: "authorizationpolicies",
        verbs: &[List, Watch],
        scope: Scope::Cluster,
        names: Names::Any,
        only_with: Some(Condition::AuthorizationPolicy),
        why: "run::lead: Controller::owns watches the managed AuthorizationPolicies",
    },
];

/// A row of [`TABLE`] resolved for given settings: concrete namespaces and names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    /// The API group (`""` for the core group).
    pub api_group: &'static str,
    /// The resource.
    pub resource: &'static str,
    /// What may be done.
    pub verbs: Vec<Verb>,
    /// Where, as declared.
    pub scope: Scope,
    /// For a namespaced scope, the namespaces it comes to; `None` is every namespace
    /// (and for [`Scope::Cluster`], no namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
    /// The objects it is restricted to; empty is any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    /// The setting it depends on, if any (it holds, or the row would not be here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only_with: Option<Condition>,
    /// The code that makes the requests, and why.
    pub why: &'static str,
}

/// One API request, as the API server's authorizer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRequest<'a> {
    /// What it asks to do.
    pub verb: Verb,
    /// The API group (`""` for the core group).
    pub group: &'a str,
    /// The resource, with `/subresource` if any.
    pub resource: &'a str,
    /// `None` for cluster-scoped objects and requests across every namespace.
    pub namespace: Option<&'a str>,
    /// The object's name; `None` for creates, lists and watches.
    pub name: Option<&'a str>,
}

impl std::fmt::Display for ApiRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() {
            "core"
        } else {
            self.group
        };
        write!(f, "{} {}/{}", self.verb, group, self.resource)?;
        if let Some(name) = self.name {
            write!(f, " {name:?}")?;
        }
        match self.namespace {
            Some(ns) => write!(f, " in namespace {ns:?}"),
            None => write!(f, " cluster-wide"),
        }
    }
}

/// [`TABLE`] resolved for the settings of one controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Permissions {
    /// The rows whose condition holds, in [`TABLE`]'s order.
    pub grants: Vec<Grant>,
}

/// How `modelgate permissions` prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

impl Permissions {
    /// The permissions of a controller running with these settings.
    pub fn resolve(settings: &Settings, run: &RunSettings) -> Self {
        let grants = TABLE
            .iter()
            .filter(|p| p.only_with.is_none_or(|c| c.holds(settings)))
            .map(|p| Grant {
                api_group: p.group,
                resource: p.resource,
                verbs: p.verbs.to_vec(),
                scope: p.scope,
                namespaces: match p.scope {
                    Scope::Cluster | Scope::AnyNamespace => None,
                    Scope::ModelNamespaces if run.namespaces.is_empty() => None,
                    Scope::ModelNamespaces => Some(run.namespaces.clone()),
                    Scope::GatewayNamespace => Some(vec![settings.gateway_namespace.clone()]),
                    Scope::LeaseNamespace => Some(vec![run.lease_namespace.clone()]),
                },
                resource_names: match p.names {
                    Names::Any => Vec::new(),
                    Names::RequiredCrds => crate::run::required_crds(settings)
                        .into_iter()
                        .map(|(name, _)| name.to_string())
                        .collect(),
                    Names::Extension => vec![EXTENSION_NAME.to_string()],
                    Names::Lease => vec![run.lease_name.clone()],
                },
                only_with: p.only_with,
                why: p.why,
            })
            .collect();
        Self { grants }
    }

    /// The grant that allows a request, if any.
    pub fn allowing(&self, request: &ApiRequest<'_>) -> Option<&Grant> {
        self.grants.iter().find(|g| g.allows(request))
    }

    /// Whether some grant allows a request.
    pub fn allows(&self, request: &ApiRequest<'_>) -> bool {
        self.allowing(request).is_some()
    }

    /// The table as `modelgate permissions` prints it.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Yaml => serde_yaml_ng::to_string(self).unwrap_or_default(),
            Format::Json => serde_json::to_string_pretty(self).unwrap_or_default() + "\n",
        }
    }
}

impl Grant {
    /// Whether this grant allows a request. Stricter than RBAC in one way only: a
    /// [`Scope::Cluster`] grant allows no request in a namespace, so a list the code
    /// makes in one namespace needs a row of its own.
    pub fn allows(&self, request: &ApiRequest<'_>) -> bool {
        let place = match (self.scope, request.namespace) {
            (Scope::Cluster, namespace) => namespace.is_none(),
            (_, None) => false,
            (_, Some(ns)) => self
                .namespaces
                .as_ref()
                .is_none_or(|only| only.iter().any(|n| n == ns)),
        };
        let named = self.resource_names.is_empty()
            || request
                .name
                .is_some_and(|name| self.resource_names.iter().any(|n| n == name));
        self.api_group == request.group
            && self.resource == request.resource
            && self.verbs.contains(&request.verb)
            && place
            && named
    }
}

#[cfg(test)]
mod tests {
    use kube::Resource;

    use super::*;
    use crate::istio::{
        AuthorizationPolicy, DestinationRule, Gateway, TrafficExtension, VirtualService, WasmPlugin,
    };
    use crate::seldon::SeldonDeployment;
    use crate::settings::ExtensionKind;

    fn request<'a>(
        verb: Verb,
        group: &'a str,
        resource: &'a str,
        namespace: Option<&'a str>,
        name: Option<&'a str>,
    ) -> ApiRequest<'a> {
        ApiRequest {
            verb,
            group,
            resource,
            namespace,
            name,
        }
    }

    #[test]
    fn rows_restricted_by_name_hold_no_verb_without_a_name() {
        for row in TABLE.iter().filter(|p| p.names != Names::Any) {
            assert!(
                !row.verbs.iter().any(|v| matches!(v, Create | List | Watch)),
                "{}: {:?} with names",
                row.resource,
                row.verbs
            );
        }
    }

    #[test]
    fn the_table_names_the_resources_of_the_kinds_the_code_uses() {
        fn resource<K: Resource<DynamicType = ()>>() -> (String, String) {
            (K::group(&()).into_owned(), K::plural(&()).into_owned())
        }
        let kinds = [
            resource::<SeldonDeployment>(),
            resource::<VirtualService>(),
            resource::<DestinationRule>(),
            resource::<Gateway>(),
            resource::<WasmPlugin>(),
            resource::<TrafficExtension>(),
            resource::<AuthorizationPolicy>(),
            resource::<crate::gateway_api::HTTPRoute>(),
            resource::<crate::gateway_api::Gateway>(),
            resource::<k8s_openapi::api::coordination::v1::Lease>(),
            resource::<k8s_openapi::api::core::v1::ConfigMap>(),
            resource::<k8s_openapi::api::events::v1::Event>(),
            resource::<
                k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
            >(),
        ];
        let rows: Vec<(String, String)> = TABLE
            .iter()
            .map(|p| (p.group.to_string(), p.resource.to_string()))
            .collect();
        for kind in &kinds {
            assert!(rows.contains(kind), "no row for {kind:?}");
        }
        for row in &rows {
            assert!(
                kinds.contains(row),
                "{row:?} is no kind the controller uses"
            );
        }
    }

    #[test]
    fn httproutes_are_written_only_with_gateway_api_routing_and_always_cleaned_up() {
        let run = RunSettings::default();
        let create = request(
            Create,
            "gateway.networking.k8s.io",
            "httproutes",
            Some("team-a"),
            None,
        );
        let delete = ApiRequest {
            verb: Delete,
            name: Some("iris"),
            ..create
        };
        let watch = ApiRequest {
            verb: Watch,
            namespace: None,
            ..create
        };
        // Listed in a model's namespace, not across namespaces: the managed ones an
        // earlier process left (reconcile::unwatched).
        let list = ApiRequest {
            verb: List,
            ..create
        };
        let list_all = ApiRequest {
            verb: List,
            namespace: None,
            ..create
        };
        let istio = Permissions::resolve(&Settings::default(), &run);
        assert!(!istio.allows(&create) && !istio.allows(&watch) && !istio.allows(&list_all));
        assert!(
            istio.allows(&delete) && istio.allows(&list),
            "switching back to istio removes them"
        );
        let gateway_api = Permissions::resolve(
            &Settings {
                routing: RoutingApi::GatewayApi,
                ..Settings::default()
            },
            &run,
        );
        for r in [create, delete, watch, list, list_all] {
            assert!(gateway_api.allows(&r), "{r}");
        }
    }

    #[test]
    fn authorization_policies_are_listed_in_the_models_namespaces_even_when_off() {
        let run = RunSettings {
            namespaces: vec!["team-a".into()],
            ..RunSettings::default()
        };
        let list = request(
            List,
            "security.istio.io",
            "authorizationpolicies",
            Some("team-a"),
            None,
        );
        let off = Permissions::resolve(&Settings::default(), &run);
        assert!(off.allows(&list));
        assert!(!off.allows(&ApiRequest {
            namespace: Some("kube-system"),
            ..list
        }));
        assert!(!off.allows(&ApiRequest {
            namespace: None,
            ..list
        }));
    }

    #[test]
    fn gateway_api_gateways_are_written_only_in_the_gateway_namespace_with_gateway_api_routing() {
        let run = RunSettings::default();
        let in_namespace = |verb, namespace| {
            request(
                verb,
                "gateway.networking.k8s.io",
                "gateways",
                Some(namespace),
                (!matches!(verb, Create | List)).then_some("seldon-gateway"),
            )
        };
        let istio = Permissions::resolve(&Settings::default(), &run);
        let gateway_api = Permissions::resolve(
            &Settings {
                routing: RoutingApi::GatewayApi,
                ..Settings::default()
            },
            &run,
        );
        // Read, listed and deleted in both modes: switching back to istio cleans up.
        for verb in [Get, List, Delete] {
            assert!(istio.allows(&in_namespace(verb, "istio-system")), "{verb}");
            assert!(
                gateway_api.allows(&in_namespace(verb, "istio-system")),
                "{verb}"
            );
        }
        for verb in [Create, Patch] {
            assert!(!istio.allows(&in_namespace(verb, "istio-system")), "{verb}");
            assert!(
                gateway_api.allows(&in_namespace(verb, "istio-system")),
                "{verb}"
            );
        }
        // Nowhere else, and not across namespaces.
        for verb in [Get, List, Create, Patch, Delete] {
            assert!(!gateway_api.allows(&in_namespace(verb, "team-a")), "{verb}");
        }
        assert!(!gateway_api.allows(&ApiRequest {
            namespace: None,
            ..in_namespace(List, "istio-system")
        }));
    }

    #[test]
    fn resolves_namespaces_names_and_conditions_from_the_settings() {
        let settings = Settings::default();
        let run = RunSettings {
            namespaces: vec!["team-a".into()],
            ..RunSettings::default()
        };
        let permissions = Permissions::resolve(&settings, &run);
        assert!(
            !permissions
                .grants
                .iter()
                .any(|g| g.only_with == Some(Condition::AuthorizationPolicy))
        );
        let lease = request(
            Patch,
            "coordination.k8s.io",
            "leases",
            Some("modelgate-system"),
            Some("modelgate-leader"),
        );
        assert!(permissions.allows(&lease));
        assert!(!permissions.allows(&ApiRequest {
            name: Some("kube-controller-manager"),
            ..lease
        }));
        let vs = request(
            Create,
            "networking.istio.io",
            "virtualservices",
            Some("team-a"),
            None,
        );
        assert!(permissions.allows(&vs));
        assert!(!permissions.allows(&ApiRequest {
            namespace: Some("kube-system"),
            ..vs
        }));
        // Gateways anywhere; but listing them in one namespace is no request the code makes.
        let gateway = request(
            Get,
            "networking.istio.io",
            "gateways",
            Some("edge"),
            Some("models-gateway"),
        );
        assert!(permissions.allows(&gateway));
        assert!(!permissions.allows(&ApiRequest {
            verb: List,
            name: None,
            ..gateway
        }));
        assert!(permissions.allows(&ApiRequest {
            verb: List,
            name: None,
            namespace: None,
            ..gateway
        }));
        let crd = request(
            Get,
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            None,
            Some("authorizationpolicies.security.istio.io"),
        );
        assert!(!permissions.allows(&crd));

        let with_policies = Settings {
            authorization_policy: true,
            ..Settings::default()
        };
        let permissions = Permissions::resolve(&with_policies, &run);
        assert!(permissions.allows(&crd));
        assert!(permissions.allows(&request(
            Watch,
            "security.istio.io",
            "authorizationpolicies",
            None,
            None
        )));
    }

    #[test]
    fn refuses_what_no_row_declares() {
        let permissions = Permissions::resolve(&Settings::default(), &RunSettings::default());
        for outside in [
            request(List, "", "secrets", None, None),
            request(Get, "", "secrets", Some("istio-system"), Some("tls")),
            request(
                Patch,
                "machinelearning.seldon.io",
                "seldondeployments",
                Some("models"),
                Some("iris"),
            ),
            request(
                Delete,
                "extensions.istio.io",
                "wasmplugins",
                Some("istio-system"),
                Some("someone-elses"),
            ),
            request(
                Delete,
                "extensions.istio.io",
                "trafficextensions",
                Some("models"),
                Some("modelgate"),
            ),
            request(
                Patch,
                "extensions.istio.io",
                "wasmplugins",
                Some("istio-system"),
                Some("someone-elses"),
            ),
            request(Create, "", "events", Some("models"), None),
        ] {
            assert!(!permissions.allows(&outside), "{outside} allowed");
        }
    }

    #[test]
    fn an_explicit_extension_kind_writes_only_its_own_kind_and_may_delete_the_other() {
        let run = RunSettings::default();
        let object = |verb, resource| {
            request(
                verb,
                "extensions.istio.io",
                resource,
                Some("istio-system"),
                (verb != Create).then_some("modelgate"),
            )
        };
        let auto = Permissions::resolve(&Settings::default(), &run);
        for resource in ["wasmplugins", "trafficextensions"] {
            for verb in [Get, Create, Patch, Delete] {
                assert!(
                    auto.allows(&object(verb, resource)),
                    "auto: {verb} {resource}"
                );
            }
        }
        for (kind, writes, other) in [
            (
                ExtensionKind::WasmPlugin,
                "wasmplugins",
                "trafficextensions",
            ),
            (
                ExtensionKind::TrafficExtension,
                "trafficextensions",
                "wasmplugins",
            ),
        ] {
            let settings = Settings {
                extension_kind: kind,
                ..Settings::default()
            };
            let permissions = Permissions::resolve(&settings, &run);
            for verb in [Get, Create, Patch, Delete] {
                assert!(
                    permissions.allows(&object(verb, writes)),
                    "{kind}: {verb} {writes}"
                );
            }
            // The other kind's object is only read and, when modelgate made it, deleted.
            for verb in [Get, Delete] {
                assert!(
                    permissions.allows(&object(verb, other)),
                    "{kind}: {verb} {other}"
                );
            }
            for verb in [Create, Patch] {
                assert!(
                    !permissions.allows(&object(verb, other)),
                    "{kind}: {verb} {other}"
                );
            }
        }
    }

    #[test]
    fn prints_yaml_and_json() {
        let permissions = Permissions::resolve(&Settings::default(), &RunSettings::default());
        let json: serde_json::Value =
            serde_json::from_str(&permissions.render(Format::Json)).unwrap();
        assert_eq!(json[0]["apiGroup"], "apiextensions.k8s.io");
        assert_eq!(json[0]["verbs"], serde_json::json!(["get"]));
        assert_eq!(json[0]["scope"], "cluster");
        let yaml: serde_json::Value =
            serde_yaml_ng::from_str(&permissions.render(Format::Yaml)).unwrap();
        assert_eq!(yaml, json);
    }
}
