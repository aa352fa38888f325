//! SeldonDeployments for tests, built step by step as controller-rs builds its documents:
//! `SeldonDeployment::fixture("models", "iris").predictor("main", 80).predictor("canary", 20)`.
//! Compiled for this crate's tests and, through the `fixtures` feature, its integration tests.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::annotations::{ISTIO_GATEWAY, JWT_ISSUER, JWT_JWKS, JWT_JWKS_URI};
use crate::seldon::{PredictorSpec, SeldonDeployment, SeldonDeploymentSpec};

/// 2026-01-01T00:00:00Z: fixtures are created this many seconds after 1970.
const EPOCH_SECONDS: i64 = 1_767_225_600;

impl SeldonDeployment {
    /// `namespace/name` with uid `uid-<namespace>-<name>`, no predictors, no annotations
    /// and no creation time.
    pub fn fixture(namespace: &str, name: &str) -> Self {
        let mut s = Self::new(name, SeldonDeploymentSpec::default());
        s.metadata.namespace = Some(namespace.into());
        s.metadata.uid = Some(format!("uid-{namespace}-{name}"));
        s
    }

    /// Another uid, which the owner references of its objects carry.
    pub fn with_uid(mut self, uid: &str) -> Self {
        self.metadata.uid = Some(uid.into());
        self
    }

    /// Created `seconds` after 2026-01-01T00:00:00Z: the earlier of two claims wins.
    pub fn created(mut self, seconds: i64) -> Self {
        let at = Timestamp::from_second(EPOCH_SECONDS + seconds).expect("a time after 2026");
        self.metadata.creation_timestamp = Some(Time(at));
        self
    }

    /// One more predictor, taking `traffic`.
    pub fn predictor(mut self, name: &str, traffic: i64) -> Self {
        self.spec.predictors.push(PredictorSpec {
            name: name.into(),
            traffic: Some(traffic),
            ..Default::default()
        });
        self
    }

    /// A `spec.annotations` entry, which wins over `metadata.annotations`.
    pub fn annotate(mut self, key: &str, value: &str) -> Self {
        let annotations = self.spec.annotations.get_or_insert_default();
        annotations.insert(key.into(), value.into());
        self
    }

    /// A `metadata.annotations` entry.
    pub fn annotate_metadata(mut self, key: &str, value: &str) -> Self {
        let annotations = self.metadata.annotations.get_or_insert_default();
        annotations.insert(key.into(), value.into());
        self
    }

    /// Exposed on `gateway` (`[<namespace>/]<name>` or `mesh`).
    pub fn gateway(self, gateway: &str) -> Self {
        self.annotate(ISTIO_GATEWAY, gateway)
    }

    /// Tokens of `issuer`, checked with the keys the controller fetches from `jwks_uri`.
    pub fn jwt(self, issuer: &str, jwks_uri: &str) -> Self {
        self.annotate(JWT_ISSUER, issuer)
            .annotate(JWT_JWKS_URI, jwks_uri)
    }

    /// Tokens of `issuer`, checked with the keys of `jwks`, a JWKS document given inline.
    pub fn jwt_inline(self, issuer: &str, jwks: &str) -> Self {
        self.annotate(JWT_ISSUER, issuer).annotate(JWT_JWKS, jwks)
    }
}
