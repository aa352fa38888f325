//! What a tenant may name in its SeldonDeployments' JWT annotations. Tenants create models
//! in their own namespaces; the platform team decides (`tenancy` settings) which issuers
//! and JWKS URIs they may name and whether inline keys are allowed, and the controller
//! (`jwks` settings) refuses plain http and internal targets. A model breaking a rule gets
//! an error naming the rule, alone; its URI is never fetched.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::annotations::{Source, parse_jwks_uri};
use crate::settings::{Settings, TenancySettings};

/// A value pattern: exact, or a prefix when it ends in `*` (`*` alone matches anything).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Pattern(String);

impl TryFrom<String> for Pattern {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() || text.strip_suffix('*').unwrap_or(text).contains('*') {
            return Err(format!(
                "{text:?} is not a pattern: expected an exact value, or a prefix ending in a single *"
            ));
        }
        Ok(Pattern(text.to_string()))
    }
}

impl Pattern {
    fn matches(&self, value: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => value.starts_with(prefix),
            None => value == self.0,
        }
    }
}

/// Patterns by namespace: `"*"` applies to every namespace, a namespace's own entry adds
/// to it. No entry at all means no restriction.
pub type PatternsByNamespace = BTreeMap<String, Vec<Pattern>>;

/// Checks the JWT rules of the `tenancy` settings themselves: namespace keys, and URI
/// prefixes that pin a host.
pub fn validate_rules(tenancy: &TenancySettings) -> Result<(), (&'static str, String, String)> {
    for (setting, map) in [
        ("tenancy.allowedIssuers", &tenancy.allowed_issuers),
        ("tenancy.allowedJwksUris", &tenancy.allowed_jwks_uris),
    ] {
        if let Some(ns) = map
            .keys()
            .find(|ns| *ns != "*" && !modelgate_core::names::is_dns_label(ns))
        {
            return Err((setting, ns.clone(), "namespace names or \"*\"".into()));
        }
    }
    for pattern in tenancy.allowed_jwks_uris.values().flatten() {
        uri_pattern_problem(&pattern.0)
            .map_err(|expected| ("tenancy.allowedJwksUris", pattern.0.clone(), expected))?;
    }
    Ok(())
}

/// A URI pattern must be written as the URL parser writes it (what is matched is what is
/// fetched), and a prefix must end in a path, so `https://idp.example.com*` cannot admit
/// `https://idp.example.com.evil.example/`.
fn uri_pattern_problem(pattern: &str) -> Result<(), String> {
    let (text, prefix) = match pattern.strip_suffix('*') {
        Some("") => return Ok(()),
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let url = reqwest::Url::parse(text).map_err(|e| format!("a URL or a URL prefix: {e}"))?;
    if url.as_str() != text {
        return Err(format!("written as {}", url.as_str()));
    }
    if prefix && !(url.path().ends_with('/') && url.query().is_none()) {
        return Err(
            "a prefix ending in a path and /* (such as https://idp.example.com/realms/*)".into(),
        );
    }
    Ok(())
}

fn admitted(map: &PatternsByNamespace, namespace: &str, value: &str) -> Result<(), String> {
    if map.is_empty() {
        return Ok(());
    }
    let patterns: Vec<&Pattern> = ["*", namespace]
        .iter()
        .filter_map(|ns| map.get(*ns))
        .flatten()
        .collect();
    if patterns.iter().any(|p| p.matches(value)) {
        return Ok(());
    }
    let listed: Vec<&str> = patterns.iter().map(|p| p.0.as_str()).collect();
    Err(if listed.is_empty() {
        "none".to_string()
    } else {
        listed.join(", ")
    })
}

/// `seldon.io/jwt-issuer` of a model in `namespace`: a non-empty issuer the platform
/// allows there (a value from the controller's own `defaultIssuer` is not restricted).
pub fn admit_issuer(
    settings: &Settings,
    namespace: &str,
    source: Source,
    value: &str,
) -> Result<String, String> {
    let issuer = value.trim();
    if issuer.is_empty() {
        return Err("expected the issuer's iss value, not empty".into());
    }
    if source != Source::Setting {
        admitted(&settings.tenancy.allowed_issuers, namespace, issuer).map_err(|allowed| {
            format!(
                "issuer not allowed in namespace {namespace} by the controller's tenancy.allowedIssuers (allowed there: {allowed})"
            )
        })?;
    }
    Ok(issuer.to_string())
}

/// `seldon.io/jwt-jwks-uri` of a model in `namespace`: an http(s) URL the controller may
/// fetch (`jwks.allowHttp`, `jwks.allowedTargets`) and the platform allows there.
pub fn admit_jwks_uri(settings: &Settings, namespace: &str, value: &str) -> Result<String, String> {
    let uri = parse_jwks_uri(value)?;
    let url = reqwest::Url::parse(&uri).map_err(|e| e.to_string())?;
    settings.jwks.target_policy().check_uri(&url)?;
    admitted(&settings.tenancy.allowed_jwks_uris, namespace, url.as_str()).map_err(|allowed| {
        format!(
            "JWKS URI not allowed in namespace {namespace} by the controller's tenancy.allowedJwksUris (allowed there: {allowed})"
        )
    })?;
    Ok(uri)
}

/// Whether a model may carry inline keys (`seldon.io/jwt-jwks`).
pub fn admit_inline_jwks(settings: &Settings) -> Result<(), String> {
    if settings.tenancy.allow_inline_jwks {
        Ok(())
    } else {
        Err("inline keys are not allowed by the controller's tenancy.allowInlineJwks: name a JWKS URI instead".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(yaml: &str) -> TenancySettings {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn with(tenancy: TenancySettings) -> Settings {
        Settings {
            tenancy,
            ..Settings::default()
        }
    }

    #[test]
    fn no_rules_admit_any_issuer_and_public_https_uri() {
        let settings = Settings::default();
        assert!(admit_issuer(&settings, "a", Source::Metadata, "anything").is_ok());
        assert!(admit_jwks_uri(&settings, "a", "https://idp.example.com/jwks").is_ok());
        assert!(admit_inline_jwks(&settings).is_ok());
    }

    #[test]
    fn issuers_are_restricted_per_namespace_and_defaults_are_not() {
        let settings = with(rules(
            "allowedIssuers:\n  '*': [https://idp.example.com/realms/*]\n  bank: [https://idp.bank.example]\n",
        ));
        let ok = |ns, v| admit_issuer(&settings, ns, Source::Spec, v);
        assert!(ok("team", "https://idp.example.com/realms/team").is_ok());
        assert!(ok("bank", "https://idp.bank.example").is_ok());
        let err = ok("team", "https://idp.bank.example").unwrap_err();
        assert!(
            err.contains("tenancy.allowedIssuers") && err.contains("namespace team"),
            "{err}"
        );
        assert!(
            admit_issuer(&settings, "team", Source::Setting, "https://platform").is_ok(),
            "the platform's own default issuer is not a tenant's choice"
        );
        let only_bank = with(rules(
            "allowedIssuers:\n  bank: [https://idp.bank.example]\n",
        ));
        let err = admit_issuer(&only_bank, "team", Source::Metadata, "x").unwrap_err();
        assert!(err.contains("allowed there: none"), "{err}");
    }

    #[test]
    fn jwks_uris_are_matched_as_they_will_be_fetched() {
        let settings = with(rules(
            "allowedJwksUris:\n  '*': [https://idp.example.com/realms/*]\n",
        ));
        let ok = |v| admit_jwks_uri(&settings, "team", v);
        assert!(ok("https://idp.example.com/realms/team/certs").is_ok());
        assert!(ok("https://IDP.example.com/realms/team/certs").is_ok());
        for bad in [
            "https://idp.example.com/realms/../admin/certs",
            "https://idp.example.com.evil.example/realms/x",
            "https://evil.example/realms/x",
        ] {
            let err = ok(bad).unwrap_err();
            assert!(err.contains("tenancy.allowedJwksUris"), "{bad}: {err}");
        }
    }

    #[test]
    fn uris_must_be_https_and_public_unless_the_jwks_settings_allow() {
        let settings = Settings::default();
        let err = admit_jwks_uri(&settings, "a", "http://idp.example.com/jwks").unwrap_err();
        assert!(err.contains("jwks.allowHttp"), "{err}");
        let err = admit_jwks_uri(&settings, "a", "https://169.254.169.254/x").unwrap_err();
        assert!(err.contains("jwks.allowedTargets"), "{err}");
        let err = admit_jwks_uri(&settings, "a", "https://kubernetes.default.svc/").unwrap_err();
        assert!(err.contains("jwks.allowedTargets"), "{err}");
    }

    #[test]
    fn inline_keys_can_be_forbidden() {
        let settings = with(rules("allowInlineJwks: false\n"));
        let err = admit_inline_jwks(&settings).unwrap_err();
        assert!(err.contains("tenancy.allowInlineJwks"), "{err}");
    }

    #[test]
    fn bad_rules_are_refused() {
        assert!(
            serde_yaml_ng::from_str::<TenancySettings>("allowedIssuers: {'*': ['a*b*']}").is_err()
        );
        for (yaml, bad) in [
            ("allowedIssuers: {'Team_A': [x]}", "Team_A"),
            (
                "allowedJwksUris: {'*': ['https://idp.example.com*']}",
                "https://idp.example.com*",
            ),
            (
                "allowedJwksUris: {'*': ['https://IDP.example.com/x']}",
                "https://IDP.example.com/x",
            ),
            ("allowedJwksUris: {'*': ['not a url']}", "not a url"),
        ] {
            let (_, value, _) = validate_rules(&rules(yaml)).unwrap_err();
            assert_eq!(value, bad);
        }
        validate_rules(&rules(
            "allowedJwksUris: {'*': ['*'], team: ['https://idp.example.com/realms/team/*']}",
        ))
        .unwrap();
    }
}
