//! Errors raised when data does not follow a contract.

use thiserror::Error;

/// Data that does not follow one of bellwether's contracts.
#[derive(Debug, Error)]
pub enum SchemaError {
    /// A column the contract requires is absent.
    #[error("column `{column}` is missing from the {contract} batch")]
    MissingColumn {
        /// Contract name, e.g. `metric_sample`.
        contract: &'static str,
        /// The missing column.
        column: String,
    },
    /// A column exists but has the wrong Arrow type.
    #[error("column `{column}` of the {contract} batch has type {found}, expected {expected}")]
    WrongType {
        /// Contract name.
        contract: &'static str,
        /// The offending column.
        column: String,
        /// What the contract requires.
        expected: String,
        /// What the batch has.
        found: String,
    },
    /// An Arrow kernel failed while converting between contracts.
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}
