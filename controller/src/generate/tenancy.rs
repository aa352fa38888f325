//! Who may claim what outside their own namespace (SPEC section 3, Tenants): which
//! Gateways the controller creates for a model, and which hostnames a model may bind. Both
//! are decided from the whole set of SeldonDeployments and the settings alone, so `render`,
//! `check` and `run` agree; the later claimer of a host gets the error, never the earlier.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::annotations::{GatewayRef, ISTIO_HOST, ModelError, Source};
use crate::settings::{Settings, TenancySettings, UngrantedHosts};

/// Whether the controller may create (and keep) the Gateway `gateway` for a model of
/// `namespace`: in the model's own namespace, in a namespace the platform lists, or the
/// controller's default gateway (the platform's own choice).
pub fn may_create_gateway(settings: &Settings, namespace: &str, gateway: &GatewayRef) -> bool {
    match gateway {
        GatewayRef::Mesh => false,
        GatewayRef::Named {
            namespace: gw_namespace,
            ..
        } => {
            gw_namespace == namespace
                || settings
                    .tenancy
                    .gateway_namespaces
                    .iter()
                    .any(|n| n == gw_namespace)
                || crate::annotations::parse_gateway(&settings.default_gateway, "")
                    .ok()
                    .as_ref()
                    == Some(gateway)
        }
    }
}

/// One model's claim on hostnames, in the order claims are decided.
#[derive(Debug, Clone)]
pub struct HostClaim<'a> {
    /// `<namespace>/<name>`.
    pub id: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
    /// When it was created (none for manifests read from files).
    pub created: Option<&'a Time>,
    /// Its hosts, lowercase, and where the value came from (`None` when the hosts are
    /// the default `*`).
    pub hosts: &'a [String],
    /// Where `seldon.io/istio-host` was read from, for the error.
    pub from: Source,
}

/// Decides every claim: the models whose hosts are refused, each with its error. Claims
/// are taken in creation order (then by id), so an older model is never displaced by a
/// newer one; a refused model's hosts are not held by it.
pub fn refused_hosts(
    claims: &[HostClaim<'_>],
    tenancy: &TenancySettings,
) -> BTreeMap<String, ModelError> {
    let mut ordered: Vec<&HostClaim<'_>> = claims.iter().collect();
    // Models without a creation time (files) come after the others, by id.
    ordered.sort_by(|a, b| {
        let key = |c: &HostClaim<'_>| {
            (
                c.created.is_none(),
                c.created.map(|t| t.0),
                c.id.to_string(),
            )
        };
        key(a).cmp(&key(b))
    });
    // Held hosts: (namespace, host). `*` is held by every model that uses it.
    let mut held: Vec<(&str, &str)> = Vec::new();
    let mut refused = BTreeMap::new();
    for claim in ordered {
        let problem = claim
            .hosts
            .iter()
            .filter(|h| h.as_str() != "*")
            .find_map(|host| refusal(host, claim.namespace, &held, tenancy));
        match problem {
            Some(expected) => {
                refused.insert(
                    claim.id.to_string(),
                    ModelError::Annotation {
                        object: claim.id.to_string(),
                        annotation: ISTIO_HOST.into(),
                        value: claim.hosts.join(","),
                        from: claim.from,
                        expected,
                    },
                );
            }
            None => held.extend(claim.hosts.iter().map(|h| (claim.namespace, h.as_str()))),
        }
    }
    refused
}

/// Why `host` may not be bound by a model of `namespace`, given the hosts held so far.
fn refusal(
    host: &str,
    namespace: &str,
    held: &[(&str, &str)],
    tenancy: &TenancySettings,
) -> Option<String> {
    let granted_to = |ns: &str| {
        tenancy
            .hosts
            .get(ns)
            .is_some_and(|patterns| patterns.iter().any(|p| within(host, p)))
    };
    let granted = granted_to("*") || granted_to(namespace);
    let others: Vec<&str> = tenancy
        .hosts
        .keys()
        .map(String::as_str)
        .filter(|ns| *ns != "*" && *ns != namespace && granted_to(ns))
        .collect();
    if !granted && !others.is_empty() {
        return Some(format!(
            "{host} is granted to namespace {} by the platform (setting tenancy.hosts), not to {namespace}",
            others.join(", ")
        ));
    }
    if !granted && tenancy.ungranted_hosts == UngrantedHosts::Refuse {
        return Some(format!(
            "{host} is not granted to namespace {namespace} (setting tenancy.hosts); use * or ask the platform team"
        ));
    }
    // A granted host is not taken away by other namespaces' `*` models: the platform
    // chose to give it. An ungranted one is: they are served on it already.
    let earlier = held.iter().find(|(ns, h)| {
        *ns != namespace
            && if *h == "*" {
                !granted
            } else {
                overlaps(host, h)
            }
    })?;
    Some(if earlier.1 == "*" {
        format!(
            "{host} would take the hostname away from models of namespace {}, served on it through *; only a host granted by the platform (setting tenancy.hosts) may be bound",
            earlier.0
        )
    } else {
        format!(
            "{host} overlaps {}, claimed earlier by a model of namespace {}",
            earlier.1, earlier.0
        )
    })
}

/// Whether `host` (a name or `*.domain`) falls within the pattern `pattern`.
fn within(host: &str, pattern: &str) -> bool {
    if pattern == "*" || pattern == host {
        return true;
    }
    match pattern.strip_prefix('*') {
        Some(suffix) if suffix.starts_with('.') => {
            host.ends_with(suffix) && host.len() > suffix.len()
        }
        _ => false,
    }
}

/// Whether two hosts can both match one request's hostname.
fn overlaps(a: &str, b: &str) -> bool {
    within(a, b) || within(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim<'a>(id: &'a str, hosts: &'a [String], secs: Option<&'a Time>) -> HostClaim<'a> {
        HostClaim {
            id,
            namespace: id.split('/').next().unwrap(),
            created: secs,
            hosts,
            from: Source::Spec,
        }
    }

    fn time(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn patterns_match_names_and_subdomains_only() {
        assert!(within("a.example.com", "*.example.com"));
        assert!(within("*.x.example.com", "*.example.com"));
        assert!(!within("example.com", "*.example.com"));
        assert!(!within("badexample.com", "*.example.com"));
        assert!(overlaps("*.example.com", "a.example.com"));
        assert!(!overlaps("a.example.com", "b.example.com"));
    }

    #[test]
    fn the_later_claimer_of_a_host_is_refused_whatever_the_name_order() {
        let host = vec!["api.example.com".to_string()];
        let (early, late) = (time(100), time(200));
        let claims = [
            claim("a-evil/x", &host, Some(&late)),
            claim("z-bank/m", &host, Some(&early)),
        ];
        let refused = refused_hosts(&claims, &TenancySettings::default());
        assert_eq!(refused.keys().collect::<Vec<_>>(), ["a-evil/x"]);
        assert!(refused["a-evil/x"].to_string().contains("z-bank"));
        // The same namespace may share its host.
        let claims = [
            claim("bank/a", &host, Some(&early)),
            claim("bank/b", &host, Some(&late)),
        ];
        assert!(refused_hosts(&claims, &TenancySettings::default()).is_empty());
    }

    #[test]
    fn a_host_other_namespaces_are_served_on_through_the_wildcard_needs_a_grant() {
        let star = vec!["*".to_string()];
        let host = vec!["api.bank.example.com".to_string()];
        let (early, late) = (time(100), time(200));
        let claims = [
            claim("bank/m", &star, Some(&early)),
            claim("evil/x", &host, Some(&late)),
        ];
        let mut tenancy = TenancySettings::default();
        assert!(refused_hosts(&claims, &tenancy).contains_key("evil/x"));
        // An earlier specific host is not taken away by a later wildcard model.
        let claims = [
            claim("bank/m", &star, Some(&late)),
            claim("evil/x", &host, Some(&early)),
        ];
        assert!(refused_hosts(&claims, &tenancy).is_empty());
        // Granted to bank: allowed for bank despite evil's wildcard, refused to evil.
        tenancy
            .hosts
            .insert("bank".into(), vec!["*.bank.example.com".into()]);
        let claims = [
            claim("evil/x", &star, Some(&early)),
            claim("bank/m", &host, Some(&late)),
            claim("evil/y", &host, Some(&early)),
        ];
        let refused = refused_hosts(&claims, &tenancy);
        assert_eq!(refused.keys().collect::<Vec<_>>(), ["evil/y"]);
        // Refuse mode: only `*` and grants.
        tenancy.ungranted_hosts = UngrantedHosts::Refuse;
        let other = vec!["other.example.com".to_string()];
        let claims = [claim("bank/m", &other, None)];
        assert!(refused_hosts(&claims, &tenancy).contains_key("bank/m"));
    }
}
