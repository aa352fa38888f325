//! The user's interface: annotations on a SeldonDeployment, parsed into [`ModelOptions`].
//! `spec.annotations` wins over `metadata.annotations`, even when its value is empty
//! (Seldon's rule), and the controller's settings fill in the rest. Every bad value is an
//! [`ModelError`] naming the object, the annotation, the value and what was expected;
//! every problem is reported, not only the first.

use std::collections::BTreeMap;
use std::fmt;

use modelgate_core::claims::ClaimPath;
use modelgate_core::config::{AuthMode, JwtPolicy, KeySet};
use modelgate_core::headers;

use crate::key_sets;
use modelgate_core::routing::StickyKey;
use modelgate_core::token::{TokenSource, is_header_name};

use crate::names::{is_dns_label, is_dns_subdomain};
use crate::seldon::{SVC_NAME_ANNOTATION, SeldonDeployment};
use crate::settings::{AuthKind, Settings};
use crate::tenancy;

/// `seldon.io/istio-gateway`.
pub const ISTIO_GATEWAY: &str = "seldon.io/istio-gateway";
/// `seldon.io/istio-retries`.
pub const ISTIO_RETRIES: &str = "seldon.io/istio-retries";
/// `seldon.io/istio-retries-timeout`.
pub const ISTIO_RETRIES_TIMEOUT: &str = "seldon.io/istio-retries-timeout";
/// `seldon.io/istio-host`.
pub const ISTIO_HOST: &str = "seldon.io/istio-host";
/// `seldon.io/auth`.
pub const AUTH: &str = "seldon.io/auth";
/// `seldon.io/jwt-issuer`.
pub const JWT_ISSUER: &str = "seldon.io/jwt-issuer";
/// `seldon.io/jwt-audiences`.
pub const JWT_AUDIENCES: &str = "seldon.io/jwt-audiences";
/// `seldon.io/jwt-jwks-uri`.
pub const JWT_JWKS_URI: &str = "seldon.io/jwt-jwks-uri";
/// `seldon.io/jwt-jwks`.
pub const JWT_JWKS: &str = "seldon.io/jwt-jwks";
/// `seldon.io/jwt-claims`.
pub const JWT_CLAIMS: &str = "seldon.io/jwt-claims";
/// `seldon.io/jwt-from`.
pub const JWT_FROM: &str = "seldon.io/jwt-from";
/// `seldon.io/jwt-forward-claims`.
pub const JWT_FORWARD_CLAIMS: &str = "seldon.io/jwt-forward-claims";
/// `seldon.io/jwt-forward-token`.
pub const JWT_FORWARD_TOKEN: &str = "seldon.io/jwt-forward-token";
/// `seldon.io/auth-mode`.
pub const AUTH_MODE: &str = "seldon.io/auth-mode";
/// `seldon.io/ab-header`.
pub const AB_HEADER: &str = "seldon.io/ab-header";
/// `seldon.io/ab-override`.
pub const AB_OVERRIDE: &str = "seldon.io/ab-override";
/// `seldon.io/ab-sticky`.
pub const AB_STICKY: &str = "seldon.io/ab-sticky";

/// Every annotation this controller reads.
pub const KNOWN: [&str; 17] = [
    ISTIO_GATEWAY,
    ISTIO_RETRIES,
    ISTIO_RETRIES_TIMEOUT,
    ISTIO_HOST,
    AUTH,
    JWT_ISSUER,
    JWT_AUDIENCES,
    JWT_JWKS_URI,
    JWT_JWKS,
    JWT_CLAIMS,
    JWT_FROM,
    JWT_FORWARD_CLAIMS,
    JWT_FORWARD_TOKEN,
    AUTH_MODE,
    AB_HEADER,
    AB_OVERRIDE,
    AB_STICKY,
];

const JWT_ANNOTATIONS: [&str; 9] = [
    JWT_ISSUER,
    JWT_AUDIENCES,
    JWT_JWKS_URI,
    JWT_JWKS,
    JWT_CLAIMS,
    JWT_FROM,
    JWT_FORWARD_CLAIMS,
    JWT_FORWARD_TOKEN,
    AUTH_MODE,
];

/// Where an annotation's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `spec.annotations`.
    Spec,
    /// `metadata.annotations`.
    Metadata,
    /// A controller setting.
    Setting,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Spec => "spec.annotations",
            Source::Metadata => "metadata.annotations",
            Source::Setting => "controller setting for",
        })
    }
}

/// A problem with one SeldonDeployment: its configuration cannot be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// An annotation's value does not parse.
    #[error("SeldonDeployment {object}: {from} {annotation}={}: {expected}", shown(.value))]
    Annotation {
        /// `<namespace>/<name>`.
        object: String,
        /// The annotation.
        annotation: String,
        /// Its value.
        value: String,
        /// Where the value was found.
        from: Source,
        /// What was expected.
        expected: String,
    },
    /// The model's share of the filter configuration is refused: over a budget, or not
    /// usable by the filter's compiler.
    #[error("SeldonDeployment {object}: filter configuration refused: {message}")]
    Filter {
        /// `<namespace>/<name>`.
        object: String,
        /// Why.
        message: String,
    },
    /// A field of the spec is not usable.
    #[error("SeldonDeployment {object}: {field}={}: {expected}", shown(.value))]
    Spec {
        /// `<namespace>/<name>`.
        object: String,
        /// The field, such as `spec.predictors[1].name`.
        field: String,
        /// Its value.
        value: String,
        /// What was expected.
        expected: String,
    },
}

/// A value as an error shows it: quoted, and cut short when long (a tenant's megabyte of
/// JWKS must not become a megabyte of Event, nor push the reason out of it).
fn shown(value: &str) -> String {
    const MAX_CHARS: usize = 120;
    if value.chars().count() <= MAX_CHARS {
        return format!("{value:?}");
    }
    let start: String = value.chars().take(MAX_CHARS).collect();
    format!("{start:?}… ({} bytes)", value.len())
}

impl ModelError {
    /// The annotation or field the error is about.
    pub fn subject(&self) -> &str {
        match self {
            ModelError::Annotation { annotation, .. } => annotation,
            ModelError::Spec { field, .. } => field,
            ModelError::Filter { .. } => "pluginConfig",
        }
    }
}

/// Something the user should look at that does not stop generation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SeldonDeployment {object}: {annotation}: {message}")]
pub struct ModelWarning {
    /// `<namespace>/<name>`.
    pub object: String,
    /// The annotation or field concerned.
    pub annotation: String,
    /// What is wrong.
    pub message: String,
}

/// The gateway a model is exposed on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum GatewayRef {
    /// `mesh`: in-mesh only; the ingress filter does not see this traffic.
    Mesh,
    /// An Istio Gateway.
    Named {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

impl fmt::Display for GatewayRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GatewayRef::Mesh => f.write_str("mesh"),
            GatewayRef::Named { namespace, name } => write!(f, "{namespace}/{name}"),
        }
    }
}

/// Retries on every route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retries {
    /// Retry attempts; `0` disables Istio's default retries.
    pub attempts: u32,
    /// Per-try timeout in whole seconds.
    pub per_try_timeout_secs: u32,
}

/// Where a JWT policy's keys come from.
#[derive(Debug, Clone, PartialEq)]
pub enum KeySource {
    /// Fetched by the controller (`seldon.io/jwt-jwks-uri`).
    Uri(String),
    /// Given inline (`seldon.io/jwt-jwks`), or recovered from a running configuration.
    Inline(KeySet),
}

/// How a model authenticates requests.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthOptions {
    /// `seldon.io/auth: none`.
    None,
    /// `seldon.io/auth: jwt`: the policy (its `key_set` is filled in when the filter
    /// configuration is built) and where its keys come from.
    Jwt(Box<JwtPolicy>, KeySource),
}

/// A/B routing options (`seldon.io/ab-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingOptions {
    /// The routing header, lowercase.
    pub header: String,
    /// Whether clients may pick a predictor.
    pub override_allowed: bool,
    /// The stickiness key.
    pub sticky: Option<String>,
}

/// Everything a SeldonDeployment's annotations decide, with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOptions {
    /// Gateway of the VirtualService.
    pub gateway: GatewayRef,
    /// Retries, when set.
    pub retries: Option<Retries>,
    /// VirtualService hosts.
    pub hosts: Vec<String>,
    /// Where `seldon.io/istio-host` was read ([`Source::Setting`] for the default `*`).
    pub hosts_from: Source,
    /// Authentication.
    pub auth: AuthOptions,
    /// A/B routing.
    pub routing: RoutingOptions,
}

/// The outcome of reading one SeldonDeployment.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The options, or every error found.
    pub options: Result<ModelOptions, Vec<ModelError>>,
    /// Warnings (typos, ignored annotations).
    pub warnings: Vec<ModelWarning>,
}

/// Reads a SeldonDeployment's annotations and checks the parts of its spec the
/// generated objects depend on.
pub fn parse(sdep: &SeldonDeployment, settings: &Settings) -> Parsed {
    let mut reader = Reader {
        sdep,
        object: sdep.model_id(),
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    check_spec(&mut reader);
    let gateway_value = reader.value(ISTIO_GATEWAY, Some(&settings.default_gateway));
    let gateway = gateway_value.and_then(|(v, s)| {
        reader.check(ISTIO_GATEWAY, v, s, |v| {
            parse_gateway(v, sdep.namespace_or_empty())
        })
    });
    let retries = read_retries(&mut reader);
    let (hosts, hosts_from) = match reader.value(ISTIO_HOST, None) {
        None => (vec!["*".to_string()], Source::Setting),
        Some((v, s)) => (
            reader
                .check(ISTIO_HOST, v, s, parse_hosts)
                .unwrap_or_default(),
            s,
        ),
    };
    let auth = read_auth(&mut reader, settings);
    // The ingress filter never sees in-mesh traffic: a JWT model there would be open.
    if let (Some(GatewayRef::Mesh), Some((value, from)), AuthOptions::Jwt(..)) =
        (&gateway, gateway_value, &auth)
    {
        reader.errors.push(ModelError::Annotation {
            object: reader.object.clone(),
            annotation: ISTIO_GATEWAY.into(),
            value: value.into(),
            from,
            expected: format!(
                "an ingress gateway: {AUTH} is jwt, and in-mesh traffic does not pass the gateway's filter, so the model would be open (set {AUTH}: none to serve it in-mesh without authentication)"
            ),
        });
    }
    let gateway = gateway.unwrap_or(GatewayRef::Mesh);
    let routing = read_routing(&mut reader);
    warn_unknown(&mut reader);
    let Reader {
        errors, warnings, ..
    } = reader;
    Parsed {
        options: if errors.is_empty() {
            Ok(ModelOptions {
                gateway,
                retries,
                hosts,
                hosts_from,
                auth,
                routing,
            })
        } else {
            Err(errors)
        },
        warnings,
    }
}

struct Reader<'a> {
    sdep: &'a SeldonDeployment,
    object: String,
    errors: Vec<ModelError>,
    warnings: Vec<ModelWarning>,
}

impl<'a> Reader<'a> {
    /// The annotation's value and where it came from: `spec.annotations` first (even
    /// empty), then `metadata.annotations`, then the setting.
    fn value(&self, key: &str, setting: Option<&'a String>) -> Option<(&'a str, Source)> {
        if let Some(v) = self.sdep.spec.annotations.as_ref().and_then(|a| a.get(key)) {
            return Some((v.as_str(), Source::Spec));
        }
        if let Some(v) = self
            .sdep
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
        {
            return Some((v.as_str(), Source::Metadata));
        }
        setting.map(|v| (v.as_str(), Source::Setting))
    }

    fn is_set(&self, key: &str) -> bool {
        self.value(key, None).is_some()
    }

    fn check<T>(
        &mut self,
        annotation: &str,
        value: &str,
        source: Source,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match parse(value) {
            Ok(parsed) => Some(parsed),
            Err(expected) => {
                self.errors.push(ModelError::Annotation {
                    object: self.object.clone(),
                    annotation: annotation.to_string(),
                    value: value.to_string(),
                    from: source,
                    expected,
                });
                None
            }
        }
    }

    fn spec_error(&mut self, field: String, value: impl Into<String>, expected: &str) {
        self.errors.push(ModelError::Spec {
            object: self.object.clone(),
            field,
            value: value.into(),
            expected: expected.to_string(),
        });
    }

    fn warn(&mut self, annotation: &str, message: String) {
        self.warnings.push(ModelWarning {
            object: self.object.clone(),
            annotation: annotation.to_string(),
            message,
        });
    }
}

fn check_spec(r: &mut Reader<'_>) {
    let sdep = r.sdep;
    if !is_dns_label(sdep.namespace_or_empty()) {
        r.spec_error(
            "metadata.namespace".into(),
            sdep.namespace_or_empty(),
            "a namespace name",
        );
    }
    if !is_dns_subdomain(sdep.name()) {
        r.spec_error(
            "metadata.name".into(),
            sdep.name(),
            "a Kubernetes object name",
        );
    }
    let predictors = &sdep.spec.predictors;
    if predictors.is_empty() {
        r.spec_error("spec.predictors".into(), "[]", "at least one predictor");
        return;
    }
    for (i, p) in predictors.iter().enumerate() {
        if !is_dns_label(&p.name) {
            r.spec_error(
                format!("spec.predictors[{i}].name"),
                &p.name,
                "a DNS label (lowercase letters, digits and '-', at most 63): it names an Istio subset",
            );
        } else if predictors[..i].iter().any(|q| q.name == p.name) {
            r.spec_error(
                format!("spec.predictors[{i}].name"),
                &p.name,
                "a name no other predictor has",
            );
        }
        if let Some(traffic) = p.traffic
            && !(0..=i64::from(i32::MAX)).contains(&traffic)
        {
            r.spec_error(
                format!("spec.predictors[{i}].traffic"),
                traffic.to_string(),
                "a weight of 0 or more",
            );
        }
        if let Some(svc) = p
            .annotations
            .as_ref()
            .and_then(|a| a.get(SVC_NAME_ANNOTATION))
            && !is_dns_label(svc)
        {
            r.spec_error(
                format!("spec.predictors[{i}].annotations[{SVC_NAME_ANNOTATION}]"),
                svc,
                "a Service name (DNS label)",
            );
        }
    }
    let serving: Vec<_> = sdep.serving_predictors().collect();
    if serving.is_empty() {
        r.spec_error(
            "spec.predictors".into(),
            "only shadows",
            "at least one predictor that is not a shadow",
        );
    } else if serving.len() > 1 && serving.iter().all(|p| p.traffic.unwrap_or(0) == 0) {
        r.spec_error(
            "spec.predictors[*].traffic".into(),
            "all 0",
            "traffic weights that are not all 0 when there are several predictors",
        );
    }
    let shadows = predictors.iter().filter(|p| p.is_shadow()).count();
    if shadows > 1 {
        r.spec_error(
            "spec.predictors[*].shadow".into(),
            format!("{shadows} shadows"),
            "at most one shadow predictor (a route mirrors to one destination)",
        );
    }
}

fn read_retries(r: &mut Reader<'_>) -> Option<Retries> {
    let timeout = match r.value(ISTIO_RETRIES_TIMEOUT, None) {
        None => 1,
        Some((v, s)) => r
            .check(ISTIO_RETRIES_TIMEOUT, v, s, |v| {
                v.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| "expected a whole number of seconds, 1 or more".to_string())
            })
            .unwrap_or(1),
    };
    match r.value(ISTIO_RETRIES, None) {
        // Seldon treats an empty value as unset.
        Some(("", _)) | None => {
            if r.is_set(ISTIO_RETRIES_TIMEOUT) {
                r.warn(
                    ISTIO_RETRIES_TIMEOUT,
                    format!("ignored: it applies only when {ISTIO_RETRIES} is set"),
                );
            }
            None
        }
        Some((v, s)) => r
            .check(ISTIO_RETRIES, v, s, |v| {
                v.trim().parse::<u32>().map_err(|_| {
                    "expected a number of retry attempts (an integer, 0 or more)".to_string()
                })
            })
            .map(|attempts| Retries {
                attempts,
                per_try_timeout_secs: timeout,
            }),
    }
}

fn read_auth(r: &mut Reader<'_>, settings: &Settings) -> AuthOptions {
    let kind = match r.value(AUTH, None) {
        None => settings.default_auth,
        Some((v, s)) => r
            .check(AUTH, v, s, |v| {
                v.parse::<AuthKind>()
                    .map_err(|_| "expected jwt or none".to_string())
            })
            .unwrap_or(AuthKind::Jwt),
    };
    if kind == AuthKind::None {
        for annotation in JWT_ANNOTATIONS {
            if r.is_set(annotation) {
                r.warn(annotation, format!("ignored: {AUTH} is none"));
            }
        }
        return AuthOptions::None;
    }

    let namespace = r.sdep.namespace_or_empty();
    let issuer = match r.value(JWT_ISSUER, settings.default_issuer.as_ref()) {
        None => {
            r.spec_error(
                JWT_ISSUER.into(),
                "",
                "an issuer: set the annotation or the controller's defaultIssuer",
            );
            String::new()
        }
        Some((v, s)) => r
            .check(JWT_ISSUER, v, s, |v| {
                tenancy::admit_issuer(settings, namespace, s, v)
            })
            .unwrap_or_default(),
    };
    let audiences = match r.value(JWT_AUDIENCES, None) {
        None => Vec::new(),
        Some((v, s)) => r
            .check(JWT_AUDIENCES, v, s, |v| comma_list(v, "audience"))
            .unwrap_or_default(),
    };
    let inline = r.value(JWT_JWKS, None);
    let uri = r.value(JWT_JWKS_URI, None);
    let keys = match (inline, uri) {
        (Some(_), Some((u, s))) => {
            r.check(JWT_JWKS_URI, u, s, |_| -> Result<(), String> {
                Err(format!("set either {JWT_JWKS} or {JWT_JWKS_URI}, not both"))
            });
            None
        }
        (Some((v, s)), None) => {
            let reduced = r.check(JWT_JWKS, v, s, |v| {
                tenancy::admit_inline_jwks(settings).and_then(|()| {
                    let limits = crate::generate::filter_config::key_limits(settings.key_limits());
                    parse_inline_jwks(v, &limits)
                })
            });
            reduced.map(|reduced| {
                for why in reduced.dropped {
                    r.warn(JWT_JWKS, format!("key dropped: {why}"));
                }
                KeySource::Inline(reduced.set)
            })
        }
        (None, Some((v, s))) => r
            .check(JWT_JWKS_URI, v, s, |v| {
                tenancy::admit_jwks_uri(settings, namespace, v)
            })
            .map(KeySource::Uri),
        (None, None) => match &settings.default_jwks_uri {
            Some(uri) => Some(KeySource::Uri(uri.clone())),
            None => {
                r.spec_error(
                    JWT_JWKS_URI.into(),
                    "",
                    "keys: set seldon.io/jwt-jwks-uri, seldon.io/jwt-jwks or the controller's defaultJwksUri",
                );
                None
            }
        },
    };
    let claims = match r.value(JWT_CLAIMS, None) {
        None => BTreeMap::new(),
        Some((v, s)) => r.check(JWT_CLAIMS, v, s, parse_claims).unwrap_or_default(),
    };
    let token_from = match r.value(JWT_FROM, None) {
        None => Vec::new(),
        Some((v, s)) => r
            .check(JWT_FROM, v, s, parse_token_from)
            .unwrap_or_default(),
    };
    let forward_claims = match r.value(JWT_FORWARD_CLAIMS, None) {
        None => BTreeMap::new(),
        Some((v, s)) => r
            .check(JWT_FORWARD_CLAIMS, v, s, parse_forward_claims)
            .unwrap_or_default(),
    };
    let forward_token = match r.value(JWT_FORWARD_TOKEN, None) {
        None => true,
        Some((v, s)) => r.check(JWT_FORWARD_TOKEN, v, s, parse_bool).unwrap_or(true),
    };
    let mode = match r.value(AUTH_MODE, None) {
        None => AuthMode::Enforce,
        Some((v, s)) => r
            .check(AUTH_MODE, v, s, |v| match v.trim() {
                "enforce" => Ok(AuthMode::Enforce),
                "audit" => Ok(AuthMode::Audit),
                _ => Err("expected enforce or audit".into()),
            })
            .unwrap_or_default(),
    };
    let policy = JwtPolicy {
        mode,
        issuer,
        audiences,
        key_set: String::new(),
        claims,
        token_from,
        forward_claims,
        forward_token,
    };
    AuthOptions::Jwt(
        Box::new(policy),
        keys.unwrap_or_else(|| KeySource::Inline(KeySet::default())),
    )
}

fn read_routing(r: &mut Reader<'_>) -> RoutingOptions {
    let header = match r.value(AB_HEADER, None) {
        None => modelgate_core::config::DEFAULT_AB_HEADER.to_string(),
        Some((v, s)) => r
            .check(AB_HEADER, v, s, |v| {
                let name = v.trim().to_ascii_lowercase();
                if !is_header_name(&name) {
                    Err("expected an HTTP header name".into())
                } else if let Some(why) = headers::reserved_for_routing(&name) {
                    Err(format!("expected a header of its own: {name} is {why}"))
                } else {
                    Ok(name)
                }
            })
            .unwrap_or_default(),
    };
    let override_allowed = match r.value(AB_OVERRIDE, None) {
        None => true,
        Some((v, s)) => r.check(AB_OVERRIDE, v, s, parse_bool).unwrap_or(true),
    };
    let sticky = match r.value(AB_STICKY, None) {
        None => None,
        Some((v, s)) => r.check(AB_STICKY, v, s, |v| {
            let v = v.trim();
            StickyKey::parse(v)
                .map(|_| v.to_string())
                .map_err(|e| e.to_string())
        }),
    };
    if r.sdep.serving_predictors().count() < 2 {
        for annotation in [AB_HEADER, AB_OVERRIDE, AB_STICKY] {
            if r.is_set(annotation) {
                r.warn(
                    annotation,
                    "ignored: the model has fewer than two predictors that take traffic".into(),
                );
            }
        }
    }
    RoutingOptions {
        header,
        override_allowed,
        sticky,
    }
}

/// Unknown `seldon.io/` annotations that look like this controller's: a prefix of ours,
/// or a name a couple of edits away from one.
fn warn_unknown(r: &mut Reader<'_>) {
    let keys: Vec<String> = [
        r.sdep.spec.annotations.as_ref(),
        r.sdep.metadata.annotations.as_ref(),
    ]
    .into_iter()
    .flatten()
    .flat_map(|a| a.keys().cloned())
    .collect();
    let mut seen = Vec::new();
    for key in keys {
        if KNOWN.contains(&key.as_str()) || seen.contains(&key) {
            continue;
        }
        seen.push(key.clone());
        let Some(rest) = key.strip_prefix("seldon.io/") else {
            continue;
        };
        let closest = KNOWN
            .iter()
            .map(|k| (edit_distance(&key, k), *k))
            .min()
            .filter(|(d, _)| *d <= 2);
        let ours = ["jwt", "ab-", "auth", "istio-"]
            .iter()
            .any(|p| rest.starts_with(p));
        match closest {
            Some((_, known)) => r.warn(&key, format!("unknown annotation: did you mean {known}?")),
            None if ours => r.warn(&key, "unknown annotation: not one modelgate reads".into()),
            None => {}
        }
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

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

fn parse_hosts(value: &str) -> Result<Vec<String>, String> {
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
fn comma_list(value: &str, what: &str) -> Result<Vec<String>, String> {
    let items: Vec<String> = value.split(',').map(|s| s.trim().to_string()).collect();
    if items.iter().any(String::is_empty) {
        return Err(format!(
            "expected a comma-separated list of {what}s without empty items"
        ));
    }
    Ok(items)
}

fn parse_bool(value: &str) -> Result<bool, String> {
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
fn parse_inline_jwks(
    value: &str,
    limits: &modelgate_core::keys::KeyLimits,
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

fn parse_claims(value: &str) -> Result<BTreeMap<String, Vec<String>>, String> {
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

fn parse_token_from(value: &str) -> Result<Vec<String>, String> {
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

fn parse_forward_claims(value: &str) -> Result<BTreeMap<String, String>, String> {
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

#[cfg(test)]
#[path = "annotations_tests.rs"]
mod tests;
