//! What is wrong with a SeldonDeployment, as `check`, Events and logs show it: an error
//! (no configuration can be generated for it) or a warning, each naming the object, the
//! annotation or field, the value and what was expected.

use super::Source;

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
