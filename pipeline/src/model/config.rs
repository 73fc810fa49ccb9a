//! Config of the models: `[failure]` (predictive failure analysis) and `[retrain]` (scheduled retraining).

use crate::config::ConfigError;
use crate::config::validate::invalid;
use serde::{Deserialize, Serialize};

/// Scheduled retraining (`bellwether run`): the models are retrained from
/// `history.dir`, each candidate run in shadow on the latest episodes and
/// promoted in `models` only if it beats the model in use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrainConfig {
    /// Hours between retrainings from history.dir in `bellwether run`; 0: only
    /// on demand (`bellwether retrain`). Each candidate runs in shadow on the
    /// latest episodes (scored, logged, never acting) and is promoted only with
    /// at least the current model's recall and fewer false rollbacks (or the
    /// same false rollbacks and a better recall).
    #[serde(default)]
    pub every_hours: f64,
    /// The models folder: every version is kept there with its figures and its
    /// shadow log; use it as forecast.model and failure.model to load what is
    /// promoted.
    #[serde(default = "models_dir")]
    pub models: std::path::PathBuf,
    /// Retrain the LSTM forecaster.
    #[serde(default = "crate::config::yes")]
    pub forecaster: bool,
    /// Retrain the failure model.
    #[serde(default = "crate::config::yes")]
    pub failure: bool,
    /// Share of the latest patched-VM episodes held out for the shadow run.
    #[serde(default = "held_out_share")]
    pub held_out_share: f64,
    /// Epochs of the LSTM's training at most (early stopping usually ends
    /// sooner).
    #[serde(default = "lstm_epochs")]
    pub lstm_epochs: usize,
}

impl Default for RetrainConfig {
    fn default() -> RetrainConfig {
        RetrainConfig {
            every_hours: 0.0,
            models: models_dir(),
            forecaster: true,
            failure: true,
            held_out_share: held_out_share(),
            lstm_epochs: lstm_epochs(),
        }
    }
}

fn models_dir() -> std::path::PathBuf {
    "bellwether-models".into()
}

fn held_out_share() -> f64 {
    0.3
}

fn lstm_epochs() -> usize {
    40
}

/// Predictive failure analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailureConfig {
    /// "builtin" (shipped in the binary, trained on simulated rollouts; see
    /// `bellwether train-failure`), a bundle file, or "none".
    #[serde(default = "crate::config::builtin_model")]
    pub model: String,
    /// Risk at or above which a patched VM is rolled back before it fails
    /// (trigger "predicted_failure"). Unset: the threshold chosen with the
    /// model.
    #[serde(default)]
    pub risk_threshold: Option<f64>,
    /// Roll back on predicted failures (false: risks are scored, shown and
    /// recorded, never acted on).
    #[serde(default = "crate::config::yes")]
    pub act: bool,
    /// A patched VM that goes (nearly) silent for this many windows in a row
    /// after its settle time (less than half the samples of its last window)
    /// has lost its health check: reported as a `failed` outcome (source
    /// "health_check"), a label for retraining. 0: not reported.
    #[serde(default = "crate::config::one")]
    pub health_check_windows: u16,
}

impl Default for FailureConfig {
    fn default() -> FailureConfig {
        FailureConfig {
            model: crate::config::builtin_model(),
            risk_threshold: None,
            act: true,
            health_check_windows: 1,
        }
    }
}

impl FailureConfig {
    /// Checks the threshold and the model named: the error names the key.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if let Some(t) = self.risk_threshold
            && !(t > 0.0 && t < 1.0)
        {
            return Err(invalid(
                "failure.risk_threshold",
                format!("{t} is not a risk strictly between 0 and 1"),
            ));
        }
        if self.model.trim().is_empty() {
            return Err(invalid(
                "failure.model",
                "name `builtin`, a bundle file, or `none`",
            ));
        }
        Ok(())
    }
}

impl RetrainConfig {
    /// Checks the schedule and the training settings: the error names the key.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if !(self.every_hours >= 0.0 && self.every_hours.is_finite()) {
            return Err(invalid(
                "retrain.every_hours",
                format!(
                    "{} is not a number of hours (0: on demand only)",
                    self.every_hours
                ),
            ));
        }
        if !(self.held_out_share > 0.0 && self.held_out_share < 1.0) {
            return Err(invalid(
                "retrain.held_out_share",
                format!(
                    "{} is not a share strictly between 0 and 1",
                    self.held_out_share
                ),
            ));
        }
        if self.lstm_epochs == 0 {
            return Err(invalid(
                "retrain.lstm_epochs",
                "training needs at least one epoch",
            ));
        }
        Ok(())
    }
}
