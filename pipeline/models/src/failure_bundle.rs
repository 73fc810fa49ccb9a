//! The failure model's bundle: one JSON file with the weights, the
//! features they read, the horizon, the risk threshold chosen with it and
//! how well it predicted on held-out rollouts.

use super::bundle::BundleError;
use super::failure::{FailureQuality, TrainedFailure};
use bellwether_operators::failure::FailureModel;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The bundle format this build reads and writes.
pub const FORMAT: &str = "bellwether-failure-bundle/1";

/// The failure model shipped in the binary: `bellwether train-failure
/// --version builtin-2 --out config/models/failure-default.json` (see docs/src/concepts/failure-and-retraining.md).
pub const BUILTIN: &str = include_str!("../../../config/models/failure-default.json");

/// A trained failure model and what it came with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureBundle {
    /// [`FORMAT`].
    pub format: String,
    /// Version, e.g. `builtin-1`.
    pub version: String,
    /// Feature names in input order.
    pub features: Vec<String>,
    /// Per feature: mean subtracted before weighting.
    pub mean: Vec<f32>,
    /// Per feature: spread divided by.
    pub scale: Vec<f32>,
    /// Per feature: weight.
    pub weights: Vec<f32>,
    /// Intercept.
    pub bias: f32,
    /// Minutes ahead the model predicts a failure within.
    pub horizon_minutes: u32,
    /// Risk threshold chosen on held-out rollouts (best F1).
    pub threshold: f64,
    /// Quality on the held-out rollouts at that threshold.
    pub validation: FailureQuality,
    /// What it was trained on.
    pub training: String,
    /// When it was trained (RFC 3339).
    pub trained_at: String,
}

impl FailureBundle {
    /// The bundle of a trained model.
    pub fn new(trained: &TrainedFailure, version: &str, training: String) -> FailureBundle {
        let m = &trained.model;
        FailureBundle {
            format: FORMAT.into(),
            version: version.into(),
            features: m.features.clone(),
            mean: m.mean.clone(),
            scale: m.scale.clone(),
            weights: m.weights.clone(),
            bias: m.bias,
            horizon_minutes: m.horizon_minutes,
            threshold: trained.threshold,
            validation: trained.validation,
            training,
            trained_at: chrono::Utc::now().to_rfc3339(),
        }
    }

    /// The model, named `failure-<version>`.
    pub fn model(&self) -> FailureModel {
        FailureModel {
            features: self.features.clone(),
            mean: self.mean.clone(),
            scale: self.scale.clone(),
            weights: self.weights.clone(),
            bias: self.bias,
            horizon_minutes: self.horizon_minutes,
            name: format!("failure-{}", self.version),
        }
    }

    /// Reads `location`: `builtin` (shipped in the binary), a bundle file,
    /// or a models folder whose `promoted-failure` file names the bundle.
    pub fn load(location: &str) -> Result<FailureBundle, BundleError> {
        let (path, text) = if location == "builtin" {
            ("builtin failure model".to_string(), BUILTIN.to_string())
        } else {
            super::bundle::read_located(location, super::versions::FAILURE_POINTER)?
        };
        let bundle: FailureBundle =
            serde_json::from_str(&text).map_err(|e| BundleError::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if bundle.format != FORMAT {
            return Err(BundleError::Incompatible {
                path,
                reason: format!("format `{}`, this build reads `{FORMAT}`", bundle.format),
            });
        }
        Ok(bundle)
    }

    /// Writes the bundle to `path` (its folder is created).
    pub fn save(&self, path: &Path) -> Result<(), BundleError> {
        super::bundle::write_atomically(
            path,
            &serde_json::to_string_pretty(self).expect("a bundle serialises"),
        )
    }
}
