//! Why a request was refused: one name per reason, used in response bodies, logs and the
//! `reason` label of the metrics.

/// Why a request to a model is refused (or, in audit mode, would be).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyReason {
    /// No token where the policy looks for one.
    MissingToken,
    /// The token does not parse as a JWS (or its payload is too large a JSON document, see
    /// [`crate::auth::strict_json`]), lacks `exp`, has an `iss` or `sub` that is not a string, or
    /// has a `crit` header.
    MalformedToken,
    /// More than one candidate token (several places, or a repeated header).
    MultipleTokens,
    /// The token is over [`crate::auth::verifier::MAX_TOKEN_BYTES`].
    TokenTooLarge,
    /// The token's `alg` is `none`, HMAC, or not one its key was published for.
    UnsupportedAlgorithm,
    /// No key has the token's `kid`, or the token has none and too many keys could verify
    /// its algorithm to try them in turn ([`crate::auth::verifier::MAX_KEYS_TRIED`]).
    UnknownKey,
    /// No key verifies the signature.
    BadSignature,
    /// `exp` is past (beyond the leeway).
    Expired,
    /// `nbf` is ahead (beyond the leeway).
    NotYetValid,
    /// `iss` is not the policy's issuer.
    WrongIssuer,
    /// `aud` holds none of the policy's audiences.
    WrongAudience,
    /// A valid token without the required claims.
    InsufficientScope,
    /// The policy has no usable key: nothing can verify its tokens (fail closed).
    NoKeys,
    /// The model's policy is unusable (fail closed).
    PolicyUnusable,
    /// The routing header names no predictor of the model.
    UnknownPredictor,
    /// The routing header is repeated.
    AmbiguousPredictor,
    /// The path and the gRPC headers name different models, or a header is repeated.
    AmbiguousModel,
}

impl DenyReason {
    /// Every reason, for documentation and tests.
    pub const ALL: [DenyReason; 17] = [
        DenyReason::MissingToken,
        DenyReason::MalformedToken,
        DenyReason::MultipleTokens,
        DenyReason::TokenTooLarge,
        DenyReason::UnsupportedAlgorithm,
        DenyReason::UnknownKey,
        DenyReason::BadSignature,
        DenyReason::Expired,
        DenyReason::NotYetValid,
        DenyReason::WrongIssuer,
        DenyReason::WrongAudience,
        DenyReason::InsufficientScope,
        DenyReason::NoKeys,
        DenyReason::PolicyUnusable,
        DenyReason::UnknownPredictor,
        DenyReason::AmbiguousPredictor,
        DenyReason::AmbiguousModel,
    ];

    /// The reason's name in bodies, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::MissingToken => "missing_token",
            DenyReason::MalformedToken => "malformed_token",
            DenyReason::MultipleTokens => "multiple_tokens",
            DenyReason::TokenTooLarge => "token_too_large",
            DenyReason::UnsupportedAlgorithm => "unsupported_algorithm",
            DenyReason::UnknownKey => "unknown_key",
            DenyReason::BadSignature => "bad_signature",
            DenyReason::Expired => "token_expired",
            DenyReason::NotYetValid => "token_not_yet_valid",
            DenyReason::WrongIssuer => "wrong_issuer",
            DenyReason::WrongAudience => "wrong_audience",
            DenyReason::InsufficientScope => "insufficient_scope",
            DenyReason::NoKeys => "no_keys",
            DenyReason::PolicyUnusable => "policy_unusable",
            DenyReason::UnknownPredictor => "unknown_predictor",
            DenyReason::AmbiguousPredictor => "ambiguous_predictor",
            DenyReason::AmbiguousModel => "ambiguous_model",
        }
    }

    /// The HTTP status of the answer.
    pub fn status(self) -> u16 {
        match self {
            DenyReason::InsufficientScope | DenyReason::PolicyUnusable => 403,
            DenyReason::UnknownPredictor
            | DenyReason::AmbiguousPredictor
            | DenyReason::AmbiguousModel => 400,
            _ => 401,
        }
    }

    /// The RFC 6750 error code for `WWW-Authenticate`, if the answer carries one.
    pub fn bearer_error(self) -> Option<&'static str> {
        match self.status() {
            401 if self == DenyReason::MissingToken => None,
            401 => Some("invalid_token"),
            403 => Some("insufficient_scope"),
            _ => None,
        }
    }

    /// Whether this is an authentication/authorization answer, which audit mode lets
    /// through; request errors (400) are refused in every mode.
    pub fn is_auth(self) -> bool {
        matches!(self.status(), 401 | 403)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_metric_friendly_labels() {
        let mut seen = std::collections::HashSet::new();
        for reason in DenyReason::ALL {
            let name = reason.as_str();
            assert!(seen.insert(name), "{name} twice");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
        }
    }

    #[test]
    fn statuses_and_bearer_errors_follow_the_spec() {
        assert_eq!(DenyReason::MissingToken.status(), 401);
        assert_eq!(DenyReason::MissingToken.bearer_error(), None);
        assert_eq!(DenyReason::Expired.bearer_error(), Some("invalid_token"));
        assert_eq!(DenyReason::NoKeys.status(), 401);
        assert_eq!(DenyReason::InsufficientScope.status(), 403);
        assert_eq!(
            DenyReason::InsufficientScope.bearer_error(),
            Some("insufficient_scope")
        );
        assert_eq!(DenyReason::PolicyUnusable.status(), 403);
        assert_eq!(DenyReason::UnknownPredictor.status(), 400);
        assert!(!DenyReason::AmbiguousModel.is_auth());
    }
}
