//! Shared test support: the golden-test settings, generation with them, and the checks
//! every generated object must pass (the real CRD schemas, Istio's webhook rules, the
//! filter's own compiler); [`reconciling`] for the tests of the running controller.

#![allow(dead_code)]

pub mod cel;
pub mod crd;
pub mod fake_api;
pub mod istio_rules;
pub mod jwks_server;
pub mod reconciling;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use modelgate_controller::generate::WasmSource;
use modelgate_controller::seldon::SeldonDeployment;
use modelgate_controller::settings::{ConfigFile, ExtensionKind, RoutingApi};
use modelgate_controller::wasm_server::{self, ServerState};
use modelgate_controller::{Generated, Inputs, KnownGood, Settings, generate, manifests};
use modelgate_core::config::KeySet;
use modelgate_testkit::TestKey;

/// The JWKS URI the golden settings use as default.
pub const DEFAULT_JWKS_URI: &str = "https://issuer.example.com/jwks";
/// The default issuer of the golden settings.
pub const DEFAULT_ISSUER: &str = "https://issuer.example.com";

/// The workspace's vendored test data (`tests/data/`): the real CRDs and Seldon's examples.
pub fn vendored_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data")
}

/// This crate's test data.
pub fn test_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// The settings goldens are rendered with, optionally overridden by a sidecar file
/// `<example>.settings.yaml`.
pub fn golden_settings(example: &Path) -> Settings {
    settings_from(example.with_extension("settings.yaml"))
}

/// The golden settings of an example without a sidecar file (`none.yaml` has none): the
/// defaults, with the default issuer and JWKS URI.
pub fn plain_settings() -> Settings {
    golden_settings(&test_data().join("none.yaml"))
}

/// [`plain_settings`] with Gateway API routing.
pub fn plain_gateway_api_settings() -> Settings {
    let mut settings = plain_settings();
    settings.routing = RoutingApi::GatewayApi;
    settings
        .validate()
        .expect("valid settings with Gateway API routing");
    settings
}

/// The settings of the Gateway API goldens: `<example>.gateway-api.settings.yaml` when
/// there is one (a platform whose Gateways are elsewhere), else [`golden_settings`].
pub fn gateway_api_settings(example: &Path) -> Settings {
    let sidecar = example.with_extension("gateway-api.settings.yaml");
    if sidecar.is_file() {
        settings_from(sidecar)
    } else {
        golden_settings(example)
    }
}

fn settings_from(sidecar: PathBuf) -> Settings {
    let mut settings = if sidecar.is_file() {
        ConfigFile::read(&sidecar)
            .expect("sidecar settings")
            .settings
    } else {
        Settings::default()
    };
    if settings.default_issuer.is_none() {
        settings.default_issuer = Some(DEFAULT_ISSUER.into());
    }
    if settings.default_jwks_uri.is_none() {
        settings.default_jwks_uri = Some(DEFAULT_JWKS_URI.into());
    }
    settings.validate().expect("valid settings");
    settings
}

/// The keys "fetched" for the default JWKS URI: the testkit's RSA key A.
pub fn fetched_keys() -> BTreeMap<String, KeySet> {
    let jwks = modelgate_testkit::jwks(&[&TestKey::rsa_a()]);
    BTreeMap::from([(
        DEFAULT_JWKS_URI.to_string(),
        serde_json::from_value(jwks).unwrap(),
    )])
}

/// A fixed module hash, so goldens do not change with every filter build.
pub fn test_wasm(settings: &Settings) -> WasmSource {
    WasmSource::from_settings(settings, &"0".repeat(64))
}

/// The variants every example is rendered in, with their goldens' folder under
/// `tests/golden/`: the extension kind `render` uses by default (`auto` is a WasmPlugin
/// without an API server to ask), and a TrafficExtension, each with Istio routing
/// (VirtualServices) and with Gateway API routing (HTTPRoutes).
pub const VARIANTS: [(ExtensionKind, RoutingApi, &str); 4] = [
    (ExtensionKind::Auto, RoutingApi::Istio, ""),
    (
        ExtensionKind::TrafficExtension,
        RoutingApi::Istio,
        "traffic-extension",
    ),
    (ExtensionKind::Auto, RoutingApi::GatewayApi, "gateway-api"),
    (
        ExtensionKind::TrafficExtension,
        RoutingApi::GatewayApi,
        "gateway-api/traffic-extension",
    ),
];

/// Renders a manifest file with the golden settings.
pub fn render_file(path: &Path) -> (Generated, Settings) {
    render_variant(path, ExtensionKind::Auto)
}

/// Renders a manifest file with the golden settings, the extension kind set unless
/// `auto` (then the settings' own).
pub fn render_variant(path: &Path, kind: ExtensionKind) -> (Generated, Settings) {
    render_routed(path, kind, RoutingApi::Istio)
}

/// [`render_variant`] with the routing API set (unless `istio`: then the settings' own).
pub fn render_routed(
    path: &Path,
    kind: ExtensionKind,
    routing: RoutingApi,
) -> (Generated, Settings) {
    let mut settings = match routing {
        RoutingApi::Istio => golden_settings(path),
        RoutingApi::GatewayApi => gateway_api_settings(path),
    };
    if kind != ExtensionKind::Auto {
        settings.extension_kind = kind;
    }
    if routing != RoutingApi::Istio {
        settings.routing = routing;
        settings
            .validate()
            .expect("valid settings with Gateway API routing");
    }
    let read =
        manifests::read(&[path.to_path_buf()], &settings.default_namespace).expect("readable");
    (
        generate_first(&read.seldon_deployments, &settings),
        settings,
    )
}

/// Generates for these SeldonDeployments as `render` and `run` do, with the keys of
/// [`fetched_keys`] and the module of [`test_wasm`], the first time: nothing last good.
pub fn generate_first(sdeps: &[SeldonDeployment], settings: &Settings) -> Generated {
    generate_after(sdeps, settings, &BTreeMap::new())
}

/// [`generate_first`], but with these last good configurations.
pub fn generate_after(
    sdeps: &[SeldonDeployment],
    settings: &Settings,
    last_good: &BTreeMap<String, KnownGood>,
) -> Generated {
    let given = Given::new(settings);
    generate(
        sdeps,
        Inputs {
            last_good,
            ..given.inputs(settings)
        },
    )
}

/// What generation takes besides the settings, as the tests give it: the keys of
/// [`fetched_keys`], the module of [`test_wasm`] and nothing last good; for the
/// generation steps other than [`generate`] (`shared`, `plan`).
pub struct Given {
    keys: BTreeMap<String, KeySet>,
    wasm: WasmSource,
    last_good: BTreeMap<String, KnownGood>,
}

impl Given {
    /// What the tests give generation with these settings.
    pub fn new(settings: &Settings) -> Self {
        Self {
            keys: fetched_keys(),
            wasm: test_wasm(settings),
            last_good: BTreeMap::new(),
        }
    }

    /// The inputs of one generation with these settings.
    pub fn inputs<'a>(&'a self, settings: &'a Settings) -> Inputs<'a> {
        Inputs {
            settings,
            jwks: &self.keys,
            last_good: &self.last_good,
            wasm: &self.wasm,
        }
    }
}

/// Runs the controller's HTTP server (module, keys, health, metrics) with this state on a
/// loopback port, until the test's runtime ends; its base URL, `http://127.0.0.1:<port>`.
pub async fn serve_on_loopback(state: ServerState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(wasm_server::serve(listener, state, std::future::pending()));
    base
}

/// Every example: Seldon's own (vendored) and this crate's.
pub fn examples() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in [vendored_data().join("seldon-examples"), test_data()] {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.extension().is_some_and(|e| e == "yaml")
                    && !p.to_string_lossy().ends_with(".settings.yaml")
            })
            .collect();
        found.sort();
        files.extend(found);
    }
    assert!(files.len() >= 5, "{files:?}");
    files
}

/// The `name` of each element of a JSON array (a route's rules, an extension's
/// `targetRefs`), in order.
pub fn names(array: &serde_json::Value) -> Vec<&str> {
    array
        .as_array()
        .expect("an array")
        .iter()
        .map(|e| e["name"].as_str().expect("a name"))
        .collect()
}

/// Checks one generated object against its CRD and Istio's rules; returns the problems.
pub fn check_object(object: &serde_json::Value) -> Vec<String> {
    let mut problems = crd::validate(object);
    problems.extend(istio_rules::check(object));
    problems
}
