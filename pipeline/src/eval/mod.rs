//! Evaluations of the detector on labelled data.

pub(crate) mod lstm_detector;
pub(crate) mod nab;
pub(crate) mod retraining;
pub mod rollouts;
pub(crate) mod sensitivity;
pub(crate) mod sensitivity_plot;
