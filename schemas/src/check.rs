//! Checks of configured values, shared by every config section: each
//! names the key at fault and why.
//!
//! ```
//! use bellwether_schemas::check::{share, Problem};
//! assert!(share("fleet.critical_share", 0.08).is_ok());
//! let e = share("fleet.critical_share", 1.5).unwrap_err();
//! assert_eq!(e, Problem::new("fleet.critical_share", "1.5 is not a share between 0 and 1"));
//! ```

use thiserror::Error;

/// A configured value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("config key `{key}`: {reason}")]
pub struct Problem {
    /// Dotted key, e.g. `fleet.vms`.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Problem {
    /// `key` is wrong, for `reason`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Problem {
        Problem {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// A share: from 0 to 1.
pub fn share(key: &str, value: f64) -> Result<(), Problem> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(Problem::new(
            key,
            format!("{value} is not a share between 0 and 1"),
        ))
    }
}

/// A finite number above 0.
pub fn positive(key: &str, value: f64) -> Result<(), Problem> {
    if value > 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(Problem::new(
            key,
            format!("{value} must be a positive number"),
        ))
    }
}

/// A whole number from `min` to `max`.
pub fn at_most(key: &str, value: u64, min: u64, max: u64) -> Result<(), Problem> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(Problem::new(
            key,
            format!("{value} is not between {min} and {max}"),
        ))
    }
}

/// A finite number of hours from 0 to ten years.
pub fn hours(key: &str, value: f64) -> Result<(), Problem> {
    if (0.0..=87_600.0).contains(&value) {
        Ok(())
    } else {
        Err(Problem::new(
            key,
            format!("{value} is not a number of hours from 0 to 87600"),
        ))
    }
}

/// A list with at least one item.
pub fn non_empty<T>(key: &str, list: &[T]) -> Result<(), Problem> {
    if list.is_empty() {
        Err(Problem::new(key, "must not be empty"))
    } else {
        Ok(())
    }
}
