//! Who may claim what outside their own namespace (SPEC section 3, Tenants): which
//! Gateways the controller creates for a model, and which hostnames a model may bind. Both
//! are decided from the whole set of SeldonDeployments and the settings alone, so `render`,
//! `check` and `run` agree; the later claimer of a host gets the error, never the earlier.

use std::collections::{BTreeMap, HashMap};

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
    // Held hosts. `*` is held by every model that uses it.
    let mut held = Held::default();
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
            None => {
                for host in claim.hosts {
                    held.insert(claim.namespace, host);
                }
            }
        }
    }
    refused
}

/// Why `host` may not be bound by a model of `namespace`, given the hosts held so far.
fn refusal(
    host: &str,
    namespace: &str,
    held: &Held<'_>,
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
    let earlier = held.first_outside(namespace, host, !granted)?;
    let earlier = (earlier.namespace, earlier.host);
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

/// One holder of a host: its namespace and the host as held, `seq` its place in the
/// order hosts were taken.
#[derive(Debug, Clone, Copy)]
struct Holder<'a> {
    seq: usize,
    namespace: &'a str,
    host: &'a str,
}

/// The first holder of a key, and the first one of another namespace than the first's:
/// enough to tell the first holder outside any namespace.
#[derive(Debug, Clone, Copy)]
struct FirstTwo<'a> {
    first: Holder<'a>,
    other: Option<Holder<'a>>,
}

impl<'a> FirstTwo<'a> {
    fn add(map: &mut HashMap<&'a str, Self>, key: &'a str, holder: Holder<'a>) {
        map.entry(key)
            .and_modify(|two| {
                if two.other.is_none() && holder.namespace != two.first.namespace {
                    two.other = Some(holder);
                }
            })
            .or_insert(Self {
                first: holder,
                other: None,
            });
    }

    fn outside(&self, namespace: &str) -> Option<Holder<'a>> {
        if self.first.namespace != namespace {
            Some(self.first)
        } else {
            self.other
        }
    }
}

/// The hosts held so far, indexed so that a claim finds its first earlier holder in
/// about as many steps as its host has labels, not as many as there are models: with a
/// hundred thousand models each on its own hostname, a scan of every held host per claim
/// took longer than all the rest of a generation.
#[derive(Debug, Default)]
struct Held<'a> {
    next: usize,
    /// `*`: the first holder in each namespace, in order.
    stars: Vec<Holder<'a>>,
    /// Every other host, as held.
    exact: HashMap<&'a str, FirstTwo<'a>>,
    /// `*.<domain>` by `.<domain>`.
    wildcards: HashMap<&'a str, FirstTwo<'a>>,
    /// Every other host by each of its proper suffixes that start with a dot.
    suffixes: HashMap<&'a str, FirstTwo<'a>>,
}

impl<'a> Held<'a> {
    fn insert(&mut self, namespace: &'a str, host: &'a str) {
        let holder = Holder {
            seq: self.next,
            namespace,
            host,
        };
        self.next += 1;
        if host == "*" {
            if !self.stars.iter().any(|h| h.namespace == namespace) {
                self.stars.push(holder);
            }
            return;
        }
        FirstTwo::add(&mut self.exact, host, holder);
        if let Some(domain) = host.strip_prefix('*').filter(|d| d.starts_with('.')) {
            FirstTwo::add(&mut self.wildcards, domain, holder);
        }
        for (i, _) in host.match_indices('.').filter(|(i, _)| *i > 0) {
            FirstTwo::add(&mut self.suffixes, &host[i..], holder);
        }
    }

    /// The first holder, outside `namespace`, of a host that overlaps `host` (never `*`),
    /// or of `*` when `star` is set: what a scan of every held host in order finds.
    fn first_outside(&self, namespace: &str, host: &str, star: bool) -> Option<Holder<'a>> {
        let mut found: Vec<Holder<'a>> = Vec::new();
        if star {
            found.extend(self.stars.iter().find(|h| h.namespace != namespace));
        }
        let outside = |two: Option<&FirstTwo<'a>>| two.and_then(|two| two.outside(namespace));
        // The same host.
        found.extend(outside(self.exact.get(host)));
        // Held `*.<domain>` that `host` falls within.
        for (i, _) in host.match_indices('.').filter(|(i, _)| *i > 0) {
            found.extend(outside(self.wildcards.get(&host[i..])));
        }
        // Held hosts that fall within `host`, a `*.<domain>`.
        if let Some(domain) = host.strip_prefix('*').filter(|d| d.starts_with('.')) {
            found.extend(outside(self.suffixes.get(domain)));
        }
        found.into_iter().min_by_key(|h| h.seq)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether two hosts can both match one request's hostname.
    fn overlaps(a: &str, b: &str) -> bool {
        within(a, b) || within(b, a)
    }

    /// What [`Held::first_outside`] must find: the first held host, in order, of another
    /// namespace that overlaps `host` (or is `*`, when `star`).
    fn scan<'a>(
        held: &[(&'a str, &'a str)],
        namespace: &str,
        host: &str,
        star: bool,
    ) -> Option<(&'a str, &'a str)> {
        held.iter()
            .copied()
            .find(|(ns, h)| *ns != namespace && if *h == "*" { star } else { overlaps(host, h) })
    }

    #[test]
    fn the_index_finds_the_first_earlier_holder_a_scan_finds() {
        // Hosts over a few labels, so that many overlap: names, wildcards, subdomains.
        let labels = ["a", "b", "x", "*"];
        let mut hosts = Vec::new();
        for first in labels {
            for second in ["a", "b", "x"] {
                hosts.push(format!("{first}.{second}.example.com"));
                for third in ["a", "x"] {
                    hosts.push(format!("{first}.{third}.{second}.example.com"));
                }
            }
        }
        hosts.extend(["*".into(), "*.example.com".into(), "example.com".into()]);
        let namespaces = ["n1", "n2", "n3"];
        // A fixed pseudo-random order of takes and questions.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize % n
        };
        let picks: Vec<(usize, usize, bool)> = (0..3_000)
            .map(|_| (next(namespaces.len()), next(hosts.len()), next(2) == 0))
            .collect();
        let mut held = Held::default();
        let mut scanned: Vec<(&str, &str)> = Vec::new();
        let mut asked = 0;
        for &(ns, host, take) in &picks {
            let (namespace, host) = (namespaces[ns], hosts[host].as_str());
            if take {
                held.insert(namespace, host);
                scanned.push((namespace, host));
            } else if host != "*" {
                for star in [false, true] {
                    let found = held
                        .first_outside(namespace, host, star)
                        .map(|h| (h.namespace, h.host));
                    assert_eq!(
                        found,
                        scan(&scanned, namespace, host, star),
                        "{namespace} {host}"
                    );
                    asked += 1;
                }
            }
        }
        assert!(asked > 2_000);
    }

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
