//! Validation of generated objects against the real CRDs' `openAPIV3Schema`, their CEL
//! rules (`x-kubernetes-validations`, in [`super::cel`]) included. The API server silently
//! prunes fields a structural schema does not list, so here every object without
//! `additionalProperties` or `x-kubernetes-preserve-unknown-fields` refuses unknown fields:
//! a misspelt field fails the test instead of vanishing in the cluster.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

use super::vendored_data;

const CRDS: [&str; 9] = [
    "istio-virtualservice.yaml",
    "istio-destinationrule.yaml",
    "istio-gateway.yaml",
    "istio-wasmplugin.yaml",
    "istio-trafficextension.yaml",
    "istio-authorizationpolicy.yaml",
    "gateway-api-gateways.yaml",
    "gateway-api-httproutes.yaml",
    "gateway-api-grpcroutes.yaml",
];

/// Each kind's schema: closed (for the structural check) and as the CRD has it (for CEL).
struct Schema {
    closed: Value,
    original: Value,
}

fn schemas() -> &'static HashMap<(String, String), Schema> {
    static SCHEMAS: OnceLock<HashMap<(String, String), Schema>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let mut map = HashMap::new();
        for file in CRDS {
            let path = vendored_data().join("crds").join(file);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let crd: Value = serde_yaml_ng::from_str(&text).unwrap();
            let group = crd["spec"]["group"].as_str().unwrap().to_string();
            let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_string();
            for version in crd["spec"]["versions"].as_array().unwrap() {
                let name = version["name"].as_str().unwrap();
                let original = version["schema"]["openAPIV3Schema"].clone();
                let mut closed = original.clone();
                // apiVersion, kind and metadata are implicit at the top; close below it.
                close_objects(&mut closed["properties"]["spec"]);
                map.insert(
                    (format!("{group}/{name}"), kind.clone()),
                    Schema { closed, original },
                );
            }
        }
        map
    })
}

fn close_objects(schema: &mut Value) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    if obj.contains_key("properties")
        && !obj.contains_key("additionalProperties")
        && !obj.contains_key("x-kubernetes-preserve-unknown-fields")
    {
        obj.insert("additionalProperties".into(), Value::Bool(false));
    }
    for (key, value) in obj.iter_mut() {
        match key.as_str() {
            "properties" => {
                if let Some(props) = value.as_object_mut() {
                    for prop in props.values_mut() {
                        close_objects(prop);
                    }
                }
            }
            "items" | "additionalProperties" => close_objects(value),
            "allOf" | "anyOf" | "oneOf" => {
                if let Some(list) = value.as_array_mut() {
                    for s in list {
                        close_objects(s);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The schema errors of an object, `<kind> <ns>/<name>: <path>: <error>`.
pub fn validate(object: &Value) -> Vec<String> {
    let api_version = object["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let kind = object["kind"].as_str().unwrap_or_default().to_string();
    let who = format!(
        "{kind} {}/{}",
        object["metadata"]["namespace"].as_str().unwrap_or(""),
        object["metadata"]["name"].as_str().unwrap_or("")
    );
    let Some(schema) = schemas().get(&(api_version.clone(), kind.clone())) else {
        return vec![format!("{who}: no CRD for {api_version} {kind}")];
    };
    // anyOf/oneOf in Istio's schemas use `required` alone; the closing above must not apply
    // to those property-less branches, and does not (they have no `properties`).
    let validator = jsonschema::validator_for(&schema.closed).expect("the CRD schema compiles");
    let mut problems: Vec<String> = validator
        .iter_errors(object)
        .map(|e| format!("{who}: {}: {e}", e.instance_path()))
        .collect();
    problems.extend(super::cel::validate(&who, &schema.original, object));
    problems
}

/// One way to break an object, for [`assert_refused`].
pub type Break = fn(&mut Value);

/// Breaks a copy of `object` in each of these ways and checks that its CRD refuses each
/// with a problem saying what the case names, as the API server would.
pub fn assert_refused(object: &Value, cases: &[(&str, Break)]) {
    for (message, break_it) in cases {
        let mut broken = object.clone();
        break_it(&mut broken);
        let problems = validate(&broken);
        assert!(
            problems.iter().any(|p| p.contains(message)),
            "{message}: {problems:#?}"
        );
    }
}

/// How many CEL rules the CRD of a kind holds.
pub fn cel_rules(api_version: &str, kind: &str) -> usize {
    schemas()
        .get(&(api_version.to_string(), kind.to_string()))
        .map_or(0, |s| super::cel::rule_count(&s.original))
}
