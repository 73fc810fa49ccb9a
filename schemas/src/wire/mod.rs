//! Wire formats of the metrics topics, decoded straight into Arrow.
//!
//! A message is decoded in two steps: its rows are first staged in a
//! reusable [`StagedRows`] buffer (no allocation per row once warm), and only
//! when the whole message decoded are they appended to a [`SampleBuilder`].
//! A malformed message therefore leaves nothing half-appended behind: the
//! caller sends it to the dead-letter topic and goes on.
//!
//! Two formats, chosen per topic:
//! - [`json`]: bellwether's own JSON, one wide snapshot per VM and instant
//!   (`{"vm_id":..,"time":..,"metrics":{..}}`) or one metric per message
//!   (`{"vm_id":..,"time":..,"metric":..,"value":..}`), or an array of either.
//! - [`line_protocol`]: InfluxDB line protocol as Telegraf's Kafka output
//!   sends it (`measurement,tag=v field=1.5 1700000000000000000`).

pub mod builder;
pub mod json;
pub mod line_protocol;
pub mod remote_write;
pub mod staged;

pub use builder::SampleBuilder;
pub use staged::StagedRows;

use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;

/// The format of a metrics topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InputFormat {
    /// Bellwether's JSON (wide snapshots or one metric per message).
    Json,
    /// InfluxDB line protocol (Telegraf's `data_format = "influx"`).
    LineProtocol,
}

impl fmt::Display for InputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputFormat::Json => "json",
            InputFormat::LineProtocol => "line_protocol",
        })
    }
}

/// A message that could not be decoded: what was wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{format}: {reason}")]
pub struct DecodeError {
    /// The format it was decoded as.
    pub format: InputFormat,
    /// What was wrong, with the line/column or field where it went wrong.
    pub reason: String,
}

impl DecodeError {
    pub(crate) fn new(format: InputFormat, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            format,
            reason: reason.into(),
        }
    }
}
