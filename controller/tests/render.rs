//! `render` on every example (Seldon's own and this crate's), with each extension kind
//! ([`common::VARIANTS`]): golden files reviewed like code, and every generated object
//! checked against the real CRDs (their CEL rules included) and Istio's rules.
//! Regenerate the goldens with `UPDATE_GOLDEN=1 cargo test -p modelgate-controller`.

mod common;

use std::path::{Path, PathBuf};

use modelgate_controller::settings::{ExtensionKind, RoutingApi};
use modelgate_controller::{generate, manifests};

fn golden_path(example: &Path, folder: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(folder)
        .join(example.file_name().unwrap())
}

fn rendered(example: &Path, kind: ExtensionKind, routing: RoutingApi) -> String {
    let (generated, _) = common::render_routed(example, kind, routing);
    let mut out = format!(
        "# modelgate render of {} (golden: UPDATE_GOLDEN=1 regenerates it)\n",
        example.file_name().unwrap().to_string_lossy()
    );
    for error in generated.errors() {
        out.push_str(&format!("# error: {error}\n"));
    }
    for warning in generated.warnings() {
        out.push_str(&format!("# warning: {warning}\n"));
    }
    out.push_str(&manifests::to_yaml(&generated.objects()));
    out
}

#[test]
fn goldens() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut stale = Vec::new();
    for (kind, routing, folder) in common::VARIANTS {
        for example in common::examples() {
            let actual = rendered(&example, kind, routing);
            let golden = golden_path(&example, folder);
            if update {
                std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
                std::fs::write(&golden, &actual).unwrap();
                continue;
            }
            let expected = std::fs::read_to_string(&golden).unwrap_or_default();
            if expected != actual {
                stale.push(golden.display().to_string());
                eprintln!("--- {} differs; actual:\n{actual}", golden.display());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "goldens differ (UPDATE_GOLDEN=1 to accept): {stale:?}"
    );
}

#[test]
fn every_generated_object_passes_the_crds_and_istios_rules() {
    let mut problems = Vec::new();
    let mut count = 0;
    let mut extensions = Vec::new();
    let mut kinds = std::collections::BTreeSet::new();
    for (kind, routing, _) in common::VARIANTS {
        for example in common::examples() {
            let (generated, _) = common::render_routed(&example, kind, routing);
            for object in generated.objects() {
                count += 1;
                kinds.insert(object["kind"].as_str().unwrap_or_default().to_string());
                problems.extend(common::check_object(&object));
            }
            extensions.push(generated.extension.kind());
        }
    }
    // Both routing APIs were checked, and the HTTPRoute CRD's rules with them.
    for kind in ["VirtualService", "HTTPRoute"] {
        assert!(kinds.contains(kind), "{kind}: {kinds:?}");
    }
    assert!(
        common::crd::cel_rules("gateway.networking.k8s.io/v1", "HTTPRoute") >= 10,
        "the vendored HTTPRoute CRD has its CEL rules"
    );
    assert!(count > 40, "{count}");
    // Both kinds were checked, and the TrafficExtension CRD's rules with them.
    for kind in [ExtensionKind::WasmPlugin, ExtensionKind::TrafficExtension] {
        assert!(extensions.contains(&kind), "{kind}: {extensions:?}");
    }
    assert!(
        common::crd::cel_rules("extensions.istio.io/v1alpha1", "TrafficExtension") >= 5,
        "the vendored TrafficExtension CRD has its CEL rules"
    );
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_schema_check_catches_what_the_api_server_would_prune_or_refuse() {
    let (generated, _) = common::render_file(
        &common::vendored_data().join("seldon-examples/01-istio-canary-75-25.yaml"),
    );
    let mut vs = generated
        .objects()
        .into_iter()
        .find(|o| o["kind"] == "VirtualService")
        .unwrap();
    vs["spec"]["http"][0]["retrys"] = serde_json::json!({"attempts": 1});
    vs["spec"]["http"][1]["route"][0]["weight"] = serde_json::json!("heavy");
    let problems = common::check_object(&vs);
    assert!(
        problems.iter().any(|p| p.contains("retrys")),
        "{problems:#?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("heavy")),
        "{problems:#?}"
    );

    vs["spec"]["http"][0]["match"][0]["headers"] =
        serde_json::json!({"X-Seldon-Predictor": {"exact": "main"}});
    vs["spec"]["http"][0]["retries"] =
        serde_json::json!({"attempts": 1, "perTryTimeout": "0.5ms", "retryOn": "5xx, reset"});
    let problems = common::check_object(&vs);
    for needle in ["not lowercase", "whole milliseconds", "holds spaces"] {
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "{needle}: {problems:#?}"
        );
    }
}

/// The shared objects' loop generates without the models' own objects: what it gets must
/// be exactly what a full generation gives, for every example.
#[test]
fn shared_generation_gives_the_shared_objects_of_a_full_one() {
    for example in common::examples() {
        let (full, settings) = common::render_file(&example);
        let read =
            manifests::read(std::slice::from_ref(&example), &settings.default_namespace).unwrap();
        let given = common::Given::new(&settings);
        let shared = modelgate_controller::generate::shared(
            &read.seldon_deployments,
            given.inputs(&settings),
        );
        let name = example.display();
        assert_eq!(
            serde_json::to_value(&shared.extension).unwrap(),
            serde_json::to_value(&full.extension).unwrap(),
            "{name}"
        );
        assert_eq!(
            serde_json::to_value(&shared.gateways).unwrap(),
            serde_json::to_value(&full.gateways).unwrap(),
            "{name}"
        );
        assert_eq!(shared.jwks_uris, full.jwks_uris, "{name}");
        assert_eq!(shared.models.len(), full.models.len(), "{name}");
        for (s, f) in shared.models.iter().zip(&full.models) {
            assert_eq!(s.id, f.id, "{name}");
            assert_eq!(
                s.known_good.is_some(),
                f.known_good.is_some(),
                "{name}: {}",
                s.id
            );
            match (&s.objects, &f.objects) {
                (Ok(None), Ok(Some(_))) => {}
                (Err(a), Err(b)) => assert_eq!(a.len(), b.len(), "{name}: {}", s.id),
                _ => panic!("{name}: {}: shared and full generation disagree", s.id),
            }
        }
    }
}

/// The CEL rules are evaluated, not just present: a TrafficExtension that breaks them is
/// refused here as the API server would refuse it.
#[test]
fn the_trafficextension_crds_cel_rules_refuse_what_the_api_server_refuses() {
    let (generated, _) = common::render_variant(
        &common::vendored_data().join("seldon-examples/01-istio-canary-75-25.yaml"),
        ExtensionKind::TrafficExtension,
    );
    let extension = serde_json::to_value(&generated.extension).unwrap();
    assert_eq!(extension["kind"], "TrafficExtension");
    assert_eq!(common::check_object(&extension), Vec::<String>::new());
    assert!(extension["spec"].get("targetRefs").is_none());

    let cases: [(&str, common::crd::Break); 5] = [
        ("only one of targetRefs or selector", |t| {
            t["spec"]["targetRefs"] = serde_json::json!([
                {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "seldon-gateway"}
            ])
        }),
        ("exactly one of wasm or lua", |t| {
            t["spec"].as_object_mut().unwrap().remove("wasm");
        }),
        (
            "exactly one of wasm or lua",
            |t| {
                t["spec"]["lua"] =
                    serde_json::json!({"inlineCode": "function envoy_on_request(h) end"})
            },
        ),
        ("url must have schema", |t| {
            t["spec"]["wasm"]["url"] = serde_json::json!("ftp://registry/modelgate.wasm")
        }),
        ("wildcard not allowed in label key match", |t| {
            t["spec"]["selector"]["matchLabels"] = serde_json::json!({"istio*": "ingressgateway"})
        }),
    ];
    common::crd::assert_refused(&extension, &cases);
}

/// A TrafficExtension carries exactly what the WasmPlugin carries (module, hash, phase,
/// fail strategy, root id, selector and the filter configuration, byte for byte), so what
/// the real-Envoy agreement tests prove of the WasmPlugin's `pluginConfig` holds for it;
/// every other object is the same whichever the kind.
#[test]
fn both_extension_kinds_carry_the_same_filter_and_configuration() {
    for example in common::examples() {
        let (plugin, _) = common::render_variant(&example, ExtensionKind::WasmPlugin);
        let (traffic, _) = common::render_variant(&example, ExtensionKind::TrafficExtension);
        let name = example.display();
        let p = serde_json::to_value(&plugin.extension).unwrap();
        let t = serde_json::to_value(&traffic.extension).unwrap();
        assert_eq!(p["kind"], "WasmPlugin", "{name}");
        assert_eq!(t["kind"], "TrafficExtension", "{name}");
        assert_eq!(p["metadata"], t["metadata"], "{name}");
        for field in ["phase", "selector"] {
            assert_eq!(p["spec"][field], t["spec"][field], "{name}: {field}");
        }
        for field in [
            "url",
            "sha256",
            "pluginName",
            "failStrategy",
            "pluginConfig",
        ] {
            assert_eq!(
                p["spec"][field], t["spec"]["wasm"][field],
                "{name}: {field}"
            );
        }
        let others = |g: &modelgate_controller::Generated| {
            let mut objects = g.objects();
            objects.pop();
            objects
        };
        assert_eq!(others(&plugin), others(&traffic), "{name}");
    }
}

/// `render` makes each model's objects only when it writes them ([`generate::plan`]): what
/// it writes must be exactly what a full generation lists, in the same order, for every
/// example and every variant.
#[test]
fn render_writes_what_a_full_generation_lists() {
    for (kind, routing, folder) in common::VARIANTS {
        for example in common::examples() {
            let (full, settings) = common::render_routed(&example, kind, routing);
            let read = manifests::read(std::slice::from_ref(&example), &settings.default_namespace)
                .unwrap();
            let given = common::Given::new(&settings);
            let plan = || generate::plan(&read.seldon_deployments, given.inputs(&settings));
            let name = format!("{folder}: {}", example.display());
            let mut written = manifests::YamlWriter::new(Vec::new());
            plan().each_object(|object| written.write(&object)).unwrap();
            let written = String::from_utf8(written.into_inner()).unwrap();
            assert!(written.starts_with("---\n"), "{name}: {written}");
            assert_eq!(written, manifests::to_yaml(&full.objects()), "{name}");
            let mut listed = Vec::new();
            plan()
                .each_object(|object| {
                    listed.push(object);
                    Ok::<(), ()>(())
                })
                .unwrap();
            assert_eq!(listed, full.objects(), "{name}");
            assert_eq!(plan().into_generated().objects(), full.objects(), "{name}");
            // On several threads, in runs of a model or two: the same bytes, in order.
            for (threads, chunk) in [(1, 1), (3, 1), (2, 2), (4, 1000)] {
                let mut encoded = Vec::new();
                plan()
                    .encode_each_object(threads, chunk, manifests::encode_yaml, |bytes| {
                        encoded.extend_from_slice(bytes);
                        Ok::<(), ()>(())
                    })
                    .unwrap();
                assert_eq!(
                    String::from_utf8(encoded).unwrap(),
                    written,
                    "{name}: {threads} threads, {chunk} at a time"
                );
            }
        }
    }
}

/// Thousands of models carrying one identity provider's JWKS and policy hold one copy of
/// each, not one per model; a model with other keys keeps its own.
#[test]
fn models_with_the_same_keys_and_policy_share_one_copy() {
    use modelgate_controller::annotations::{self, KeySource, PolicySpec};
    use modelgate_controller::seldon::SeldonDeployment;
    use modelgate_testkit::TestKey;

    let jwks = |key: &TestKey| modelgate_testkit::jwks(&[key]).to_string();
    let model = |name: &str, jwks: &str| {
        SeldonDeployment::fixture("team", name)
            .predictor("main", 100)
            .annotate(annotations::AUTH, "jwt")
            .annotate(annotations::JWT_ISSUER, "https://idp.example.com")
            .annotate(annotations::JWT_JWKS, jwks)
    };
    let shared = jwks(&TestKey::rsa_a());
    let sdeps = [
        model("a", &shared),
        model("b", &shared),
        model("c", &shared),
        model("other", &jwks(&TestKey::rsa_b())),
    ];
    let settings = modelgate_controller::Settings::default();
    let wasm = common::test_wasm(&settings);
    let (keys, last_good) = Default::default();
    let generated = generate::generate(
        &sdeps,
        modelgate_controller::Inputs {
            settings: &settings,
            jwks: &keys,
            last_good: &last_good,
            wasm: &wasm,
        },
    );
    assert_eq!(generated.errors().count(), 0);
    let parts = |id: &str| match &generated.entries[id].policy {
        PolicySpec::Jwt(policy, KeySource::Inline(keys)) => (policy.clone(), keys.clone()),
        other => panic!("{id}: {other:?}"),
    };
    let (a, b, other) = (parts("team/a"), parts("team/b"), parts("team/other"));
    assert!(std::sync::Arc::ptr_eq(&a.0, &b.0) && std::sync::Arc::ptr_eq(&a.1, &b.1));
    assert!(
        std::sync::Arc::ptr_eq(&a.0, &other.0),
        "the same policy, other keys"
    );
    assert!(!std::sync::Arc::ptr_eq(&a.1, &other.1));
    assert_ne!(a.1, other.1);
    // The known good entries and the filter configuration's entries are the same copy.
    let good = generated.models[0].known_good.as_ref().unwrap();
    assert_eq!(good.entry, generated.entries["team/a"]);
    assert_eq!(generated.filter_config.key_sets.len(), 2);
    assert_eq!(generated.filter_config.policies.len(), 2);
}
