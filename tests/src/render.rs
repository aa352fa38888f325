//! The controller's side of the end-to-end harness: `modelgate render --offline` run in
//! process (the same pure generation), its YAML read back, and turned into what the
//! gateway gets from istiod: the WasmPlugin's `pluginConfig`, unchanged, as the filter's
//! configuration, and the VirtualServices bound to the gateway as its routes
//! ([`crate::virtual_service`]).

use std::collections::BTreeMap;

use modelgate_controller::generate::WasmSource;
use modelgate_controller::manifests::{self, Manifests};
use modelgate_controller::{Generated, Inputs, Settings, generate, wasm};
use serde::Deserialize;
use serde_json::Value;

use crate::HarnessError;
use crate::bootstrap::FILTER_NAME;
use crate::gateway::GatewaySpec;
use crate::routes::RouteTable;
use crate::{http_route, virtual_service};

/// What `render` printed.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The multi-document YAML, as `modelgate render` prints it.
    pub yaml: String,
    /// Its documents, read back.
    pub objects: Vec<Value>,
    /// The warnings `render` reports on standard error.
    pub warnings: Vec<String>,
}

/// Renders SeldonDeployment manifests as `modelgate render --offline` does: no JWKS URI
/// fetched, the WasmPlugin naming the module the controller embeds. Any model error is an
/// error here: the harness serves what a valid manifest renders.
pub fn render(manifest: &str, settings: &Settings) -> Result<Rendered, HarnessError> {
    let mut read = Manifests::default();
    manifests::read_text("manifest", manifest, &settings.default_namespace, &mut read)
        .map_err(|e| HarnessError::new(e.to_string()))?;
    let wasm = WasmSource::from_settings(settings, &wasm::filter_sha256());
    let (no_keys, no_history) = (BTreeMap::new(), BTreeMap::new());
    let generated = generate(
        &read.seldon_deployments,
        Inputs {
            settings,
            jwks: &no_keys,
            last_good: &no_history,
            wasm: &wasm,
        },
    );
    let errors: Vec<String> = generated.errors().map(ToString::to_string).collect();
    if !errors.is_empty() {
        return Err(HarnessError::new(format!(
            "render reported errors:\n{}",
            errors.join("\n")
        )));
    }
    Rendered::from_generated(&generated)
}

impl Rendered {
    /// What `modelgate render` prints for something already generated (for instance by
    /// [`modelgate_controller::from_files::generate_from_files`], as `render -f` does),
    /// read back. The caller decides what the models' errors mean.
    pub fn from_generated(generated: &Generated) -> Result<Self, HarnessError> {
        let yaml = manifests::to_yaml(&generated.objects());
        let objects = serde_yaml_ng::Deserializer::from_str(&yaml)
            .map(Value::deserialize)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| HarnessError::new(format!("render's YAML does not read back: {e}")))?;
        Ok(Rendered {
            yaml,
            objects,
            warnings: generated.warnings().map(ToString::to_string).collect(),
        })
    }

    /// The objects of one kind, in render order.
    pub fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    /// An object by kind and `<namespace>/<name>`.
    pub fn object(&self, kind: &str, id: &str) -> Option<&Value> {
        self.of_kind(kind).into_iter().find(|o| object_id(o) == id)
    }

    /// The one WasmPlugin, checked to be what the harness runs: the filter first in the
    /// chain (`phase: AUTHN`), failing closed, with the root id the harness configures.
    pub fn wasm_plugin(&self) -> Result<&Value, HarnessError> {
        let plugins = self.of_kind("WasmPlugin");
        let [plugin] = plugins.as_slice() else {
            return Err(HarnessError::new(format!(
                "expected one WasmPlugin, render printed {}",
                plugins.len()
            )));
        };
        let spec = &plugin["spec"];
        for (field, expected) in [
            ("phase", "AUTHN"),
            ("failStrategy", "FAIL_CLOSE"),
            ("pluginName", FILTER_NAME),
        ] {
            if spec[field] != expected {
                return Err(HarnessError::new(format!(
                    "WasmPlugin spec.{field} is {}, the harness runs the filter as {expected}",
                    spec[field]
                )));
            }
        }
        Ok(plugin)
    }

    /// The filter's configuration: the WasmPlugin's `pluginConfig`, as the JSON istiod
    /// hands to Envoy.
    pub fn filter_config(&self) -> Result<String, HarnessError> {
        let config = &self.wasm_plugin()?["spec"]["pluginConfig"];
        if !config.is_object() {
            return Err(HarnessError::new(format!(
                "WasmPlugin spec.pluginConfig is not an object: {config}"
            )));
        }
        Ok(config.to_string())
    }

    /// The routes istiod programs into the gateway `<namespace>/<name>` from the rendered
    /// VirtualServices bound to it. The gateway must be one render creates (an HTTP server
    /// on port 80 for every host), and every destination must be a subset some rendered
    /// DestinationRule defines: istiod has no cluster for any other, and Envoy would
    /// answer `503`.
    pub fn route_table(&self, gateway: &str) -> Result<RouteTable, HarnessError> {
        if self.of_kind("VirtualService").is_empty() && !self.of_kind("HTTPRoute").is_empty() {
            return self.gateway_api_route_table(gateway);
        }
        let gw = self
            .object("Gateway", gateway)
            .ok_or_else(|| HarnessError::new(format!("render printed no Gateway {gateway}")))?;
        let serves_http = gw["spec"]["servers"].as_array().is_some_and(|servers| {
            servers.iter().any(|s| {
                s["port"]["number"] == 80
                    && s["port"]["protocol"] == "HTTP"
                    && s["hosts"]
                        .as_array()
                        .is_some_and(|h| h.contains(&"*".into()))
            })
        });
        if !serves_http {
            return Err(HarnessError::new(format!(
                "Gateway {gateway} has no HTTP server on port 80 for every host: {}",
                gw["spec"]
            )));
        }

        let mut subsets: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for rule in self.of_kind("DestinationRule") {
            let host = rule["spec"]["host"].as_str().unwrap_or_default();
            for subset in rule["spec"]["subsets"].as_array().into_iter().flatten() {
                subsets
                    .entry(host)
                    .or_default()
                    .extend(subset["name"].as_str());
            }
        }

        let mut table = RouteTable::default();
        for vs in self.of_kind("VirtualService") {
            let Some(routes) = virtual_service::translate(vs, gateway)? else {
                continue;
            };
            for d in &routes.destinations {
                if !subsets
                    .get(d.host.as_str())
                    .is_some_and(|s| s.contains(&d.predictor.as_str()))
                {
                    return Err(HarnessError::new(format!(
                        "VirtualService {} routes to subset {} of {}, which no rendered DestinationRule defines",
                        routes.id, d.predictor, d.host
                    )));
                }
            }
            table.virtual_services.push(routes);
        }
        Ok(table)
    }

    /// With `routing: gateway-api`: the routes istiod programs into the Gateway API Gateway
    /// `<namespace>/<name>` from the rendered HTTPRoutes attached to it
    /// ([`crate::http_route`]). The extension must be attached to that Gateway
    /// (`targetRefs`, in its namespace, and no `selector`), or the gateway would run
    /// without the filter; each backend's predictor is the one its DestinationRule names.
    /// When render creates the Gateway, only the routes its HTTP listener allows count.
    fn gateway_api_route_table(&self, gateway: &str) -> Result<RouteTable, HarnessError> {
        let (namespace, name) = gateway
            .split_once('/')
            .ok_or_else(|| HarnessError::new(format!("{gateway}: expected <namespace>/<name>")))?;
        let extension = self.wasm_plugin()?;
        let attached = extension["metadata"]["namespace"] == namespace
            && extension["spec"].get("selector").is_none()
            && extension["spec"]["targetRefs"]
                .as_array()
                .is_some_and(|refs| {
                    refs.iter().any(|r| {
                        r["group"] == "gateway.networking.k8s.io"
                            && r["kind"] == "Gateway"
                            && r["name"] == name
                    })
                });
        if !attached {
            return Err(HarnessError::new(format!(
                "the extension is not attached to the Gateway {gateway}: {}",
                extension["spec"]["targetRefs"]
            )));
        }
        let predictors = self.predictors_by_host()?;
        // A Gateway render creates takes only the routes its listener allows; istiod
        // leaves the others unattached (a Gateway render does not print is the platform's).
        let created = self
            .object("Gateway", gateway)
            .filter(|g| g["apiVersion"] == "gateway.networking.k8s.io/v1");
        let mut table = RouteTable::default();
        for route in self.of_kind("HTTPRoute") {
            let namespace = route["metadata"]["namespace"].as_str().unwrap_or_default();
            if let Some(created) = created
                && !http_route::gateway_accepts(created, namespace)?
            {
                continue;
            }
            if let Some(routes) = http_route::translate(route, gateway, &predictors)? {
                table.virtual_services.push(routes);
            }
        }
        Ok(table)
    }

    /// The predictor behind each Service host, from the rendered DestinationRules (one
    /// subset each, named after the predictor).
    fn predictors_by_host(&self) -> Result<BTreeMap<String, String>, HarnessError> {
        let mut out = BTreeMap::new();
        for rule in self.of_kind("DestinationRule") {
            let host = rule["spec"]["host"].as_str().unwrap_or_default();
            let subsets = rule["spec"]["subsets"]
                .as_array()
                .map_or(&[][..], Vec::as_slice);
            let [subset] = subsets else {
                return Err(HarnessError::new(format!(
                    "DestinationRule {} has {} subsets, the harness expects one",
                    object_id(rule),
                    subsets.len()
                )));
            };
            out.insert(
                host.to_string(),
                subset["name"].as_str().unwrap_or_default().to_string(),
            );
        }
        Ok(out)
    }

    /// The weights of a model's (`<namespace>/<name>`) default REST route, by predictor
    /// (subset), as rendered: the route that matches the model's route tag by prefix and
    /// no routing header, which carries the requests the filter chose at random or by a
    /// sticky key.
    pub fn default_weights(&self, model: &str) -> Result<BTreeMap<String, u64>, HarnessError> {
        if let Some(route) = self.object("HTTPRoute", model) {
            return self.http_route_weights(model, route);
        }
        let vs = self.object("VirtualService", model).ok_or_else(|| {
            HarnessError::new(format!("render printed no VirtualService {model}"))
        })?;
        let prefix = format!("/seldon/{model}/");
        let tag = format!("{model}/");
        let default_route = vs["spec"]["http"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| {
                let headers = &r["match"][0]["headers"];
                r["match"][0]["uri"]["prefix"] == prefix.as_str()
                    && headers.as_object().is_some_and(|h| {
                        h.len() == 1 && h["x-modelgate-route"]["prefix"] == tag.as_str()
                    })
            })
            .ok_or_else(|| {
                HarnessError::new(format!("VirtualService {model} has no default REST route"))
            })?;
        Ok(default_route["route"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                let subset = d["destination"]["subset"].as_str().unwrap_or_default();
                (subset.to_string(), d["weight"].as_u64().unwrap_or_default())
            })
            .collect())
    }

    /// [`Rendered::default_weights`] of an HTTPRoute: its rule on the model's path prefix
    /// whose only header match is the route tag (by expression).
    fn http_route_weights(
        &self,
        model: &str,
        route: &Value,
    ) -> Result<BTreeMap<String, u64>, HarnessError> {
        let prefix = format!("/seldon/{model}/");
        let rule = route["spec"]["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| {
                let m = &r["matches"][0];
                m["path"]["type"] == "PathPrefix"
                    && m["path"]["value"] == prefix.as_str()
                    && m["headers"].as_array().is_some_and(|h| {
                        h.len() == 1
                            && h[0]["name"] == "x-modelgate-route"
                            && h[0]["type"] == "RegularExpression"
                    })
            })
            .ok_or_else(|| {
                HarnessError::new(format!("HTTPRoute {model} has no default REST rule"))
            })?;
        let namespace = model.split_once('/').map_or("", |(ns, _)| ns);
        let predictors = self.predictors_by_host()?;
        rule["backendRefs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|b| {
                let host = format!(
                    "{}.{namespace}.svc.cluster.local",
                    b["name"].as_str().unwrap_or_default()
                );
                let predictor = predictors.get(&host).ok_or_else(|| {
                    HarnessError::new(format!("HTTPRoute {model}: no DestinationRule for {host}"))
                })?;
                Ok((predictor.clone(), b["weight"].as_u64().unwrap_or_default()))
            })
            .collect()
    }

    /// A gateway made of what render printed, for the gateway `<namespace>/<name>`.
    pub fn gateway_spec(&self, gateway: &str) -> Result<GatewaySpec, HarnessError> {
        Ok(GatewaySpec {
            routes: self.route_table(gateway)?,
            filter_config: self.filter_config()?,
            workers: 1,
        })
    }
}

/// `<namespace>/<name>` of an object.
pub fn object_id(object: &Value) -> String {
    format!(
        "{}/{}",
        object["metadata"]["namespace"].as_str().unwrap_or_default(),
        object["metadata"]["name"].as_str().unwrap_or_default()
    )
}
