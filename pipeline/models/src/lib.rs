//! Bellwether's learned models: training the LSTM forecaster and the
//! failure model with burn, the bundles they are shipped and versioned in,
//! and the thresholds learned with them.
//!
//! Inference does not run here: the trained weights run in
//! `bellwether-operators`' fused kernel (the forecaster) and logistic
//! model (failure risk). Training data arrive as [`series::TrainingSeries`]
//! (window means per VM) or [`failure::FailureExamples`]; the `bellwether`
//! package makes them from the simulated fleet or a Parquet history.

#![warn(missing_docs)]

pub mod bundle;
pub mod failure;
pub mod failure_bundle;
pub mod series;
pub mod thresholds;
pub mod train;
pub mod versions;
