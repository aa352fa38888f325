//! A tenant's SeldonDeployment with any annotations and predictors (the `annotations`
//! target's text encoding), generated beside two victims in another namespace: whatever
//! the tenant writes, the filter's compiler accepts the whole configuration the controller
//! emits, the victims' entries and every decision about requests to them are exactly what
//! they are without the tenant, and every route the tenant gets is its own model's and
//! requires its own route tag.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use modelgate_controller::generate::{Routes, WasmSource};
use modelgate_controller::seldon::SeldonDeployment;
use modelgate_controller::{Generated, Inputs, Settings, generate};
use modelgate_core::config::FilterConfig;
use modelgate_core::{CompiledConfig, Edit, Environment, Outcome, Request, TokenCache};
use modelgate_fuzz::{NOW, seldon_deployment};
use modelgate_testkit::{TestKey, jwks};
use serde_json::{Value, json};

const BANK_ISSUER: &str = "https://idp.bank.example";
/// The victims' ids.
const VICTIMS: [&str; 2] = ["bank/fraud", "bank/open"];

fn victims() -> Vec<SeldonDeployment> {
    let keys = jwks(&[&TestKey::rsa_a()]).to_string();
    let fraud = format!(
        "seldon.io/auth=jwt\nseldon.io/jwt-issuer={BANK_ISSUER}\nseldon.io/jwt-jwks={keys}\n\
         seldon.io/ab-override=false\nseldon.io/jwt-forward-claims=sub:x-user\n\
         predictor main=100\npredictor vault-dark=0"
    );
    vec![
        seldon_deployment(&fraud, "bank", "fraud", |_| {}),
        seldon_deployment("seldon.io/auth=none", "bank", "open", |_| {}),
    ]
}

fn generated(sdeps: &[SeldonDeployment]) -> Generated {
    let settings = Settings::default();
    let wasm = WasmSource::from_settings(&settings, "0".repeat(64).as_str());
    generate(
        sdeps,
        Inputs {
            settings: &settings,
            jwks: &BTreeMap::new(),
            last_good: &BTreeMap::new(),
            wasm: &wasm,
        },
    )
}

/// The filter's view of the victims without any tenant.
fn baseline() -> &'static FilterConfig {
    static BASELINE: OnceLock<FilterConfig> = OnceLock::new();
    BASELINE.get_or_init(|| generated(&victims()).filter_config)
}

/// A request as method, path and headers.
type RequestParts = (&'static str, &'static str, Vec<(String, String)>);

/// Requests to the victims: without a token, with one of theirs, reaching for the dark
/// launch, over gRPC, with a spoofed route tag. (Signed once: the fixture is per thread.)
fn victim_requests() -> &'static [RequestParts] {
    static REQUESTS: OnceLock<Vec<RequestParts>> = OnceLock::new();
    REQUESTS.get_or_init(requests)
}

fn requests() -> Vec<RequestParts> {
    let token = TestKey::rsa_a().sign(&json!({"iss": BANK_ISSUER, "sub": "alice", "exp": NOW + 600}));
    let bearer = format!("Bearer {token}");
    let h = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    vec![
        ("POST", "/seldon/bank/fraud/api/v1.0/predictions", h(&[])),
        ("POST", "/seldon/bank/fraud/api/v1.0/predictions", h(&[("authorization", &bearer)])),
        (
            "POST",
            "/seldon/bank/fraud/api/v1.0/predictions",
            h(&[("authorization", &bearer), ("x-seldon-predictor", "vault-dark")]),
        ),
        (
            "POST",
            "/seldon.protos.Seldon/Predict",
            h(&[
                ("content-type", "application/grpc"),
                ("seldon", "fraud"),
                ("namespace", "bank"),
                ("authorization", &bearer),
                ("x-modelgate-route", "a-evil/fraud/"),
            ]),
        ),
        ("GET", "/seldon/bank/fraud/prometheus", h(&[])),
        ("POST", "/seldon/bank/open/api/v1.0/predictions", h(&[("x-user", "mallory")])),
    ]
}

/// What the filter does with a victim request: the outcome, the predictor, the edits.
type Verdict = (Outcome, Option<String>, Vec<Edit>);

/// What the filter does with each victim request.
fn decisions(config: &CompiledConfig) -> Vec<Verdict> {
    let mut cache = TokenCache::new(16);
    victim_requests()
        .iter()
        .map(|(method, path, headers)| {
            let request = Request {
                method,
                path,
                headers,
            };
            let d = config.decide(
                &request,
                &mut Environment {
                    now: NOW,
                    random: 7,
                    cache: &mut cache,
                },
            );
            (d.outcome, d.route.map(|r| r.predictor.to_string()), d.edits)
        })
        .collect()
}

thread_local! {
    /// The decisions without the tenant (compiled keys are `Rc`: per thread).
    static BASE_DECISIONS: Vec<Verdict> = {
        let json = serde_json::to_vec(baseline()).unwrap();
        decisions(&CompiledConfig::from_json(&json).unwrap().0)
    };
}

/// A victim's entry with its policy and key set inlined (ids depend on the whole set).
fn victim_entry(config: &FilterConfig, id: &str) -> Value {
    let model = &config.models[id];
    let policy = serde_json::to_value(&config.policies[&model.policy]).unwrap();
    let keys = policy["keySet"]
        .as_str()
        .map(|k| serde_json::to_value(&config.key_sets[k]).unwrap());
    json!({"model": model.routing, "policy": {"auth": policy["auth"], "issuer": policy["issuer"],
        "claims": policy["claims"], "forwardClaims": policy["forwardClaims"]}, "keys": keys})
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The tenant's model has the same name as a victim, in its own namespace.
    let tenant = seldon_deployment(&text, "a-evil", "fraud", |_| {});
    let mut sdeps = victims();
    sdeps.push(tenant);
    let with = generated(&sdeps);

    // The filter takes the whole configuration, whatever the tenant wrote.
    let json = serde_json::to_vec(&with.filter_config).unwrap();
    let (compiled, _) = CompiledConfig::from_json(&json)
        .unwrap_or_else(|e| panic!("the filter refuses what the controller emits: {e}"));

    // The victims are untouched.
    let baseline = baseline();
    for id in VICTIMS {
        assert_eq!(
            victim_entry(&with.filter_config, id),
            victim_entry(baseline, id),
            "{id}'s entry changed"
        );
    }
    BASE_DECISIONS.with(|base| assert_eq!(&decisions(&compiled), base));

    // Every route the tenant gets is its own model's, behind its own tag.
    for model in &with.models {
        if model.id != "a-evil/fraud" {
            continue;
        }
        let Ok(Some(objects)) = &model.objects else {
            continue;
        };
        let Routes::VirtualService(vs) = &objects.routes else {
            panic!("the fuzzed settings route with VirtualServices");
        };
        let vs = serde_json::to_value(vs).unwrap();
        let mesh = vs["spec"]["gateways"] == json!(["mesh"]);
        for route in vs["spec"]["http"].as_array().unwrap() {
            for m in route["match"].as_array().unwrap() {
                let uri = &m["uri"];
                if let Some(prefix) = uri["prefix"].as_str() {
                    assert_eq!(prefix, "/seldon/a-evil/fraud/");
                } else {
                    assert_eq!(m["headers"]["seldon"]["exact"], "fraud");
                    assert_eq!(m["headers"]["namespace"]["exact"], "a-evil");
                }
                if !mesh {
                    let tag = &m["headers"]["x-modelgate-route"];
                    let value = tag["exact"].as_str().or(tag["prefix"].as_str()).unwrap_or("");
                    assert!(value.starts_with("a-evil/fraud/"), "{route}");
                }
            }
        }
    }
});
