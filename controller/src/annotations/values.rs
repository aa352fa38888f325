//! The grammar of each annotation's value: one parser per kind of value, whose error says
//! what was expected (the caller names the object, the annotation and the value).

use std::collections::BTreeMap;

use modelgate_core::auth::claims::ClaimPath;
use modelgate_core::auth::extractor::TokenSource;
use modelgate_core::auth::keys::KeyLimits;
use modelgate_core::config::AuthMode;
use modelgate_core::headers;
use modelgate_core::http::is_header_name;
use modelgate_core::route::StickyKey;

use super::GatewayRef;
use crate::key_sets;
use crate::settings::AuthKind;
use modelgate_core::names::{is_dns_label, is_dns_subdomain};

/// `[<namespace>/]<name>` or `mesh`; no namespace means the SeldonDeployment's.
pub fn parse_gateway(value: &str, namespace: &str) -> Result<GatewayRef, String> {
    const EXPECTED: &str = "expected [<namespace>/]<gateway name> or mesh";
    let value = value.trim();
    if value == "mesh" {
        return Ok(GatewayRef::Mesh);
    }
    let (ns, name) = match value.split_once('/') {
        Some((ns, name)) => (ns, name),
        None => (namespace, value),
    };
    if is_dns_label(ns) && is_dns_subdomain(name) {
        Ok(GatewayRef::Named {
            namespace: ns.to_string(),
            name: name.to_string(),
        })
    } else if namespace.is_empty() && !value.contains('/') && is_dns_subdomain(name) {
        // A setting without namespace: there is no SeldonDeployment to take it from.
        Err(format!("{EXPECTED}, with a namespace"))
    } else {
        Err(EXPECTED.into())
    }
}

pub(super) fn parse_attempts(value: &str) -> Result<u32, String> {
    value
        .trim()
        .parse::<u32>()
        .map_err(|_| "expected a number of retry attempts (an integer, 0 or more)".to_string())
}

pub(super) fn parse_timeout(value: &str) -> Result<u32, String> {
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| "expected a whole number of seconds, 1 or more".to_string())
}

pub(super) fn parse_auth_kind(value: &str) -> Result<AuthKind, String> {
    value
        .parse::<AuthKind>()
        .map_err(|_| "expected jwt or none".to_string())
}

pub(super) fn parse_auth_mode(value: &str) -> Result<AuthMode, String> {
    match value.trim() {
        "enforce" => Ok(AuthMode::Enforce),
        "audit" => Ok(AuthMode::Audit),
        _ => Err("expected enforce or audit".into()),
    }
}

pub(super) fn parse_ab_header(value: &str) -> Result<String, String> {
    let name = value.trim().to_ascii_lowercase();
    if !is_header_name(&name) {
        Err("expected an HTTP header name".into())
    } else if let Some(why) = headers::reserved_for_routing(&name) {
        Err(format!("expected a header of its own: {name} is {why}"))
    } else {
        Ok(name)
    }
}

pub(super) fn parse_sticky(value: &str) -> Result<String, String> {
    let value = value.trim();
    StickyKey::parse(value)?;
    Ok(value.to_string())
}

pub(super) fn parse_hosts(value: &str) -> Result<Vec<String>, String> {
    let hosts = comma_list(value, "host")?;
    for host in &hosts {
        let name = host.strip_prefix("*.").unwrap_or(host);
        if host != "*" && !is_dns_subdomain(&name.to_ascii_lowercase()) {
            return Err(format!(
                "{host:?} is not a host: expected *, a DNS name or *.<DNS name>"
            ));
        }
    }
    Ok(hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect())
}

/// A comma-separated list, trimmed; empty items are an error.
pub(super) fn comma_list(value: &str, what: &str) -> Result<Vec<String>, String> {
    let items: Vec<String> = value.split(',').map(|s| s.trim().to_string()).collect();
    if items.iter().any(String::is_empty) {
        return Err(format!(
            "expected a comma-separated list of {what}s without empty items"
        ));
    }
    Ok(items)
}

pub(super) fn parse_bool(value: &str) -> Result<bool, String> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

/// An `http(s)://` URL with a host.
pub fn parse_jwks_uri(value: &str) -> Result<String, String> {
    let value = value.trim();
    match reqwest::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
            Ok(value.to_string())
        }
        _ => Err("expected an http:// or https:// URL of the issuer's JWKS".into()),
    }
}

/// An inline JWKS with at least one key the filter can use.
pub(super) fn parse_inline_jwks(
    value: &str,
    limits: &KeyLimits,
) -> Result<key_sets::Reduced, String> {
    if value.len() > key_sets::MAX_INLINE_JWKS_BYTES {
        return Err(format!(
            "expected a JWKS of at most {} bytes, not {}",
            key_sets::MAX_INLINE_JWKS_BYTES,
            value.len()
        ));
    }
    let reduced = key_sets::read_document(value.as_bytes(), limits)
        .map_err(|e| format!("expected a JWKS JSON document {{\"keys\": [...]}}: {e}"))?;
    if reduced.set.keys.is_empty() {
        return Err(format!(
            "expected a JWKS with a usable signing key; none is: {}",
            reduced.dropped.join("; ")
        ));
    }
    Ok(reduced)
}

pub(super) fn parse_claims(value: &str) -> Result<BTreeMap<String, Vec<String>>, String> {
    const EXPECTED: &str = "expected a JSON object of claim names to lists of accepted values, like {\"groups\": [\"ml-team\"]}";
    let map: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(value).map_err(|e| format!("{EXPECTED}: {e}"))?;
    let mut claims = BTreeMap::new();
    for (name, values) in map {
        ClaimPath::parse(&name).map_err(|e| format!("{EXPECTED}: {e}"))?;
        let list: Vec<String> = match values {
            serde_json::Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => Ok(s),
                    other => Err(format!("{EXPECTED}: {name} lists {other}, not a string")),
                })
                .collect::<Result<_, _>>()?,
            other => return Err(format!("{EXPECTED}: {name} is {other}, not a list")),
        };
        if list.is_empty() {
            return Err(format!("{EXPECTED}: {name} lists no value"));
        }
        claims.insert(name, list);
    }
    Ok(claims)
}

pub(super) fn parse_token_from(value: &str) -> Result<Vec<String>, String> {
    let items = comma_list(value, "token place")?;
    let mut sources = Vec::new();
    let mut out = Vec::new();
    for item in items {
        let source = TokenSource::parse(&item)
            .map_err(|e| format!("expected header:<name> or query:<param> items: {e}"))?;
        if sources.contains(&source) {
            return Err(format!("{item} is listed twice"));
        }
        if let TokenSource::Header(name) = &source
            && let Some(why) = headers::reserved_for_tokens(name)
        {
            return Err(format!("tokens cannot be read from {name}: it is {why}"));
        }
        sources.push(source);
        out.push(item);
    }
    Ok(out)
}

pub(super) fn parse_forward_claims(value: &str) -> Result<BTreeMap<String, String>, String> {
    const EXPECTED: &str = "expected claim:header items";
    let mut map = BTreeMap::new();
    for item in comma_list(value, "claim:header item")? {
        // Claim names may hold ':' (URL-like names); header names never do.
        let (claim, header) = item
            .rsplit_once(':')
            .ok_or_else(|| format!("{EXPECTED}: {item:?} has no ':'"))?;
        ClaimPath::parse(claim).map_err(|e| format!("{EXPECTED}: {e}"))?;
        let header = header.trim().to_ascii_lowercase();
        if !is_header_name(&header) {
            return Err(format!("{EXPECTED}: {header:?} is not a header name"));
        }
        if let Some(why) = headers::reserved_for_forwarding(&header) {
            return Err(format!(
                "{EXPECTED}: a token may not write {header}: it is {why}"
            ));
        }
        if map.values().any(|h| *h == header) {
            return Err(format!("{EXPECTED}: header {header} is used twice"));
        }
        if map.insert(claim.to_string(), header).is_some() {
            return Err(format!("{EXPECTED}: claim {claim} is listed twice"));
        }
    }
    Ok(map)
}
