//! The user's interface: annotations on a SeldonDeployment, parsed into [`ModelOptions`].
//! [`ANNOTATIONS`] lists every one with its default and the models it applies to;
//! `spec.annotations` wins over `metadata.annotations`, even when its value is empty
//! (Seldon's rule), and the controller's settings fill in the rest. Every bad value is a
//! [`ModelError`] naming the object, the annotation, the value and what was expected;
//! every problem is reported, not only the first.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use modelgate_core::config::{AuthMode, DEFAULT_AB_HEADER, JwtPolicy, KeySet};

use crate::seldon::SeldonDeployment;
use crate::settings::{AuthKind, Settings};
use crate::tenancy;

mod problems;
mod values;

pub use problems::{ModelError, ModelWarning};

use values::{
    comma_list, parse_ab_header, parse_attempts, parse_auth_kind, parse_auth_mode, parse_bool,
    parse_claims, parse_forward_claims, parse_hosts, parse_inline_jwks, parse_sticky,
    parse_timeout, parse_token_from,
};
pub use values::{parse_gateway, parse_jwks_uri};

pub use crate::key_sets::InlineKeys;

/// One annotation the controller reads: a row of [`ANNOTATIONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Annotation {
    /// Its name, such as `seldon.io/auth`.
    pub name: &'static str,
    /// The models it applies to; on others it is ignored with a warning.
    pub applies_to: AppliesTo,
    /// What holds when it is not set.
    pub default: &'static str,
    /// What it sets.
    pub about: &'static str,
}

/// The models an annotation applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppliesTo {
    /// Every model.
    Any,
    /// Models with `seldon.io/istio-retries` set.
    Retries,
    /// Models with `seldon.io/auth: jwt`.
    Jwt,
    /// Models with at least two predictors that take traffic.
    AbRouting,
}

/// Declares each annotation's name constant (documented by its row) and [`ANNOTATIONS`],
/// so that adding an annotation is one row.
macro_rules! annotations {
    ($($constant:ident = $name:literal, $applies_to:ident, default $default:literal:
        $about:literal;)*) => {
        $(
            #[doc = concat!("`", $name, "`: ", $about, " Default: ", $default, ".")]
            pub const $constant: &str = $name;
        )*
        /// Every annotation this controller reads, in the order it reads them.
        pub const ANNOTATIONS: &[Annotation] = &[$(Annotation {
            name: $name,
            applies_to: AppliesTo::$applies_to,
            default: $default,
            about: $about,
        }),*];
    };
}

annotations! {
    ISTIO_GATEWAY = "seldon.io/istio-gateway", Any, default "the controller's defaultGateway":
        "the Gateway the model is exposed on, `[<namespace>/]<name>`, or `mesh` for in-mesh only (with routing gateway-api, a Gateway API Gateway in gatewayNamespace; no `mesh`).";
    ISTIO_RETRIES = "seldon.io/istio-retries", Any, default "Istio's default retries":
        "retry attempts on every route; `0` turns Istio's default retries off.";
    ISTIO_RETRIES_TIMEOUT = "seldon.io/istio-retries-timeout", Retries, default "`1`":
        "the per-try timeout of those retries, in whole seconds.";
    ISTIO_HOST = "seldon.io/istio-host", Any, default "`*`":
        "the VirtualService's hosts: comma-separated `*`, DNS names or `*.<DNS name>`.";
    AUTH = "seldon.io/auth", Any, default "the controller's defaultAuth":
        "`jwt` (requests need a valid token) or `none`.";
    JWT_ISSUER = "seldon.io/jwt-issuer", Jwt, default "the controller's defaultIssuer":
        "the required `iss`.";
    JWT_AUDIENCES = "seldon.io/jwt-audiences", Jwt, default "any audience":
        "comma-separated audiences, one of which `aud` must hold.";
    JWT_JWKS_URI = "seldon.io/jwt-jwks-uri", Jwt, default "the controller's defaultJwksUri":
        "the URL of the issuer's JWKS, which the controller fetches.";
    JWT_JWKS = "seldon.io/jwt-jwks", Jwt, default "none":
        "the keys inline, as a JWKS document, instead of a URI.";
    JWT_CLAIMS = "seldon.io/jwt-claims", Jwt, default "none required":
        "required claims: a JSON object of claim names to lists of accepted values.";
    JWT_FROM = "seldon.io/jwt-from", Jwt, default "`header:authorization`":
        "where the token is: comma-separated `header:<name>` or `query:<param>`.";
    JWT_FORWARD_CLAIMS = "seldon.io/jwt-forward-claims", Jwt, default "none":
        "claims copied into upstream request headers: comma-separated `claim:header`.";
    JWT_FORWARD_TOKEN = "seldon.io/jwt-forward-token", Jwt, default "`true`":
        "`false` removes the token before the request reaches the model.";
    AUTH_MODE = "seldon.io/auth-mode", Jwt, default "`enforce`":
        "`enforce` refuses bad requests; `audit` lets them through, logged and counted.";
    AB_HEADER = "seldon.io/ab-header", AbRouting, default "`x-seldon-predictor`":
        "the header in which clients may name a predictor, and which routes to it.";
    AB_OVERRIDE = "seldon.io/ab-override", AbRouting, default "`true`":
        "whether clients may choose the predictor with that header.";
    AB_STICKY = "seldon.io/ab-sticky", AbRouting, default "none (weighted random)":
        "what keeps a user on one predictor: `header:<name>`, `claim:<name>` or `cookie:<name>`.";
}

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
    /// Given inline (`seldon.io/jwt-jwks`), or recovered from a running configuration;
    /// shared by the models of one generation that carry the same JWKS.
    Inline(Arc<KeySet>),
}

/// How a model's requests are authorized, before its keys are looked up: what its
/// annotations ask for, or a denial. The filter configuration's
/// [`Policy`](modelgate_core::config::Policy) is built from it.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicySpec {
    /// No authentication (`seldon.io/auth: none`).
    None,
    /// `seldon.io/auth: jwt`: the policy (its `key_set` is filled in when the filter
    /// configuration is built) and where its keys come from. Shared, within one
    /// generation, by the models whose annotations say the same.
    Jwt(Arc<JwtPolicy>, KeySource),
    /// Every request refused, with the reason (for logs). Never read from annotations:
    /// the controller sets it for a model whose annotations or entry it could not use.
    Deny(String),
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
    /// Authentication: [`PolicySpec::None`] or [`PolicySpec::Jwt`].
    pub policy: PolicySpec,
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
    parse_with(sdep, settings, &mut InlineKeys::default())
}

/// [`parse`], reading each inline JWKS once per `inline_keys` (one generation, one set
/// of settings): the models that carry the same JWKS share one copy of its keys.
pub fn parse_with(
    sdep: &SeldonDeployment,
    settings: &Settings,
    inline_keys: &mut InlineKeys,
) -> Parsed {
    let mut r = Reader {
        sdep,
        object: sdep.model_id(),
        errors: sdep.spec_errors(),
        warnings: Vec::new(),
    };
    let gateway_value = r.value(ISTIO_GATEWAY, Some(&settings.default_gateway));
    let gateway = gateway_value.and_then(|(v, s)| {
        r.check(ISTIO_GATEWAY, v, s, |v| {
            parse_gateway(v, sdep.namespace_or_empty())
        })
    });
    let retries = read_retries(&mut r);
    let hosts = r.read(ISTIO_HOST, vec!["*".to_string()], parse_hosts);
    let hosts_from = r
        .value(ISTIO_HOST, None)
        .map_or(Source::Setting, |(_, s)| s);
    let policy = read_policy(&mut r, settings, inline_keys);
    // The ingress filter never sees in-mesh traffic: a JWT model there would be open.
    if let (Some(GatewayRef::Mesh), Some((value, from)), PolicySpec::Jwt(..)) =
        (&gateway, gateway_value, &policy)
    {
        let expected = format!(
            "an ingress gateway: {AUTH} is jwt, and in-mesh traffic does not pass the gateway's filter, so the model would be open (set {AUTH}: none to serve it in-mesh without authentication)"
        );
        r.error(ISTIO_GATEWAY, value, from, expected);
    }
    let routing = read_routing(&mut r);
    warn_unknown(&mut r);
    let options = ModelOptions {
        gateway: gateway.unwrap_or(GatewayRef::Mesh),
        retries,
        hosts,
        hosts_from,
        policy,
        routing,
    };
    Parsed {
        options: if r.errors.is_empty() {
            Ok(options)
        } else {
            Err(r.errors)
        },
        warnings: r.warnings,
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
        let spec = self.sdep.spec.annotations.as_ref();
        let metadata = self.sdep.metadata.annotations.as_ref();
        if let Some(v) = spec.and_then(|a| a.get(key)) {
            Some((v.as_str(), Source::Spec))
        } else if let Some(v) = metadata.and_then(|a| a.get(key)) {
            Some((v.as_str(), Source::Metadata))
        } else {
            setting.map(|v| (v.as_str(), Source::Setting))
        }
    }

    fn is_set(&self, key: &str) -> bool {
        self.value(key, None).is_some()
    }

    /// The annotation parsed; `default` when it is not set, or (with an error) when its
    /// value does not parse.
    fn read<T>(
        &mut self,
        key: &str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> T {
        match self.value(key, None) {
            None => default,
            Some((value, from)) => self.check(key, value, from, parse).unwrap_or(default),
        }
    }

    fn check<T>(
        &mut self,
        key: &str,
        value: &str,
        from: Source,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        parse(value)
            .map_err(|expected| self.error(key, value, from, expected))
            .ok()
    }

    fn error(&mut self, key: &str, value: &str, from: Source, expected: String) {
        self.errors.push(ModelError::Annotation {
            object: self.object.clone(),
            annotation: key.to_string(),
            value: value.to_string(),
            from,
            expected,
        });
    }

    /// A required value that neither the annotation nor a setting gives.
    fn missing(&mut self, key: &str, expected: &str) {
        self.errors.push(ModelError::Spec {
            object: self.object.clone(),
            field: key.to_string(),
            value: String::new(),
            expected: expected.to_string(),
        });
    }

    fn warn(&mut self, key: &str, message: String) {
        self.warnings.push(ModelWarning {
            object: self.object.clone(),
            annotation: key.to_string(),
            message,
        });
    }

    /// Warns about each annotation set although it applies to other models.
    fn warn_ignored(&mut self, applies_to: AppliesTo, why: &str) {
        for annotation in ANNOTATIONS.iter().filter(|a| a.applies_to == applies_to) {
            if self.is_set(annotation.name) {
                self.warn(annotation.name, format!("ignored: {why}"));
            }
        }
    }
}

fn read_retries(r: &mut Reader<'_>) -> Option<Retries> {
    let per_try_timeout_secs = r.read(ISTIO_RETRIES_TIMEOUT, 1, parse_timeout);
    // Seldon treats an empty value as unset.
    if matches!(r.value(ISTIO_RETRIES, None), None | Some(("", _))) {
        r.warn_ignored(
            AppliesTo::Retries,
            &format!("it applies only when {ISTIO_RETRIES} is set"),
        );
        return None;
    }
    let attempts = r.read(ISTIO_RETRIES, None, |v| parse_attempts(v).map(Some))?;
    Some(Retries {
        attempts,
        per_try_timeout_secs,
    })
}

fn read_policy(
    r: &mut Reader<'_>,
    settings: &Settings,
    inline_keys: &mut InlineKeys,
) -> PolicySpec {
    let kind = match r.value(AUTH, None) {
        None => settings.default_auth,
        // A bad value is read as jwt, so that the JWT annotations are checked too.
        Some(_) => r.read(AUTH, AuthKind::Jwt, parse_auth_kind),
    };
    if kind == AuthKind::None {
        r.warn_ignored(AppliesTo::Jwt, &format!("{AUTH} is none"));
        return PolicySpec::None;
    }
    let namespace = r.sdep.namespace_or_empty();
    let issuer = match r.value(JWT_ISSUER, settings.default_issuer.as_ref()) {
        None => {
            let expected = "an issuer: set the annotation or the controller's defaultIssuer";
            r.missing(JWT_ISSUER, expected);
            None
        }
        Some((v, s)) => r.check(JWT_ISSUER, v, s, |v| {
            tenancy::admit_issuer(settings, namespace, s, v)
        }),
    };
    let audiences = r.read(JWT_AUDIENCES, Vec::new(), |v| comma_list(v, "audience"));
    let keys = read_keys(r, settings, inline_keys);
    // Fields are read in the order written, which is the order of their errors.
    let policy = JwtPolicy {
        issuer: issuer.unwrap_or_default(),
        audiences,
        key_set: String::new(),
        claims: r.read(JWT_CLAIMS, BTreeMap::new(), parse_claims),
        token_from: r.read(JWT_FROM, Vec::new(), parse_token_from),
        forward_claims: r.read(JWT_FORWARD_CLAIMS, BTreeMap::new(), parse_forward_claims),
        forward_token: r.read(JWT_FORWARD_TOKEN, true, parse_bool),
        mode: r.read(AUTH_MODE, AuthMode::Enforce, parse_auth_mode),
    };
    PolicySpec::Jwt(
        Arc::new(policy),
        keys.unwrap_or_else(|| KeySource::Inline(Arc::default())),
    )
}

/// `seldon.io/jwt-jwks-uri` or `seldon.io/jwt-jwks` (one of them), else the setting.
fn read_keys(
    r: &mut Reader<'_>,
    settings: &Settings,
    inline_keys: &mut InlineKeys,
) -> Option<KeySource> {
    let namespace = r.sdep.namespace_or_empty();
    match (r.value(JWT_JWKS, None), r.value(JWT_JWKS_URI, None)) {
        (Some(_), Some((uri, from))) => {
            let expected = format!("set either {JWT_JWKS} or {JWT_JWKS_URI}, not both");
            r.error(JWT_JWKS_URI, uri, from, expected);
            None
        }
        (Some((value, from)), None) => {
            let limits = crate::generate::filter_config::key_limits(settings.key_limits());
            let read = tenancy::admit_inline_jwks(settings)
                .and_then(|()| inline_keys.read(value, |v| parse_inline_jwks(v, &limits)));
            let (set, dropped) = r.check(JWT_JWKS, value, from, |_| read)?;
            for why in dropped.iter() {
                r.warn(JWT_JWKS, format!("key dropped: {why}"));
            }
            Some(KeySource::Inline(set))
        }
        (None, Some(_)) => r.read(JWT_JWKS_URI, None, |v| {
            tenancy::admit_jwks_uri(settings, namespace, v).map(|uri| Some(KeySource::Uri(uri)))
        }),
        (None, None) => {
            let uri = settings.default_jwks_uri.clone().map(KeySource::Uri);
            if uri.is_none() {
                r.missing(
                    JWT_JWKS_URI,
                    &format!(
                        "keys: set {JWT_JWKS_URI}, {JWT_JWKS} or the controller's defaultJwksUri"
                    ),
                );
            }
            uri
        }
    }
}

fn read_routing(r: &mut Reader<'_>) -> RoutingOptions {
    let routing = RoutingOptions {
        header: r.read(AB_HEADER, DEFAULT_AB_HEADER.to_string(), parse_ab_header),
        override_allowed: r.read(AB_OVERRIDE, true, parse_bool),
        sticky: r.read(AB_STICKY, None, |v| parse_sticky(v).map(Some)),
    };
    if r.sdep.serving_predictors().count() < 2 {
        r.warn_ignored(
            AppliesTo::AbRouting,
            "the model has fewer than two predictors that take traffic",
        );
    }
    routing
}

/// Unknown `seldon.io/` annotations that look like this controller's: a name a couple of
/// edits away from one of [`ANNOTATIONS`], or one that starts like them (`jwt`, `ab`, ...).
fn warn_unknown(r: &mut Reader<'_>) {
    let sdep = r.sdep;
    let spec = sdep.spec.annotations.as_ref();
    let metadata = sdep.metadata.annotations.as_ref();
    let mut seen = Vec::new();
    for key in [spec, metadata]
        .into_iter()
        .flatten()
        .flat_map(|a| a.keys())
    {
        if ANNOTATIONS.iter().any(|a| a.name == key) || seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let Some(rest) = key.strip_prefix("seldon.io/") else {
            continue;
        };
        let closest = ANNOTATIONS
            .iter()
            .map(|a| (edit_distance(key, a.name), a.name))
            .min()
            .filter(|(d, _)| *d <= 2);
        let ours = ANNOTATIONS.iter().any(|a| {
            let name = a.name.strip_prefix("seldon.io/").unwrap_or(a.name);
            rest.starts_with(name.split('-').next().unwrap_or(name))
        });
        match closest {
            Some((_, known)) => r.warn(key, format!("unknown annotation: did you mean {known}?")),
            None if ours => r.warn(key, "unknown annotation: not one modelgate reads".into()),
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

#[cfg(test)]
#[path = "annotations_tests.rs"]
mod tests;
