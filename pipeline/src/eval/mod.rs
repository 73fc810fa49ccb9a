//! Evaluations of the detector on labelled data.

pub mod lstm_detector;
pub mod nab;
pub mod retraining;
pub mod rollouts;
