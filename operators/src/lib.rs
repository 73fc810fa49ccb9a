//! Bellwether's operators: pure compute on Arrow record batches.
//!
//! No I/O, no async, no clocks: every function here takes batches and event
//! times and returns results, so the same code serves the embedded demo, the
//! Kafka pipeline, the benchmarks and the tests.
//!
//! The scoring path, in the order a sample meets it:
//! [`series`] maps VM ids and metric names to dense series slots,
//! [`window`] aggregates samples into event-time windows closed by the
//! [`watermark`], [`baseline`] keeps each series' pre-patch level and
//! residual spread, a [`forecast::Forecaster`] predicts each window,
//! [`residual`] measures how far the window landed from the forecast, and
//! [`verdict`] decides per metric and per VM. [`scorer::CanaryScorer`] fuses
//! them into one operator.

#![warn(missing_docs)]

pub mod baseline;
pub mod column;
pub mod error;
pub mod failure;
pub mod forecast;
pub mod mann_whitney;
pub mod nab;
pub mod noise;
pub mod operator;
pub mod peer_test;
pub mod peers;
pub mod residual;
pub mod scorer;
pub mod series;
pub mod surprise;
pub mod verdict;
pub mod watermark;
pub mod wave;
pub mod window;

pub use error::OperatorError;
pub use operator::Operator;
pub use scorer::{CanaryScorer, ScoredWindow, ScorerConfig, ScorerStats};
