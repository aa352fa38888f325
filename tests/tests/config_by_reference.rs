//! Configuration by reference, in a real Envoy: the `pluginConfig` only names the
//! configuration, which the filter fetches from the controller's own HTTP server (run in
//! process, `/config/<sha256>`) through a cluster, as an Istio gateway reaches the
//! controller's Service; the references and documents are the controller's generation.
//!
//! - A referenced configuration is fetched, verified and enforced, and replaced by the next.
//! - A document with the wrong hash, one the compiler refuses, or an unreachable controller,
//!   leaves the configuration in force serving; the fetch is retried until it succeeds.
//! - A VM that never had a configuration answers `503`, then serves once the document is in.
//! - A fleet of 100,000 models goes through the channel while the WasmPlugin stays small.
//!
//! Loopback only, one worker (one filter VM), every wait bounded.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use modelgate_controller::Settings;
use modelgate_controller::config_documents::ConfigDocuments;
use modelgate_controller::generate::by_reference::{ConfigByReference, ConfigDocument};
use modelgate_controller::generate::{Extension, WasmSource, render_extension_with_document};
use modelgate_controller::wasm_server::{self, ServerState};
use modelgate_core::config::{FilterConfig, Model, Policy, Predictor, ReferenceDocument, Routing};
use modelgate_e2e::answers::assert_no_token;
use modelgate_e2e::routes::{ModelRoutes, RouteTable};
use modelgate_e2e::{Gateway, GatewaySpec, Request, sample};
use modelgate_testkit::{TestKey, now};
use serde_json::json;

const ISSUER: &str = "https://idp.example/realms/models";
/// The controller's Service, as `serviceUrl` names it; the channel's cluster is Istio's
/// outbound cluster of it.
const SERVICE_URL: &str = "http://modelgate.modelgate-system.svc.cluster.local:8080";
const CONTROLLER_CLUSTER: &str = "outbound|8080||modelgate.modelgate-system.svc.cluster.local";
/// A cluster whose endpoint nothing listens on.
const GONE_CLUSTER: &str = "outbound|8080||gone.modelgate-system.svc.cluster.local";
/// How long a fetch may take to be retried and loaded here: the backoff starts at 1 s and
/// doubles, so a few tries fit well within it.
const DEADLINE: Duration = Duration::from_secs(60);

/// The controller's HTTP server with its documents, on a runtime of its own.
struct Controller {
    runtime: tokio::runtime::Runtime,
    address: SocketAddr,
    documents: ConfigDocuments,
}

impl Controller {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let _entered = runtime.enter();
        let documents = ConfigDocuments::default();
        let state = ServerState::new(Default::default()).with_config_documents(documents.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        runtime.spawn(wasm_server::serve(listener, state, std::future::pending()));
        drop(_entered);
        Self {
            runtime,
            address,
            documents,
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let runtime = std::mem::replace(
            &mut self.runtime,
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
        );
        runtime.shutdown_background();
    }
}

fn settings() -> Settings {
    Settings {
        service_url: SERVICE_URL.into(),
        config_by_reference: ConfigByReference::Always,
        ..Settings::default()
    }
}

/// The extension object the controller renders for `config`, its `pluginConfig` (a
/// reference) as JSON, and the document it names.
fn render(config: &FilterConfig) -> (Extension, String, ConfigDocument) {
    let settings = settings();
    let wasm = WasmSource::from_settings(&settings, &"0".repeat(64));
    let (extension, document) = render_extension_with_document(config, &settings, &wasm, &[]);
    let plugin_config = extension.plugin_config().to_string();
    (
        extension,
        plugin_config,
        document.expect("always by reference"),
    )
}

/// `guarded` (JWT, key A) and `open` (no authentication), plus the `extra` open models.
fn config(extra: &[&str]) -> FilterConfig {
    let mut config = FilterConfig::new();
    config
        .key_sets
        .insert("a".into(), sample::key_set(&[TestKey::rsa_a()]));
    config
        .policies
        .insert("jwt".into(), Policy::Jwt(sample::jwt_policy(ISSUER, "a")));
    config.policies.insert("open".into(), Policy::None);
    let model = |policy: &str| Model {
        policy: policy.into(),
        routing: None,
    };
    config.models.insert("team/guarded".into(), model("jwt"));
    for name in ["open"].iter().chain(extra) {
        config.models.insert(format!("team/{name}"), model("open"));
    }
    config
}

fn gateway(name: &str, plugin_config: String, controller: &Controller) -> Gateway {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let routes = ["guarded", "open", "added"]
        .map(|model| ModelRoutes::new("team", model, &[("default", 100)]))
        .to_vec();
    let spec = GatewaySpec {
        routes: RouteTable::new(routes),
        filter_config: plugin_config,
        workers: 1,
    };
    let clusters = BTreeMap::from([
        (CONTROLLER_CLUSTER.to_string(), controller.address),
        (GONE_CLUSTER.to_string(), closed),
    ]);
    Gateway::start_with_clusters(name, &spec, &clusters)
        .unwrap_or_else(|e| panic!("cannot start the test gateway: {e}"))
}

fn fetches(gw: &Gateway, result: &str) -> f64 {
    gw.metrics()
        .value("modelgate_config_fetches_total", &[("result", result)])
}

/// Waits (bounded) until `done`.
fn wait_until(gw: &Gateway, what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < DEADLINE,
            "never {what}; log:\n{}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (bounded) until one line of the gateway's log holds all of `needles`. (Every
/// Envoy VM fetches for itself, the main thread's too, so the counters add up several
/// VMs; a retry is seen in one VM's own count of failures, which it logs.)
fn wait_for_log(gw: &Gateway, needles: &[&str]) {
    wait_until(gw, &format!("a log line with {needles:?}"), || {
        gw.log()
            .lines()
            .any(|line| needles.iter().all(|n| line.contains(n)))
    });
}

/// Waits (bounded) until `model` is served (its requests reach its server).
fn wait_served(gw: &Gateway, model: &str) {
    let request = Request::predict(model);
    wait_until(gw, &format!("{model} served"), || {
        reaches(gw, model, &request)
    });
}

fn token() -> String {
    let now = now();
    TestKey::rsa_a().sign(&json!({"iss": ISSUER, "sub": "u", "iat": now, "exp": now + 600}))
}

/// Whether `request` reaches the server of `model` (a request for a model the filter does
/// not know falls through to the gateway's other application).
fn reaches(gw: &Gateway, model: &str, request: &Request) -> bool {
    let server = gw.server(model, "default");
    let before = server.count();
    let response = gw.send(request);
    response.status == 200 && server.count() > before
}

/// What `config(&[])` enforces.
fn assert_first_configuration(gw: &Gateway, context: &str) {
    assert_no_token(
        &gw.send(&Request::predict("team/guarded")),
        "team/guarded",
        context,
    );
    let with_token = Request::predict("team/guarded").bearer(&token());
    assert!(reaches(gw, "team/guarded", &with_token), "{context}");
    assert!(
        reaches(gw, "team/open", &Request::predict("team/open")),
        "{context}"
    );
}

#[test]
fn a_referenced_configuration_is_fetched_verified_and_enforced() {
    let controller = Controller::start();
    let (_, first, document) = render(&config(&[]));
    assert!(
        !first.contains("team/"),
        "a reference names no model: {first}"
    );
    controller.documents.remember(document);
    let gw = gateway("by-reference-enforced", first.clone(), &controller);
    wait_served(&gw, "team/open");
    assert_first_configuration(&gw, "the referenced configuration");
    let added = Request::predict("team/added");
    assert!(!reaches(&gw, "team/added", &added), "not a model yet");

    // The next configuration, as the controller publishes it before applying its object.
    let (_, second, document) = render(&config(&["added"]));
    controller.documents.remember(document);
    gw.reconfigure(&second).unwrap();
    wait_served(&gw, "team/added");
    assert_first_configuration(&gw, "the next configuration");
    assert_eq!(gw.metrics().value("modelgate_config_models", &[]), 3.0);
    assert!(fetches(&gw, "loaded") >= 2.0);

    // The same reference in a new object (here, written otherwise; Envoy itself skips an
    // identical one): the VM that has it in force fetches nothing. (Envoy's main thread
    // keeps VMs of its own, which may fetch: they serve no request.)
    let value: serde_json::Value = serde_json::from_str(&second).unwrap();
    gw.reconfigure(&serde_json::to_string_pretty(&value).unwrap())
        .unwrap();
    wait_for_log(&gw, &["is in force already"]);
    assert!(reaches(&gw, "team/added", &added), "the same configuration");
}

#[test]
fn a_wrong_hash_or_an_unreachable_controller_keeps_the_last_good_one() {
    let controller = Controller::start();
    let (_, first, document) = render(&config(&[]));
    controller.documents.remember(document);
    let gw = gateway("by-reference-last-good", first, &controller);
    wait_served(&gw, "team/open");

    // The controller answers other bytes than the reference's hash (an old or tampered
    // document): refused, tried again, and the configuration in force serves meanwhile.
    let (_, second, good) = render(&config(&["added"]));
    let (_, _, other) = render(&config(&["other"]));
    controller.documents.remember(ConfigDocument {
        sha256: good.sha256.clone(),
        bytes: other.bytes.clone(),
    });
    gw.reconfigure(&second).unwrap();
    wait_for_log(&gw, &["wrong_hash (", "trying again (2 failures)"]);
    assert!(fetches(&gw, "wrong_hash") >= 2.0);
    assert_first_configuration(&gw, "a document with the wrong hash");
    let added = Request::predict("team/added");
    assert!(!reaches(&gw, "team/added", &added), "the wrong document");

    // The right hash of a document the filter's compiler refuses whole (another format
    // version, as from a controller of another release): the same.
    let foreign = br#"{"version":99,"models":{}}"#;
    let sha256 = modelgate_core::by_reference::sha256_hex(foreign);
    controller.documents.remember(ConfigDocument {
        sha256: sha256.clone(),
        bytes: foreign.as_slice().into(),
    });
    let mut refused: ReferenceDocument = serde_json::from_str(&second).unwrap();
    refused.reference.path = format!("/config/{sha256}");
    refused.reference.sha256 = sha256;
    gw.reconfigure(&serde_json::to_string(&refused).unwrap())
        .unwrap();
    wait_for_log(
        &gw,
        &["refused by the compiler", "trying again (2 failures)"],
    );
    assert!(fetches(&gw, "refused") >= 2.0);
    assert_first_configuration(&gw, "a document the compiler refuses");

    // The controller unreachable: the same.
    let mut unreachable: ReferenceDocument = serde_json::from_str(&second).unwrap();
    unreachable.channel.cluster = GONE_CLUSTER.into();
    gw.reconfigure(&serde_json::to_string(&unreachable).unwrap())
        .unwrap();
    wait_for_log(&gw, &["status 503", "trying again (2 failures)"]);
    assert_first_configuration(&gw, "an unreachable controller");
    assert!(
        !reaches(&gw, "team/added", &added),
        "an unreachable controller"
    );

    // Back to the controller, which now has the right document: the retry loads it.
    controller.documents.remember(good);
    gw.reconfigure(&second).unwrap();
    wait_served(&gw, "team/added");
    assert!(reaches(&gw, "team/added", &added), "once fetched");
    assert_first_configuration(&gw, "once fetched");
}

#[test]
fn a_vm_that_never_had_a_configuration_answers_503_until_its_document_is_in() {
    let controller = Controller::start();
    let (_, first, document) = render(&config(&[]));
    // Not published yet: the controller answers 404.
    let gw = gateway("by-reference-fresh", first, &controller);
    wait_for_log(&gw, &["status 404", "no configuration yet"]);
    assert!(fetches(&gw, "bad_status") >= 1.0);
    for model in ["team/guarded", "team/open"] {
        let response = gw.send(&Request::predict(model).bearer(&token()));
        assert_eq!(response.status, 503, "{model}: {}", response.summary());
    }
    controller.documents.remember(document);
    wait_served(&gw, "team/open");
    assert_first_configuration(&gw, "once the document is in");
}

/// 100,000 models as `bench/src/fleet.rs` makes them: one issuer, audience and key set for
/// all, every tenth a sticky 90/10 canary.
fn fleet(models: usize) -> FilterConfig {
    let mut config = FilterConfig::new();
    config
        .key_sets
        .insert("a".into(), sample::key_set(&[TestKey::rsa_a()]));
    let mut policy = sample::jwt_policy(ISSUER, "a");
    policy.audiences = vec!["models".into()];
    config.policies.insert("jwt".into(), Policy::Jwt(policy));
    for i in 0..models {
        let routing = (i % 10 == 9).then(|| Routing {
            header: modelgate_core::config::DEFAULT_AB_HEADER.into(),
            override_allowed: true,
            sticky: Some("claim:sub".into()),
            predictors: [("main", 90), ("canary", 10)]
                .map(|(name, traffic)| Predictor {
                    name: name.into(),
                    traffic,
                })
                .to_vec(),
        });
        config.models.insert(
            format!("fleet/model-{i}"),
            Model {
                policy: "jwt".into(),
                routing,
            },
        );
    }
    config
}

#[test]
fn a_fleet_of_100000_models_loads_through_the_channel_with_a_small_wasm_plugin() {
    const MODELS: usize = 100_000;
    let controller = Controller::start();
    let (extension, plugin_config, document) = render(&fleet(MODELS));
    let object = serde_json::to_vec(&extension).unwrap();
    assert!(
        object.len() < 64 * 1024,
        "the WasmPlugin takes {} bytes",
        object.len()
    );
    assert!(
        document.bytes.len() > 1536 * 1024,
        "the configuration ({} bytes) would not fit in etcd",
        document.bytes.len()
    );
    eprintln!(
        "{MODELS} models: the WasmPlugin takes {} bytes, the referenced document {} bytes",
        object.len(),
        document.bytes.len()
    );
    controller.documents.remember(document);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let spec = GatewaySpec {
        routes: RouteTable::new(vec![ModelRoutes::new(
            "fleet",
            "model-99998",
            &[("default", 100)],
        )]),
        filter_config: plugin_config,
        workers: 1,
    };
    let clusters = BTreeMap::from([
        (CONTROLLER_CLUSTER.to_string(), controller.address),
        (GONE_CLUSTER.to_string(), closed),
    ]);
    let gw = Gateway::start_with_clusters("by-reference-fleet", &spec, &clusters)
        .unwrap_or_else(|e| panic!("cannot start the test gateway: {e}"));
    let model = "fleet/model-99998";
    wait_until(&gw, "the fleet in force", || {
        gw.send(&Request::predict(model)).status == 401
    });
    assert_eq!(
        gw.metrics().value("modelgate_config_models", &[]),
        MODELS as f64
    );
    assert!(fetches(&gw, "loaded") >= 1.0);
    let now = now();
    let token = TestKey::rsa_a()
        .sign(&json!({"iss": ISSUER, "aud": "models", "sub": "u", "iat": now, "exp": now + 600}));
    assert_no_token(
        &gw.send(&Request::predict(model)),
        model,
        "a model of the fleet",
    );
    let request = Request::predict(model).bearer(&token);
    assert!(reaches(&gw, model, &request), "a model of the fleet");
}
