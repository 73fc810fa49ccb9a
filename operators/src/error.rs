//! Errors raised by operators.

use thiserror::Error;

/// An operator could not process its input.
#[derive(Debug, Error)]
pub enum OperatorError {
    /// The batch does not follow the metric sample contract.
    #[error(transparent)]
    Schema(#[from] bellwether_schemas::SchemaError),
    /// An Arrow kernel failed.
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A configuration value cannot work.
    #[error("invalid operator setting `{setting}`: {reason}")]
    InvalidSetting {
        /// The setting.
        setting: &'static str,
        /// Why it cannot work.
        reason: String,
    },
}
