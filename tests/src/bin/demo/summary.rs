//! What `check` and `render` made of the manifests, in a few lines: the problems, the
//! objects by kind, and for each model the policy the filter enforces and the routes the
//! gateway gets.

use std::collections::BTreeMap;

use modelgate_controller::Generated;
use modelgate_core::config::{AuthMode, FilterConfig, Policy};
use modelgate_e2e::render::{Rendered, object_id};
use serde_json::Value;

/// Prints `check`'s report: every problem, then the count line `modelgate check` ends with.
/// Returns the number of errors.
pub fn check(generated: &Generated) -> usize {
    for error in generated.errors() {
        println!("  error: {error}");
    }
    for warning in generated.warnings() {
        println!("  warning: {warning}");
    }
    let errors = generated.errors().count();
    println!(
        "  {} SeldonDeployment(s), {errors} error(s), {} warning(s)",
        generated.models.len(),
        generated.warnings().count()
    );
    errors
}

/// Prints the rendered objects by kind and each model's policy and routes.
pub fn render(rendered: &Rendered, config: &FilterConfig, plugin_config_bytes: usize) {
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for object in &rendered.objects {
        *kinds
            .entry(object["kind"].as_str().unwrap_or("?"))
            .or_default() += 1;
    }
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    println!(
        "  {} objects: {}; pluginConfig {plugin_config_bytes} bytes",
        rendered.objects.len(),
        kinds.join(", ")
    );
    for (id, model) in &config.models {
        println!("  {id}");
        let policy = config.policies.get(&model.policy);
        println!("      policy   {}", describe_policy(policy, config));
        if let Some(routing) = &model.routing {
            let weights: Vec<String> = routing
                .predictors
                .iter()
                .map(|p| format!("{} {}", p.name, p.traffic))
                .collect();
            println!(
                "      choice   {}; header {}{}{}",
                weights.join(" / "),
                routing.header,
                if routing.override_allowed {
                    " (clients may name a predictor)"
                } else {
                    " (set by the filter only)"
                },
                routing
                    .sticky
                    .as_deref()
                    .map(|s| format!("; sticky by {s}"))
                    .unwrap_or_default()
            );
        }
        if let Some(vs) = rendered.object("VirtualService", id) {
            println!("      routes   {}", describe_routes(vs));
        }
    }
}

fn describe_policy(policy: Option<&Policy>, config: &FilterConfig) -> String {
    match policy {
        None => "missing (every request denied)".into(),
        Some(Policy::None) => "none: no token needed".into(),
        Some(Policy::Deny { reason }) => format!("deny every request: {reason}"),
        Some(Policy::Jwt(jwt)) => {
            let mut parts = vec![format!(
                "JWT, {}, issuer {}",
                match jwt.mode {
                    AuthMode::Enforce => "enforced",
                    AuthMode::Audit => "audit only",
                },
                jwt.issuer
            )];
            let keys = config
                .key_sets
                .get(&jwt.key_set)
                .map_or(0, |k| k.keys.len());
            parts.push(format!("{keys} key(s)"));
            if !jwt.audiences.is_empty() {
                parts.push(format!("audience {}", jwt.audiences.join("|")));
            }
            for (claim, values) in &jwt.claims {
                parts.push(format!("{claim} in {}", values.join("|")));
            }
            if !jwt.token_from.is_empty() {
                parts.push(format!("token from {}", jwt.token_from.join(" or ")));
            }
            for (claim, header) in &jwt.forward_claims {
                parts.push(format!("{claim} -> {header}"));
            }
            if !jwt.forward_token {
                parts.push("token kept from the model".into());
            }
            parts.join(", ")
        }
    }
}

/// The VirtualService's HTTP routes by name, the default route's weights and the mirror.
fn describe_routes(vs: &Value) -> String {
    let http = vs["spec"]["http"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = http.iter().filter_map(|r| r["name"].as_str()).collect();
    let mut out = format!(
        "VirtualService {}: {} ({} routes)",
        object_id(vs),
        names.join(" "),
        names.len()
    );
    let mirrors: Vec<String> = http
        .iter()
        .filter_map(|r| r["mirror"]["subset"].as_str())
        .map(str::to_string)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !mirrors.is_empty() {
        out.push_str(&format!(", mirrored to {}", mirrors.join(", ")));
    }
    out
}
