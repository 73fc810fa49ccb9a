//! Training the LSTM forecaster with burn, on its pure-Rust CPU backend
//! (the `training` feature; without it [`train`] refuses).
//!
//! Each VM's window means are normalised causally (the rule the forecaster
//! applies at run time), cut into overlapping sequences, and the model
//! learns to predict every next window from the windows before it. The
//! last share of the time range is held out: after every epoch the trained
//! weights run through bellwether's own fused kernel over each whole
//! series, exactly as in production (state carried from the first window),
//! and the validation RMSE of the held-out windows decides early stopping.

use bellwether_operators::forecast::lstm::LstmModel;
use bellwether_operators::forecast::seasonal::SeasonalRegressionConfig;

#[cfg(feature = "training")]
mod fit;
#[cfg(feature = "training")]
pub use fit::{Trainer, train};

/// Settings of a training run.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Hidden units.
    pub hidden: usize,
    /// Windows per training sequence.
    pub sequence: usize,
    /// Leading windows of each sequence not scored (the state settles).
    pub burn_in: usize,
    /// Sequences per batch.
    pub batch: usize,
    /// Most epochs.
    pub epochs: usize,
    /// Epochs without a better validation RMSE before stopping.
    pub patience: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Share of each series' windows held out for validation (the latest).
    pub validation_share: f64,
    /// Windows a VM is observed before it is forecast.
    pub warmup_windows: u32,
    /// Seed of the initial weights and the batch order.
    pub seed: u64,
    /// The seasonal regression whose residuals the LSTM learns.
    pub base: SeasonalRegressionConfig,
    /// Windows in a row the scorer needs above a threshold (the learned
    /// thresholds are chosen for this rule).
    pub consecutive_windows: usize,
    /// Train an interval head too: a second output per metric, the log of
    /// the forecast's own spread, learned with a Gaussian likelihood loss,
    /// so the forecast is an interval rather than a point
    /// ([`LstmModel::has_interval`]).
    pub interval: bool,
}

impl Default for TrainOptions {
    fn default() -> TrainOptions {
        TrainOptions {
            hidden: 32,
            sequence: 96,
            burn_in: 12,
            batch: 64,
            epochs: 40,
            patience: 5,
            learning_rate: 3e-3,
            validation_share: 0.2,
            warmup_windows: 12,
            seed: 1,
            base: SeasonalRegressionConfig {
                harmonics: 3,
                forgetting_half_life_windows: 864.0,
                min_windows: 12,
            },
            consecutive_windows: 2,
            interval: false,
        }
    }
}

/// What one epoch reached.
#[derive(Debug, Clone, Copy)]
pub struct EpochReport {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss (normalised MSE; with an interval head, the
    /// Gaussian negative log-likelihood less its constant).
    pub train_loss: f64,
    /// Validation RMSE (normalised units).
    pub validation_rmse: f64,
}

/// A trained model with what the bundle records about it.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The model (best epoch).
    pub model: LstmModel,
    /// Every epoch run.
    pub epochs: Vec<EpochReport>,
    /// The best epoch (1-based).
    pub best_epoch: usize,
    /// Validation RMSE of the best epoch, normalised units.
    pub validation_rmse: f64,
    /// Validation RMSE per metric.
    pub validation_rmse_per_metric: Vec<f64>,
    /// Validation RMSE of the seasonal regression alone (no correction),
    /// same windows and units: what the LSTM must beat to be worth using.
    pub seasonal_validation_rmse: f64,
    /// Learned threshold per metric, in sigmas of the residual spread.
    pub thresholds: Vec<f64>,
    /// First and last window start used for training, ms.
    pub trained_from_ms: i64,
    /// Last window start used for training, ms.
    pub trained_to_ms: i64,
    /// First window held out, ms.
    pub validation_from_ms: i64,
}

/// Training failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Too little data for the settings.
    #[error("too little data: {0}")]
    TooLittle(String),
    /// Settings that cannot work.
    #[error("invalid training setting: {0}")]
    Setting(String),
    /// This build cannot train (built without the `training` feature).
    #[error(
        "this bellwether was built without training (the `training` feature); build it with the default features: cargo build --release"
    )]
    NotBuilt,
}

/// Refuses: this build has no trainer (the `training` feature).
#[cfg(not(feature = "training"))]
pub fn train(
    _series: &crate::series::TrainingSeries,
    _options: &TrainOptions,
    _version: &str,
    _on_batch: impl FnMut(usize, usize),
    _on_epoch: impl FnMut(&EpochReport),
) -> Result<Trained, TrainError> {
    Err(TrainError::NotBuilt)
}
