//! Istio's validation webhook rules the CRD schemas do not express (SPEC section 6):
//! lowercase header names, weights ≥ 0 and not all 0, durations in whole milliseconds of
//! at least 1 ms, DNS-label names, `retryOn` without spaces; and the filter configuration
//! must compile with the filter's own code.

use serde_json::Value;

// Written again from Istio's rule rather than taken from `names.rs`: an oracle that shared
// the controller's code would agree with its bugs.
fn is_dns_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

/// Milliseconds of a protobuf-JSON duration such as `1s`, `1.5s` or `250ms`, when whole.
fn whole_millis(text: &str) -> Option<u64> {
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse().ok();
    }
    let secs = text.strip_suffix('s')?;
    let (whole, frac) = secs.split_once('.').unwrap_or((secs, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_ms: u64 = format!("{frac:0<3}").parse().ok()?;
    Some(whole.parse::<u64>().ok()? * 1000 + frac_ms)
}

fn duration(problems: &mut Vec<String>, at: &str, value: &Value) {
    match value.as_str().and_then(whole_millis) {
        Some(ms) if ms >= 1 => {}
        _ => problems.push(format!(
            "{at}: {value} is not a duration of whole milliseconds >= 1ms"
        )),
    }
}

/// The rule violations of an object.
pub fn check(object: &Value) -> Vec<String> {
    let mut p = Vec::new();
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let who = format!(
        "{kind} {}/{name}",
        object["metadata"]["namespace"].as_str().unwrap_or("")
    );
    if !is_dns_label(name) {
        p.push(format!("{who}: name is not a DNS label"));
    }
    let spec = &object["spec"];
    match kind {
        "VirtualService" => {
            for (i, route) in spec["http"].as_array().into_iter().flatten().enumerate() {
                let at = format!("{who}: http[{i}]");
                for m in route["match"].as_array().into_iter().flatten() {
                    for header in m["headers"].as_object().into_iter().flat_map(|h| h.keys()) {
                        if header.to_ascii_lowercase() != *header {
                            p.push(format!("{at}: header {header} is not lowercase"));
                        }
                    }
                }
                let weights: Vec<i64> = route["route"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| d["weight"].as_i64().unwrap_or(0))
                    .collect();
                if weights.is_empty()
                    || weights.iter().any(|w| *w < 0)
                    || weights.iter().all(|w| *w == 0)
                {
                    p.push(format!(
                        "{at}: weights {weights:?} must be >= 0 and not all 0"
                    ));
                }
                for d in route["route"].as_array().into_iter().flatten() {
                    if !is_dns_label(d["destination"]["subset"].as_str().unwrap_or("")) {
                        p.push(format!("{at}: subset is not a DNS label"));
                    }
                }
                if let Some(retries) = route.get("retries") {
                    if let Some(on) = retries.get("retryOn")
                        && on.as_str().is_none_or(|s| s.contains(' '))
                    {
                        p.push(format!("{at}: retryOn {on} holds spaces"));
                    }
                    if let Some(t) = retries.get("perTryTimeout") {
                        duration(&mut p, &format!("{at}.retries.perTryTimeout"), t);
                    }
                }
                if let Some(pct) = route.get("mirrorPercentage") {
                    let v = pct["value"].as_f64().unwrap_or(-1.0);
                    if !(0.0..=100.0).contains(&v) {
                        p.push(format!("{at}: mirrorPercentage {v} outside 0-100"));
                    }
                }
            }
            for gw in spec["gateways"].as_array().into_iter().flatten() {
                let gw = gw.as_str().unwrap_or("");
                let ok = gw == "mesh"
                    || gw
                        .split_once('/')
                        .is_some_and(|(ns, n)| is_dns_label(ns) && !n.is_empty());
                if !ok {
                    p.push(format!("{who}: gateway {gw} is not <ns>/<name> or mesh"));
                }
            }
        }
        "DestinationRule" => {
            for s in spec["subsets"].as_array().into_iter().flatten() {
                if !is_dns_label(s["name"].as_str().unwrap_or("")) {
                    p.push(format!("{who}: subset name is not a DNS label"));
                }
            }
            duration(
                &mut p,
                &format!("{who}: idleTimeout"),
                &spec["trafficPolicy"]["connectionPool"]["http"]["idleTimeout"],
            );
        }
        "WasmPlugin" | "TrafficExtension" => {
            // What both kinds must carry: the filter before authorization, failing closed.
            let wasm = if kind == "TrafficExtension" {
                &spec["wasm"]
            } else {
                spec
            };
            if spec["phase"] != "AUTHN" || wasm["failStrategy"] != "FAIL_CLOSE" {
                p.push(format!("{who}: not in phase AUTHN failing closed"));
            }
            if wasm["pluginName"] != modelgate_core::config::FILTER_ROOT_ID {
                p.push(format!("{who}: pluginName is not the filter's root id"));
            }
            for (k, v) in spec["selector"]["matchLabels"]
                .as_object()
                .into_iter()
                .flatten()
            {
                if k.contains('*') || v.as_str().unwrap_or("*").contains('*') {
                    p.push(format!("{who}: wildcard in selector"));
                }
            }
            let config: modelgate_core::FilterConfig =
                match serde_json::from_value(wasm["pluginConfig"].clone()) {
                    Ok(c) => c,
                    Err(e) => {
                        p.push(format!(
                            "{who}: pluginConfig is not a filter configuration: {e}"
                        ));
                        return p;
                    }
                };
            if let Err(e) = modelgate_core::CompiledConfig::compile(&config) {
                p.push(format!("{who}: the filter refuses pluginConfig: {e}"));
            }
        }
        "HTTPRoute" => {
            // What istiod needs to program it: RE2 expressions that compile (it turns a
            // route with a bad one into a 500), lowercase header names (Envoy's), a weight
            // above 0 (all 0 is a 500), and the extension's own Gateway kind as parent.
            for (i, rule) in spec["rules"].as_array().into_iter().flatten().enumerate() {
                let at = format!("{who}: rules[{i}]");
                for m in rule["matches"].as_array().into_iter().flatten() {
                    let mut expressions = Vec::new();
                    if m["path"]["type"] == "RegularExpression" {
                        expressions.push(m["path"]["value"].as_str().unwrap_or("("));
                    }
                    for h in m["headers"].as_array().into_iter().flatten() {
                        let name = h["name"].as_str().unwrap_or("");
                        if name.to_ascii_lowercase() != name {
                            p.push(format!("{at}: header {name} is not lowercase"));
                        }
                        if h["type"] == "RegularExpression" {
                            expressions.push(h["value"].as_str().unwrap_or("("));
                        }
                    }
                    for e in expressions {
                        if regex::Regex::new(e).is_err() {
                            p.push(format!("{at}: {e:?} is no RE2 expression"));
                        }
                    }
                }
                let weights: Vec<u64> = rule["backendRefs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|b| b["weight"].as_u64().unwrap_or(1))
                    .collect();
                if weights.iter().all(|w| *w == 0) {
                    p.push(format!("{at}: weights {weights:?}: all 0"));
                }
            }
            for parent in spec["parentRefs"].as_array().into_iter().flatten() {
                if parent["kind"] != "Gateway" || parent["group"] != "gateway.networking.k8s.io" {
                    p.push(format!(
                        "{who}: parent {parent} is not a Gateway API Gateway"
                    ));
                }
            }
        }
        "AuthorizationPolicy" | "Gateway" => {}
        other => p.push(format!("{who}: unexpected kind {other}")),
    }
    p
}

#[test]
fn durations_are_read_like_istio() {
    assert_eq!(whole_millis("1s"), Some(1000));
    assert_eq!(whole_millis("1.5s"), Some(1500));
    assert_eq!(whole_millis("250ms"), Some(250));
    assert_eq!(whole_millis("1.0001s"), None);
    assert_eq!(whole_millis("1m"), None);
}
