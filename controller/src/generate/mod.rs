//! Generation: a pure function from the SeldonDeployments and the settings (plus the
//! fetched JWKS and each model's last good configuration) to every object the controller
//! applies. `render` prints its result, `run` applies it; tests call it directly.

mod authorization_policy;
pub mod by_reference;
mod destination_rule;
mod extension;
pub mod filter_config;
mod gateway;
pub mod gateway_api_gateway;
pub mod http_route;
pub mod tenancy;
mod traffic_extension;
mod virtual_service;
mod wasm_plugin;

use std::borrow::{Borrow, Cow};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use modelgate_core::config::{FilterConfig, KeySet};

pub use authorization_policy::render_authorization_policy;
pub use destination_rule::render_destination_rules;
pub use extension::{
    EXTENSION_NAME, Extension, MAX_TARGET_REFS, WasmSource, render_extension,
    render_extension_with_document, served_path,
};
pub use gateway::render_gateway;
pub use http_route::render_http_route;
pub use traffic_extension::render_traffic_extension;
pub use virtual_service::render_virtual_service;
pub use wasm_plugin::render_wasm_plugin;

use self::filter_config::ModelEntry;
use crate::annotations::{self, GatewayRef, ModelError, ModelOptions, ModelWarning, PolicySpec};
use crate::gateway_api::HTTPRoute;
use crate::istio::{AuthorizationPolicy, DestinationRule, Gateway, VirtualService};
use crate::seldon::SeldonDeployment;
use crate::settings::{RoutingApi, Settings};

/// The label every generated object carries.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "modelgate");
/// The label naming the SeldonDeployment (its `seldonId`) an object belongs to.
pub const MODEL_LABEL: &str = "modelgate.seldon.io/seldon-deployment";
/// The filter's root id, the extension's `pluginName` (the contract's).
pub use modelgate_core::config::FILTER_ROOT_ID;

/// What a model's configuration was the last time its annotations parsed; used when they
/// stop parsing, so a typo never takes a model down.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownGood {
    /// Its filter entry.
    pub entry: ModelEntry,
    /// The gateway its VirtualService uses (kept alive while it is referenced).
    pub gateway: GatewayRef,
}

/// What generation needs besides the SeldonDeployments.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// Controller settings.
    pub settings: &'a Settings,
    /// Keys fetched for each JWKS URI.
    pub jwks: &'a BTreeMap<String, KeySet>,
    /// Last good configuration of each model, by `<namespace>/<name>`.
    pub last_good: &'a BTreeMap<String, KnownGood>,
    /// Where the filter module is.
    pub wasm: &'a WasmSource,
}

/// What routes one SeldonDeployment's requests (setting `routing`).
#[derive(Debug, Clone)]
pub enum Routes {
    /// Its VirtualService (`istio`).
    VirtualService(VirtualService),
    /// Its HTTPRoute (`gateway-api`).
    HttpRoute(HTTPRoute),
}

impl Routes {
    /// Removes the routes that match on the header `header` (the A/B header's
    /// per-predictor routes).
    pub fn drop_routes_on_header(&mut self, header: &str) {
        match self {
            Routes::VirtualService(vs) => vs
                .spec
                .http
                .retain(|route| !route.r#match.iter().any(|m| m.headers.contains_key(header))),
            Routes::HttpRoute(route) => route.spec.rules.retain(|rule| {
                !rule
                    .matches
                    .iter()
                    .any(|m| m.headers.iter().any(|h| h.name == header))
            }),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        match self {
            Routes::VirtualService(vs) => to_json(vs),
            Routes::HttpRoute(route) => to_json(route),
        }
    }
}

/// The objects of one SeldonDeployment.
#[derive(Debug, Clone)]
pub struct ModelObjects {
    /// Its VirtualService or HTTPRoute.
    pub routes: Routes,
    /// One DestinationRule per predictor (with Gateway API routing too: Istio applies
    /// their connection and TLS settings to the Services the HTTPRoute names).
    pub destination_rules: Vec<DestinationRule>,
    /// Its AuthorizationPolicy, when enabled.
    pub authorization_policy: Option<AuthorizationPolicy>,
}

impl ModelObjects {
    /// Hands each object to `each` as JSON, in apply order.
    fn each_json<E>(
        &self,
        mut each: impl FnMut(serde_json::Value) -> Result<(), E>,
    ) -> Result<(), E> {
        each(self.routes.to_json())?;
        for rule in &self.destination_rules {
            each(to_json(rule))?;
        }
        if let Some(policy) = &self.authorization_policy {
            each(to_json(policy))?;
        }
        Ok(())
    }
}

/// The outcome for one SeldonDeployment.
#[derive(Debug, Clone)]
pub struct GeneratedModel {
    /// `<namespace>/<name>`.
    pub id: String,
    /// Its namespace.
    pub namespace: String,
    /// Its `seldonId` (the label value of its objects).
    pub seldon_id: String,
    /// Its objects (`None` from [`shared`], which leaves them out), or why they cannot be
    /// generated.
    pub objects: Result<Option<Box<ModelObjects>>, Vec<ModelError>>,
    /// Warnings to show the user.
    pub warnings: Vec<ModelWarning>,
    /// Its configuration now, to remember as last good (only when it parsed).
    pub known_good: Option<KnownGood>,
    /// The gateway its VirtualService is on: the one it names, or, when its annotations
    /// do not parse, the one of its last good configuration.
    pub gateway: Option<GatewayRef>,
}

/// Everything generated from all SeldonDeployments.
#[derive(Debug, Clone)]
pub struct Generated {
    /// Per SeldonDeployment, ordered by namespace and name.
    pub models: Vec<GeneratedModel>,
    /// Gateways to create when missing, ordered by namespace and name: those a model
    /// names that the controller may create for it ([`tenancy::may_create_gateway`]).
    pub gateways: Vec<Gateway>,
    /// Gateway API Gateways to create when missing (`routing: gateway-api`), the default
    /// first, then by their oldest model ([`gateway_api_gateway::managed_gateway_api_gateways`]).
    pub gateway_api_gateways: Vec<crate::gateway_api::Gateway>,
    /// Every model's filter entry, by `<namespace>/<name>`, as in `filter_config`.
    pub entries: BTreeMap<String, ModelEntry>,
    /// The filter configuration.
    pub filter_config: FilterConfig,
    /// The WasmPlugin or TrafficExtension carrying it.
    pub extension: Extension,
    /// The document its `pluginConfig` refers to, when it is a reference
    /// (`configByReference`): to publish before the object is applied.
    pub document: Option<by_reference::ConfigDocument>,
    /// JWKS URIs the filter configuration uses (to fetch).
    pub jwks_uris: BTreeSet<String>,
}

impl Generated {
    /// Every error of every model.
    pub fn errors(&self) -> impl Iterator<Item = &ModelError> {
        self.models
            .iter()
            .filter_map(|m| m.objects.as_ref().err())
            .flatten()
    }

    /// Every warning of every model.
    pub fn warnings(&self) -> impl Iterator<Item = &ModelWarning> {
        self.models.iter().flat_map(|m| &m.warnings)
    }

    /// Every object in apply order, as JSON: Gateways (Istio's, then Gateway API's), then each model's VirtualService
    /// (or HTTPRoute), DestinationRules and AuthorizationPolicy, then the extension (WasmPlugin or
    /// TrafficExtension).
    pub fn objects(&self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        let mut each = |object| {
            out.push(object);
            Ok::<(), std::convert::Infallible>(())
        };
        let listed = self.each_object(
            |model, _| Some(Cow::Borrowed(model.objects.as_ref().ok()?.as_deref()?)),
            &mut each,
        );
        match listed {
            Ok(()) => {}
        }
        out.push(to_json(&self.extension));
        out
    }

    /// Hands the Gateways and each model's own objects to `each` in apply order (see
    /// [`Generated::objects`]; the extension comes after them), one at a time, a model's
    /// own objects taken from `objects_of` (with its index).
    fn each_object<E>(
        &self,
        objects_of: impl for<'m> Fn(&'m GeneratedModel, usize) -> Option<Cow<'m, ModelObjects>>,
        each: &mut impl FnMut(serde_json::Value) -> Result<(), E>,
    ) -> Result<(), E> {
        for gateway in &self.gateways {
            each(to_json(gateway))?;
        }
        for gateway in &self.gateway_api_gateways {
            each(to_json(gateway))?;
        }
        for (index, model) in self.models.iter().enumerate() {
            if model.objects.is_err() {
                continue;
            }
            if let Some(objects) = objects_of(model, index) {
                objects.each_json(&mut *each)?;
            }
        }
        Ok(())
    }
}

/// The extension as JSON, its `pluginConfig` (the configuration of every model) moved
/// into place rather than copied.
fn extension_into_json(mut extension: Extension) -> serde_json::Value {
    let (slot, path) = match &mut extension {
        Extension::WasmPlugin(p) => (&mut p.spec.plugin_config, "/spec/pluginConfig"),
        Extension::TrafficExtension(t) => {
            (&mut t.spec.wasm.plugin_config, "/spec/wasm/pluginConfig")
        }
    };
    let config = std::mem::take(slot);
    let mut json = to_json(&extension);
    *json
        .pointer_mut(path)
        .expect("both extension kinds serialise their pluginConfig, null included") = config;
    json
}

/// [`generate`] with each model's own objects made only when they are written
/// ([`Planned::each_object`]): `render` of 100,000 models never holds more than one
/// model's objects at once.
#[derive(Debug)]
pub struct Planned<'a> {
    /// Everything but the models' own objects, as [`shared`] returns it: a model whose
    /// objects are generated has `objects: Ok(None)`.
    pub generated: Generated,
    /// Per model of `generated.models`, what its objects are made from, when it has them.
    sources: Vec<Option<(&'a SeldonDeployment, ModelOptions)>>,
    settings: Settings,
}

impl Planned<'_> {
    /// Hands every object to `each` in apply order, as [`Generated::objects`] lists them
    /// for [`generate`], each model's made just before it is handed over.
    pub fn each_object<E>(
        self,
        mut each: impl FnMut(serde_json::Value) -> Result<(), E>,
    ) -> Result<(), E> {
        let (sources, settings) = (&self.sources, &self.settings);
        self.generated.each_object(
            |_, index| {
                let (sdep, options) = sources[index].as_ref()?;
                Some(Cow::Owned(model_objects(sdep, options, settings)))
            },
            &mut each,
        )?;
        each(extension_into_json(self.generated.extension))
    }

    /// [`Planned::each_object`] as bytes: `encode` turns each object into bytes, the
    /// models' own objects on up to `threads` threads, `chunk` models at a time each, and
    /// `write` gets the bytes in apply order, a run of objects at a time. Holds at most
    /// `threads` × `chunk` models' bytes at once.
    pub fn encode_each_object<E>(
        self,
        threads: usize,
        chunk: usize,
        encode: impl Fn(&serde_json::Value, &mut Vec<u8>) + Sync,
        mut write: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let (threads, chunk) = (threads.max(1), chunk.max(1));
        let mut bytes = Vec::new();
        for gateway in &self.generated.gateways {
            encode(&to_json(gateway), &mut bytes);
        }
        for gateway in &self.generated.gateway_api_gateways {
            encode(&to_json(gateway), &mut bytes);
        }
        write(&bytes)?;
        let encode_models = |models: std::ops::Range<usize>| {
            let mut bytes = Vec::new();
            for index in models {
                let model = &self.generated.models[index];
                if let (Ok(_), Some((sdep, options))) = (&model.objects, &self.sources[index]) {
                    let encoded =
                        model_objects(sdep, options, &self.settings).each_json(|object| {
                            encode(&object, &mut bytes);
                            Ok::<(), std::convert::Infallible>(())
                        });
                    match encoded {
                        Ok(()) => {}
                    }
                }
            }
            bytes
        };
        let count = self.generated.models.len();
        let mut start = 0;
        while start < count {
            let runs: Vec<std::ops::Range<usize>> = (0..threads)
                .map(|i| (start + i * chunk).min(count)..(start + (i + 1) * chunk).min(count))
                .filter(|run| !run.is_empty())
                .collect();
            start = runs.last().map_or(count, |run| run.end);
            let encoded: Vec<Vec<u8>> = if runs.len() == 1 {
                runs.into_iter().map(encode_models).collect()
            } else {
                std::thread::scope(|scope| {
                    let workers: Vec<_> = runs
                        .into_iter()
                        .map(|run| scope.spawn(|| encode_models(run)))
                        .collect();
                    workers
                        .into_iter()
                        .map(|worker| match worker.join() {
                            Ok(bytes) => bytes,
                            Err(panic) => std::panic::resume_unwind(panic),
                        })
                        .collect()
                })
            };
            for bytes in &encoded {
                write(bytes)?;
            }
        }
        bytes.clear();
        encode(&extension_into_json(self.generated.extension), &mut bytes);
        write(&bytes)
    }

    /// [`Generated`] with every model's objects, as [`generate`] returns it.
    pub fn into_generated(self) -> Generated {
        let mut generated = self.generated;
        for (model, source) in generated.models.iter_mut().zip(self.sources) {
            if let (Ok(objects), Some((sdep, options))) = (&mut model.objects, source) {
                *objects = Some(Box::new(model_objects(sdep, &options, &self.settings)));
            }
        }
        generated
    }
}

/// One model's own objects.
fn model_objects(
    sdep: &SeldonDeployment,
    options: &ModelOptions,
    settings: &Settings,
) -> ModelObjects {
    ModelObjects {
        routes: if settings.routing == RoutingApi::GatewayApi {
            Routes::HttpRoute(render_http_route(sdep, options))
        } else {
            Routes::VirtualService(render_virtual_service(sdep, options))
        },
        destination_rules: render_destination_rules(sdep, settings),
        authorization_policy: settings
            .authorization_policy
            .then(|| render_authorization_policy(sdep, settings)),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect(
        "serialising an Istio object is infallible: derived Serialize, string map keys only",
    )
}

/// Generates every object from all SeldonDeployments.
pub fn generate<S: Borrow<SeldonDeployment>>(sdeps: &[S], inputs: Inputs<'_>) -> Generated {
    plan(sdeps, inputs).into_generated()
}

/// What the shared objects (Gateways, the extension) need from all SeldonDeployments:
/// [`generate`] without each model's own objects, which the running controller
/// reconciles model by model. Over thousands of models those are most of the memory and
/// time of a generation, which the shared objects' loop repeats.
pub fn shared<S: Borrow<SeldonDeployment>>(sdeps: &[S], inputs: Inputs<'_>) -> Generated {
    plan(sdeps, inputs).generated
}

/// [`generate`], each model's own objects left to be made one at a time ([`Planned`]).
/// The SeldonDeployments are borrowed, whether owned (`render`) or shared (the running
/// controller's cache): a pass over 100,000 models copies none of them.
pub fn plan<'a, S: Borrow<SeldonDeployment>>(sdeps: &'a [S], inputs: Inputs<'_>) -> Planned<'a> {
    let sdeps: Vec<&'a SeldonDeployment> = sdeps.iter().map(Borrow::borrow).collect();
    let mut sorted = sdeps.clone();
    sorted.sort_by_key(|s| (s.namespace_or_empty().to_string(), s.name().to_string()));

    let mut seen = BTreeSet::new();
    // Models that say the same share one copy of their keys and of their policy.
    let mut inline_keys = annotations::InlineKeys::default();
    let mut policies = HashMap::new();
    let mut parsed: Vec<(&SeldonDeployment, String, annotations::Parsed)> = sorted
        .into_iter()
        .map(|sdep| {
            let id = sdep.model_id();
            let mut parsed = annotations::parse_with(sdep, inputs.settings, &mut inline_keys);
            if let Ok(ModelOptions {
                policy: PolicySpec::Jwt(jwt, _),
                ..
            }) = &mut parsed.options
            {
                *jwt = share(&mut policies, jwt);
            }
            if !seen.insert(id.clone()) {
                parsed.options = Err(vec![ModelError::Spec {
                    object: id.clone(),
                    field: "metadata.name".into(),
                    value: sdep.name().into(),
                    expected: "a name no other SeldonDeployment in the namespace has".into(),
                }]);
            }
            (sdep, id, parsed)
        })
        .collect();
    // Hostnames belong to whoever claimed them first, across the whole set.
    let claims: Vec<tenancy::HostClaim<'_>> = parsed
        .iter()
        .filter_map(|(sdep, id, p)| {
            let options = p.options.as_ref().ok()?;
            Some(tenancy::HostClaim {
                id,
                namespace: sdep.namespace_or_empty(),
                created: sdep.metadata.creation_timestamp.as_ref(),
                hosts: &options.hosts,
                from: options.hosts_from,
            })
        })
        .collect();
    let mut refused = tenancy::refused_hosts(&claims, &inputs.settings.tenancy);
    drop(claims);
    for (sdep, id, p) in &mut parsed {
        if let Some(error) = refused.remove(id.as_str()) {
            p.options = Err(vec![error]);
        }
        if inputs.settings.routing == RoutingApi::GatewayApi
            && let Ok(options) = &p.options
        {
            let errors = http_route::refusals(sdep, options, inputs.settings);
            if errors.is_empty() {
                p.warnings.extend(http_route::warnings(sdep, options));
            } else {
                p.options = Err(errors);
            }
        }
    }
    let gateway_api = inputs.settings.routing == RoutingApi::GatewayApi;
    if gateway_api {
        bound_extension_targets(&mut parsed, inputs.settings, inputs.last_good);
    }

    let mut models = Vec::with_capacity(parsed.len());
    let mut sources = Vec::with_capacity(parsed.len());
    let mut entries = BTreeMap::new();
    let mut gateways_used = BTreeSet::new();
    for (sdep, id, parsed) in parsed {
        let mut warnings = parsed.warnings;
        let options = parsed.options;
        let namespace = sdep.namespace_or_empty();
        let model = match options {
            Ok(mut options) => {
                if options.gateway == GatewayRef::Mesh {
                    warnings.push(ModelWarning {
                        object: id.clone(),
                        annotation: annotations::ISTIO_GATEWAY.into(),
                        message: "mesh: the model is reachable in the mesh only, where the ingress filter does not guard it".into(),
                    });
                }
                let entry = ModelEntry::new(sdep, &options);
                entries.insert(id.clone(), entry.clone());
                if gateway_api {
                    // Gateway API Gateways: see `managed_gateway_api_gateways` below.
                } else if tenancy::may_create_gateway(inputs.settings, namespace, &options.gateway)
                {
                    gateways_used.insert(options.gateway.clone());
                } else if options.gateway != GatewayRef::Mesh {
                    warnings.push(ModelWarning {
                        object: id.clone(),
                        annotation: annotations::ISTIO_GATEWAY.into(),
                        message: format!(
                            "{}: modelgate does not create Gateways in namespace {} for models of namespace {namespace} (setting tenancy.gatewayNamespaces); the model is served only if that Gateway exists",
                            options.gateway,
                            match &options.gateway {
                                GatewayRef::Named { namespace, .. } => namespace.as_str(),
                                GatewayRef::Mesh => "",
                            }
                        ),
                    });
                }
                let model = GeneratedModel {
                    id: id.clone(),
                    namespace: sdep.namespace_or_empty().into(),
                    seldon_id: sdep.seldon_id(),
                    objects: Ok(None),
                    warnings,
                    gateway: Some(options.gateway.clone()),
                    known_good: Some(KnownGood {
                        entry,
                        gateway: options.gateway.clone(),
                    }),
                };
                // The objects never read the policy, which the entry holds.
                options.policy = PolicySpec::None;
                sources.push(Some((sdep, options)));
                model
            }
            Err(errors) => {
                let good = inputs.last_good.get(&id);
                let entry = match good {
                    Some(good) => {
                        if !gateway_api
                            && tenancy::may_create_gateway(
                                inputs.settings,
                                namespace,
                                &good.gateway,
                            )
                        {
                            gateways_used.insert(good.gateway.clone());
                        }
                        good.entry.clone()
                    }
                    None => {
                        let subjects: BTreeSet<&str> =
                            errors.iter().map(ModelError::subject).collect();
                        ModelEntry::deny(format!(
                            "no valid configuration yet: {}",
                            subjects.into_iter().collect::<Vec<_>>().join(", ")
                        ))
                    }
                };
                entries.insert(id.clone(), entry);
                sources.push(None);
                GeneratedModel {
                    id: id.clone(),
                    namespace: sdep.namespace_or_empty().into(),
                    seldon_id: sdep.seldon_id(),
                    objects: Err(errors),
                    warnings,
                    known_good: None,
                    gateway: good.map(|g| g.gateway.clone()),
                }
            }
        };
        models.push(model);
    }

    let gateways = gateways_used
        .iter()
        .filter_map(|g| match g {
            GatewayRef::Mesh => None,
            GatewayRef::Named { namespace, name } => {
                Some(render_gateway(namespace, name, inputs.settings))
            }
        })
        .collect();
    let jwks_uris = entries
        .values()
        .filter_map(|e| e.jwks_uri().map(str::to_string))
        .collect();
    // Only what the filter's compiler accepts, within the budgets: a model turned away gets
    // the error and keeps its objects as they are (its last good configuration).
    let last_good: BTreeMap<String, ModelEntry> = inputs
        .last_good
        .iter()
        .map(|(id, good)| (id.clone(), good.entry.clone()))
        .collect();
    let (filter_config, refused) = filter_config::admit(
        &mut entries,
        inputs.jwks,
        &last_good,
        &newest_first(&sdeps),
        filter_config::Budgets {
            config_bytes: inputs.settings.config_budget_bytes(),
            limits: inputs.settings.key_limits(),
        },
    );
    for model in &mut models {
        if let Some(why) = refused.get(&model.id) {
            let error = ModelError::Filter {
                object: model.id.clone(),
                message: why.clone(),
            };
            match &mut model.objects {
                Err(errors) => errors.push(error),
                objects => *objects = Err(vec![error]),
            }
            model.known_good = None;
        }
    }
    let gateway_api_gateways = if gateway_api {
        gateway_api_gateway::managed_gateway_api_gateways(&mut models, &sdeps, inputs.settings)
    } else {
        Vec::new()
    };
    let targets = extension_targets(&models, inputs.settings);
    let (extension, document) =
        render_extension_with_document(&filter_config, inputs.settings, inputs.wasm, &targets);
    Planned {
        generated: Generated {
            models,
            gateways,
            gateway_api_gateways,
            entries,
            filter_config,
            extension,
            document,
            jwks_uris,
        },
        sources,
        settings: inputs.settings.clone(),
    }
}

/// The one copy of `value` among `shared`, by content.
fn share<T: serde::Serialize>(shared: &mut HashMap<Vec<u8>, Arc<T>>, value: &Arc<T>) -> Arc<T> {
    // serde_json of the configuration's types is deterministic: fields in order, maps sorted.
    let content = serde_json::to_vec(&**value)
        .expect("serialising a policy is infallible: derived Serialize, string map keys only");
    shared
        .entry(content)
        .or_insert_with(|| Arc::clone(value))
        .clone()
}

/// The Gateways the extension attaches to with `targetRefs` (setting `routing:
/// gateway-api`; none otherwise): the default Gateway and every Gateway a model is routed
/// on (its own, or its last good one's), all in `gatewayNamespace` ([`http_route::refusals`]).
/// At most [`MAX_TARGET_REFS`], the default first.
pub fn extension_targets(models: &[GeneratedModel], settings: &Settings) -> Vec<String> {
    if settings.routing != RoutingApi::GatewayApi {
        return Vec::new();
    }
    // The default, then the Gateways of models kept on their last good configuration
    // (their routes are live), then the others: what [`bound_extension_targets`] admitted.
    let mut out: Vec<String> = default_target(settings).into_iter().collect();
    let (kept, valid): (Vec<&GeneratedModel>, Vec<&GeneratedModel>) =
        models.iter().partition(|m| m.objects.is_err());
    for group in [kept, valid] {
        let names: BTreeSet<String> = group
            .iter()
            .filter_map(|m| target_name(m.gateway.as_ref()?, settings))
            .collect();
        for name in names {
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out.truncate(MAX_TARGET_REFS);
    out
}

fn default_target(settings: &Settings) -> Option<String> {
    target_name(
        &annotations::parse_gateway(&settings.default_gateway, "").ok()?,
        settings,
    )
}

fn target_name(gateway: &GatewayRef, settings: &Settings) -> Option<String> {
    match gateway {
        GatewayRef::Named { namespace, name } if *namespace == settings.gateway_namespace => {
            Some(name.clone())
        }
        _ => None,
    }
}

/// The extension attaches to at most [`MAX_TARGET_REFS`] Gateways (the CRD's
/// bound): the models naming a Gateway beyond them, the most recently created first, get
/// an error rather than an extension no Istio would take for anyone.
fn bound_extension_targets(
    parsed: &mut [(&SeldonDeployment, String, annotations::Parsed)],
    settings: &Settings,
    last_good: &BTreeMap<String, KnownGood>,
) {
    let mut names: BTreeSet<String> = default_target(settings).into_iter().collect();
    // A model whose annotations stopped parsing keeps its live route on its last good
    // Gateway: that Gateway keeps its place first, so the route never loses the filter.
    for (_, id, p) in parsed.iter() {
        if p.options.is_err()
            && let Some(name) = last_good
                .get(id)
                .and_then(|good| target_name(&good.gateway, settings))
        {
            names.insert(name);
        }
    }
    let mut order: Vec<usize> = (0..parsed.len()).collect();
    order.sort_by_key(|&i| {
        (
            parsed[i].0.metadata.creation_timestamp.clone(),
            parsed[i].1.clone(),
        )
    });
    for i in order {
        let (_, id, p) = &mut parsed[i];
        let Some(name) = p
            .options
            .as_ref()
            .ok()
            .and_then(|o| target_name(&o.gateway, settings))
        else {
            continue;
        };
        if names.contains(&name) {
            continue;
        }
        if names.len() < MAX_TARGET_REFS {
            names.insert(name);
            continue;
        }
        p.options = Err(vec![ModelError::Annotation {
            object: id.clone(),
            annotation: annotations::ISTIO_GATEWAY.into(),
            value: format!("{}/{name}", settings.gateway_namespace),
            from: annotations::Source::Setting,
            expected: format!(
                "one of the {} Gateways already in use: the extension attaches to at most {} Gateways",
                MAX_TARGET_REFS, MAX_TARGET_REFS
            ),
        }]);
    }
}

/// Model ids, most recently created first (then by id): who yields when all of them do
/// not fit.
fn newest_first(sdeps: &[&SeldonDeployment]) -> Vec<String> {
    let mut order: Vec<(Option<_>, String)> = sdeps
        .iter()
        .map(|s| (s.metadata.creation_timestamp.clone(), s.model_id()))
        .collect();
    order.sort_by(|a, b| b.cmp(a));
    order.into_iter().map(|(_, id)| id).collect()
}

/// Metadata of an object belonging to a SeldonDeployment: in its namespace, labelled, and
/// owned by it when it has a uid (objects read from files have none).
pub(crate) fn owned_metadata(sdep: &SeldonDeployment, name: String) -> ObjectMeta {
    let owner = sdep.metadata.uid.as_ref().map(|uid| OwnerReference {
        api_version: SeldonDeployment::api_version(&()).into_owned(),
        kind: SeldonDeployment::kind(&()).into_owned(),
        name: sdep.name().to_string(),
        uid: uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    });
    ObjectMeta {
        name: Some(name),
        namespace: Some(sdep.namespace_or_empty().to_string()),
        labels: Some(
            [
                (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
                (MODEL_LABEL.to_string(), sdep.seldon_id()),
            ]
            .into(),
        ),
        owner_references: owner.map(|o| vec![o]),
        ..Default::default()
    }
}

/// Metadata of an object that is not in a SeldonDeployment's namespace: labelled, and
/// cleaned up by the controller.
pub(crate) fn managed_metadata(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        labels: Some([(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())].into()),
        ..Default::default()
    }
}
