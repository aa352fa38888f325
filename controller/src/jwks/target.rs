//! Where the controller may fetch a JWKS from. A tenant names any URI it likes, so the
//! controller refuses plain http, cluster-internal names and every non-public address
//! (loopback, link-local metadata services, private networks, ...) unless the platform's
//! `jwks.allowedTargets` admits them. Names are checked before any DNS query; the
//! addresses a name resolves to are checked again before connecting (see `fetch`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Deserialize;

/// One entry of `jwks.allowedTargets`: a network, or a host name the platform vouches for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum AllowedTarget {
    /// Addresses in this network (`10.0.0.0/8`, `127.0.0.1/32`, `fd00::/8`; a bare
    /// address is a single-address network).
    Network(Network),
    /// Exactly this host name, and whatever it resolves to.
    Host(String),
    /// Host names ending in this suffix (written `*.corp.example`; the dot included),
    /// and whatever they resolve to.
    HostSuffix(String),
}

impl TryFrom<String> for AllowedTarget {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let text = text.trim();
        if let Some(network) = Network::parse(text) {
            return Ok(AllowedTarget::Network(network));
        }
        let expected = || {
            format!(
                "{text:?} is not an allowed target: expected a network (10.0.0.0/8, 127.0.0.1), a host name (idp.auth.svc.cluster.local) or *.<domain>"
            )
        };
        let (suffix, name) = match text.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let valid = !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        match (valid, suffix) {
            (false, _) => Err(expected()),
            (true, true) => Ok(AllowedTarget::HostSuffix(format!(".{name}"))),
            (true, false) => Ok(AllowedTarget::Host(name)),
        }
    }
}

/// An IP network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    /// `a.b.c.d/n`, `x::y/n`, or a bare address.
    pub fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().ok()?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { address, prefix })
    }

    /// Whether the network holds `ip` (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                same_prefix(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

fn same_prefix(a: &[u8], b: &[u8], bits: u8) -> bool {
    let (whole, rest) = (usize::from(bits / 8), bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[whole] & mask == b[whole] & mask
    }
}

/// IPv4 addresses carried in IPv6 (mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`)
/// are judged as the IPv4 address they reach.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return IpAddr::V4(Ipv4Addr::new(a, b, c, d));
            }
            ip
        }
        IpAddr::V4(_) => ip,
    }
}

/// Why an address is not public, or `None` when it is.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    Some(if ip.is_unspecified() || a == 0 {
        "unspecified"
    } else if ip.is_loopback() {
        "loopback"
    } else if ip.is_link_local() {
        "link-local (cloud metadata services live here)"
    } else if ip.is_private() {
        "private"
    } else if a == 100 && (64..128).contains(&b) {
        "shared address space (100.64.0.0/10, often pod or node networks)"
    } else if ip.is_multicast() {
        "multicast"
    } else if ip.is_broadcast() || a >= 240 {
        "reserved"
    } else {
        return None;
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    Some(if ip.is_unspecified() {
        "unspecified"
    } else if ip.is_loopback() {
        "loopback"
    } else if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 {
        "link-local"
    } else if first & 0xfe00 == 0xfc00 {
        "private (unique local)"
    } else if ip.is_multicast() {
        "multicast"
    } else if ip.segments()[..6] == [0; 6] {
        "reserved (IPv4-compatible)"
    } else {
        return None;
    })
}

/// Why a host name is cluster-internal or local, or `None` when it looks public.
/// `name` is lowercase without a trailing dot.
pub fn internal_name(name: &str) -> Option<&'static str> {
    const SUFFIXES: [(&str, &str); 5] = [
        (".svc", "a Kubernetes Service name"),
        (".cluster.local", "a cluster-internal name"),
        (".local", "a local (mDNS) name"),
        (".localhost", "a loopback name"),
        (
            ".internal",
            "an internal name (cloud metadata services use these)",
        ),
    ];
    if !name.contains('.') {
        return Some("a single-label name (resolved through the cluster's search domains)");
    }
    if name == "kubernetes.default" || name.starts_with("kubernetes.default.") {
        return Some("the Kubernetes API server");
    }
    SUFFIXES
        .iter()
        .find(|(suffix, _)| name.ends_with(suffix))
        .map(|(_, why)| *why)
}

/// The scheme and target rules, from the `jwks` settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Whether `http://` URIs are fetched.
    pub allow_http: bool,
    /// What the platform admits despite the rules.
    pub allowed: Vec<AllowedTarget>,
}

impl TargetPolicy {
    /// Checks a URI before anything is sent: its scheme, its host if that is an address,
    /// and its name otherwise (a name's addresses are checked when it is resolved).
    pub fn check_uri(&self, url: &reqwest::Url) -> Result<(), String> {
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => {
                return Err(
                    "http:// is refused: JWKS are fetched over https:// unless the controller's jwks.allowHttp is set"
                        .into(),
                );
            }
            other => return Err(format!("{other}:// is not http(s)")),
        }
        match url.host() {
            None => Err("the URI has no host".into()),
            Some(url::Host::Ipv4(ip)) => self.check_address(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check_address(IpAddr::V6(ip)),
            Some(url::Host::Domain(name)) => self.check_name(name),
        }
    }

    fn check_name(&self, name: &str) -> Result<(), String> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if self.admits_name(&name) {
            return Ok(());
        }
        match internal_name(&name) {
            Some(why) => Err(format!(
                "host {name} is {why}: refused unless the controller's jwks.allowedTargets lists it"
            )),
            None => Ok(()),
        }
    }

    fn admits_name(&self, name: &str) -> bool {
        self.allowed.iter().any(|rule| match rule {
            AllowedTarget::Host(host) => host == name,
            AllowedTarget::HostSuffix(suffix) => name.ends_with(suffix.as_str()),
            AllowedTarget::Network(_) => false,
        })
    }

    /// Checks one address the fetch would connect to.
    pub fn check_address(&self, ip: IpAddr) -> Result<(), String> {
        let admitted = self.allowed.iter().any(|rule| match rule {
            AllowedTarget::Network(network) => network.contains(ip),
            _ => false,
        });
        match non_public(ip) {
            Some(why) if !admitted => Err(format!(
                "address {ip} is {why}: refused unless the controller's jwks.allowedTargets lists a network holding it"
            )),
            _ => Ok(()),
        }
    }

    /// Checks every address `name` resolved to: one refused address refuses the name, so
    /// an answer mixing a public and an internal address cannot reach the internal one.
    pub fn check_resolved(&self, name: &str, addresses: &[IpAddr]) -> Result<(), String> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if self.admits_name(&name) {
            return Ok(());
        }
        if addresses.is_empty() {
            return Err(format!("host {name} resolved to no address"));
        }
        for ip in addresses {
            self.check_address(*ip)
                .map_err(|why| format!("host {name}: {why}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow_http: bool, allowed: &[&str]) -> TargetPolicy {
        TargetPolicy {
            allow_http,
            allowed: allowed
                .iter()
                .map(|a| AllowedTarget::try_from(a.to_string()).unwrap())
                .collect(),
        }
    }

    fn check(policy: &TargetPolicy, uri: &str) -> Result<(), String> {
        policy.check_uri(&reqwest::Url::parse(uri).unwrap())
    }

    #[test]
    fn only_https_unless_http_is_allowed() {
        let strict = policy(false, &[]);
        assert!(check(&strict, "https://idp.example.com/jwks").is_ok());
        let err = check(&strict, "http://idp.example.com/jwks").unwrap_err();
        assert!(err.contains("jwks.allowHttp"), "{err}");
        assert!(check(&policy(true, &[]), "http://idp.example.com/jwks").is_ok());
    }

    #[test]
    fn non_public_addresses_are_refused_with_the_reason() {
        let strict = policy(false, &[]);
        for (uri, why) in [
            ("https://127.0.0.1/", "loopback"),
            ("https://127.8.9.10/", "loopback"),
            ("https://[::1]:15000/", "loopback"),
            ("https://169.254.169.254/latest/meta-data", "link-local"),
            ("https://[fe80::1]/", "link-local"),
            ("https://10.0.0.1/", "private"),
            ("https://172.16.0.1/", "private"),
            ("https://172.31.255.255/", "private"),
            ("https://192.168.1.1/", "private"),
            ("https://[fd00::1]/", "private"),
            ("https://0.0.0.0/", "unspecified"),
            ("https://[::]/", "unspecified"),
            ("https://224.0.0.1/", "multicast"),
            ("https://[ff02::1]/", "multicast"),
            ("https://100.64.0.1/", "shared address space"),
            ("https://[::ffff:127.0.0.1]/", "loopback"),
            ("https://[::ffff:169.254.169.254]/", "link-local"),
            ("https://[64:ff9b::10.0.0.1]/", "private"),
            ("https://[::127.0.0.1]/", "reserved"),
            // Integer and short forms are normalised by the URL parser.
            ("https://2130706433/", "loopback"),
            ("https://127.1/", "loopback"),
        ] {
            let err = check(&strict, uri).unwrap_err();
            assert!(
                err.contains(why) && err.contains("jwks.allowedTargets"),
                "{uri}: {err}"
            );
        }
        for uri in [
            "https://172.32.0.1/",
            "https://8.8.8.8/",
            "https://[2001:db8::1]/",
        ] {
            assert_eq!(check(&strict, uri), Ok(()), "{uri}");
        }
    }

    #[test]
    fn cluster_internal_names_are_refused_before_any_lookup() {
        let strict = policy(false, &[]);
        for uri in [
            "https://keycloak.auth.svc/jwks",
            "https://keycloak.auth.svc.cluster.local/jwks",
            "https://KEYCLOAK.auth.svc.cluster.local./jwks",
            "https://kubernetes.default/",
            "https://kubernetes.default.svc/",
            "https://x.cluster.local/",
            "https://keycloak/jwks",
            "https://localhost:8080/",
            "https://metadata.google.internal/",
        ] {
            let err = check(&strict, uri).unwrap_err();
            assert!(err.contains("jwks.allowedTargets"), "{uri}: {err}");
        }
        assert_eq!(check(&strict, "https://idp.example.com/"), Ok(()));
    }

    #[test]
    fn the_allow_list_admits_networks_and_names() {
        let allowing = policy(
            false,
            &[
                "127.0.0.1",
                "10.0.0.0/8",
                "keycloak.auth.svc.cluster.local",
                "*.corp.example",
            ],
        );
        assert_eq!(check(&allowing, "https://127.0.0.1:9/"), Ok(()));
        assert!(check(&allowing, "https://127.0.0.2/").is_err());
        assert!(check(&allowing, "https://10.1.2.3/").is_ok());
        assert!(check(&allowing, "https://[::ffff:10.1.2.3]/").is_ok());
        assert!(check(&allowing, "https://192.168.0.1/").is_err());
        assert_eq!(
            check(&allowing, "https://keycloak.auth.svc.cluster.local/"),
            Ok(())
        );
        assert!(check(&allowing, "https://other.auth.svc.cluster.local/").is_err());
        // A name the list admits may resolve to any address; the suffix starts at a dot,
        // so a look-alike domain is not admitted by it.
        let cluster_ip: IpAddr = "192.168.7.7".parse().unwrap();
        assert!(
            allowing
                .check_resolved("idp.corp.example", &[cluster_ip])
                .is_ok()
        );
        assert!(
            allowing
                .check_resolved("evilcorp.example", &[cluster_ip])
                .is_err()
        );
        assert!(AllowedTarget::try_from("10.0.0.0/33".to_string()).is_err());
        assert!(AllowedTarget::try_from("https://x/".to_string()).is_err());
        assert!(AllowedTarget::try_from("*.".to_string()).is_err());
    }

    #[test]
    fn every_resolved_address_must_pass() {
        let strict = policy(false, &[]);
        let public: IpAddr = "93.184.216.34".parse().unwrap();
        let metadata: IpAddr = "169.254.169.254".parse().unwrap();
        assert!(strict.check_resolved("idp.example.com", &[public]).is_ok());
        let err = strict
            .check_resolved("rebind.example.com.", &[public, metadata])
            .unwrap_err();
        assert!(
            err.contains("rebind.example.com") && err.contains("169.254.169.254"),
            "{err}"
        );
        assert!(strict.check_resolved("idp.example.com", &[]).is_err());
        let by_name = policy(false, &["idp.auth.svc.cluster.local"]);
        assert!(
            by_name
                .check_resolved(
                    "idp.auth.svc.cluster.local",
                    &["10.96.0.10".parse().unwrap()]
                )
                .is_ok()
        );
    }

    #[test]
    fn networks_match_by_prefix() {
        let net = Network::parse("172.16.0.0/12").unwrap();
        assert!(net.contains("172.20.1.1".parse().unwrap()));
        assert!(!net.contains("172.32.0.0".parse().unwrap()));
        let v6 = Network::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe00::1".parse().unwrap()));
        assert!(
            Network::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert_eq!(Network::parse("::1").unwrap().to_string(), "::1/128");
    }
}
