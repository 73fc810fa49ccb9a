//! Evaluations of the detector on labelled data.

pub mod nab;
