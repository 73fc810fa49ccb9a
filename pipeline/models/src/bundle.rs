//! The model bundle: one JSON file holding a trained LSTM forecaster's
//! weights and everything needed to use and audit it (features,
//! normalisation, training data range, validation RMSE, learned
//! thresholds, version).

use super::train::{TrainOptions, Trained};
use bellwether_operators::forecast::lstm::{LstmModel, LstmWeights, Normaliser, TIME_FEATURES};
use bellwether_operators::forecast::seasonal::SeasonalRegressionConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The bundle format this build reads and writes.
pub const FORMAT: &str = "bellwether-lstm-bundle/1";

/// The model shipped in the binary: `bellwether train --from simulator
/// --version builtin-1 --out config/models/lstm-default.json` (see docs/src/concepts/forecasting.md).
pub const BUILTIN: &str = include_str!("../../../config/models/lstm-default.json");

/// A bundle could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Not a bundle, or a damaged one.
    #[error("{path}: not a readable model bundle: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A sound bundle that does not fit this configuration.
    #[error("{path}: incompatible model bundle: {reason}")]
    Incompatible {
        /// The file.
        path: String,
        /// What does not fit.
        reason: String,
    },
}

impl BundleError {
    /// The error of an I/O operation on `path`, for `map_err`.
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
        move |source| BundleError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// How a bundle was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingRecord {
    /// Where the data came from.
    pub source: String,
    /// VMs trained on.
    pub vms: usize,
    /// First training window start (RFC 3339).
    pub from: String,
    /// Last training window start.
    pub to: String,
    /// First held-out window start.
    pub validation_from: String,
    /// Epochs run.
    pub epochs_run: usize,
    /// Epoch kept (lowest validation RMSE).
    pub best_epoch: usize,
    /// Validation RMSE, in units of each VM's own spread.
    pub validation_rmse: f64,
    /// Validation RMSE per metric.
    pub validation_rmse_per_metric: BTreeMap<String, f64>,
    /// Hidden units, sequence length, batch, learning rate, seed.
    pub settings: BTreeMap<String, f64>,
}

/// The weights, in the fused layout of `bellwether_operators::forecast::lstm`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightsRecord {
    /// `(inputs + hidden) × 4·hidden`, gates i, f, g, o.
    pub gates: Vec<f32>,
    /// `4·hidden`.
    pub gate_bias: Vec<f32>,
    /// `hidden × metrics`.
    pub head: Vec<f32>,
    /// `metrics`.
    pub head_bias: Vec<f32>,
}

/// A model bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelBundle {
    /// [`FORMAT`].
    pub format: String,
    /// The model's version.
    pub version: String,
    /// When it was trained (RFC 3339).
    pub created_at: String,
    /// Input metrics, in order (followed by the time-of-day features).
    pub metrics: Vec<String>,
    /// Extra inputs: `sin` and `cos` of the next window's time of day.
    pub time_features: Vec<String>,
    /// Window width the model was trained on, seconds.
    pub window_secs: u64,
    /// Hidden units.
    pub hidden: usize,
    /// Windows a VM is observed before it is forecast.
    pub warmup_windows: u32,
    /// Normalisation: half-life (windows), relative floor, clip.
    pub normalisation: BTreeMap<String, f64>,
    /// The seasonal regression whose residuals the model forecasts:
    /// harmonics, forgetting half-life (windows), minimum windows.
    pub seasonal: BTreeMap<String, f64>,
    /// How it was trained.
    pub training: TrainingRecord,
    /// Learned threshold per metric, sigmas of the VM's residual spread.
    pub thresholds: BTreeMap<String, f64>,
    /// The weights.
    pub weights: WeightsRecord,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

impl ModelBundle {
    /// The bundle of a training run.
    pub fn new(
        trained: &Trained,
        options: &TrainOptions,
        version: &str,
        source: &str,
        vms: usize,
        window_secs: u64,
    ) -> ModelBundle {
        let w = &trained.model.weights;
        let n = &trained.model.normaliser;
        let metrics = &trained.model.metrics;
        ModelBundle {
            format: FORMAT.to_string(),
            version: version.to_string(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            metrics: metrics.clone(),
            time_features: vec!["time_of_day_sin".into(), "time_of_day_cos".into()],
            window_secs,
            hidden: w.hidden(),
            warmup_windows: trained.model.warmup_windows,
            normalisation: BTreeMap::from([
                ("half_life_windows".to_string(), n.half_life_windows),
                ("relative_floor".to_string(), n.relative_floor),
                ("clip".to_string(), n.clip),
            ]),
            seasonal: BTreeMap::from([
                ("harmonics".to_string(), trained.model.base.harmonics as f64),
                (
                    "forgetting_half_life_windows".to_string(),
                    trained.model.base.forgetting_half_life_windows,
                ),
                (
                    "min_windows".to_string(),
                    trained.model.base.min_windows as f64,
                ),
            ]),
            training: TrainingRecord {
                source: source.to_string(),
                vms,
                from: rfc3339(trained.trained_from_ms),
                to: rfc3339(trained.trained_to_ms),
                validation_from: rfc3339(trained.validation_from_ms),
                epochs_run: trained.epochs.len(),
                best_epoch: trained.best_epoch,
                validation_rmse: trained.validation_rmse,
                validation_rmse_per_metric: metrics
                    .iter()
                    .cloned()
                    .zip(trained.validation_rmse_per_metric.iter().copied())
                    .collect(),
                settings: BTreeMap::from([
                    ("hidden".to_string(), options.hidden as f64),
                    ("sequence".to_string(), options.sequence as f64),
                    ("batch".to_string(), options.batch as f64),
                    ("learning_rate".to_string(), options.learning_rate),
                    ("validation_share".to_string(), options.validation_share),
                    ("seed".to_string(), options.seed as f64),
                ]),
            },
            thresholds: metrics
                .iter()
                .cloned()
                .zip(trained.thresholds.iter().copied())
                .collect(),
            weights: WeightsRecord {
                gates: w.gates().to_vec(),
                gate_bias: w.gate_bias().to_vec(),
                head: w.head().to_vec(),
                head_bias: w.head_bias().to_vec(),
            },
        }
    }

    /// Reads a bundle: `builtin` for the one shipped in the binary, else a
    /// path to a bundle file, or to a folder whose `promoted` file names
    /// the bundle in use.
    pub fn load(location: &str) -> Result<ModelBundle, BundleError> {
        if location == "builtin" {
            return ModelBundle::parse(BUILTIN, "builtin model");
        }
        let (path, text) = read_located(location, super::versions::LSTM_POINTER)?;
        ModelBundle::parse(&text, &path)
    }

    fn parse(text: &str, path: &str) -> Result<ModelBundle, BundleError> {
        let bundle: ModelBundle = serde_json::from_str(text).map_err(|e| BundleError::Corrupt {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        if bundle.format != FORMAT {
            return Err(BundleError::Incompatible {
                path: path.to_string(),
                reason: format!("format `{}`, this build reads `{FORMAT}`", bundle.format),
            });
        }
        bundle.model().map_err(|reason| BundleError::Corrupt {
            path: path.to_string(),
            reason,
        })?;
        Ok(bundle)
    }

    /// Writes the bundle (temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<(), BundleError> {
        write_atomically(
            path,
            &serde_json::to_string(self).expect("a bundle serialises"),
        )
    }

    /// The forecaster's model.
    pub fn model(&self) -> Result<LstmModel, String> {
        let get = |key: &str| {
            self.normalisation
                .get(key)
                .copied()
                .ok_or_else(|| format!("normalisation.{key} is missing"))
        };
        let normaliser = Normaliser {
            half_life_windows: get("half_life_windows")?,
            relative_floor: get("relative_floor")?,
            clip: get("clip")?,
        };
        let seasonal = |key: &str| {
            self.seasonal
                .get(key)
                .copied()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| format!("seasonal.{key} is missing or negative"))
        };
        let base = SeasonalRegressionConfig {
            harmonics: seasonal("harmonics")? as usize,
            forgetting_half_life_windows: seasonal("forgetting_half_life_windows")?,
            min_windows: seasonal("min_windows")? as u32,
        };
        let w = &self.weights;
        let weights = LstmWeights::new(
            self.metrics.len() + TIME_FEATURES,
            self.hidden,
            self.metrics.len(),
            w.gates.clone(),
            w.gate_bias.clone(),
            w.head.clone(),
            w.head_bias.clone(),
        )
        .map_err(|e| e.to_string())?;
        Ok(LstmModel {
            weights,
            metrics: self.metrics.clone(),
            normaliser,
            base,
            warmup_windows: self.warmup_windows,
            name: format!("lstm-{}", self.version),
        })
    }

    /// Checks the bundle fits scoring `metrics` over windows of `window_secs`.
    pub fn check_fits(
        &self,
        metrics: &[String],
        window_secs: u64,
        path: &str,
    ) -> Result<(), BundleError> {
        let reason = if self.metrics != metrics {
            format!(
                "trained on metrics {:?}, configured to score {:?}",
                self.metrics, metrics
            )
        } else if self.window_secs != window_secs {
            format!(
                "trained on {} s windows, configured windows slide {} s",
                self.window_secs, window_secs
            )
        } else {
            return Ok(());
        };
        Err(BundleError::Incompatible {
            path: path.to_string(),
            reason,
        })
    }
}

/// Reads the bundle at `location`: a bundle file, or a models folder whose
/// `pointer` file names the bundle. Returns the file read and its text.
pub fn read_located(location: &str, pointer: &str) -> Result<(String, String), BundleError> {
    let mut path = Path::new(location).to_path_buf();
    if path.is_dir() {
        let pointer = path.join(pointer);
        let name = read_at_most(&pointer, 4096).map_err(BundleError::io(&pointer))?;
        path = path.join(name.trim());
    }
    let text = read_at_most(&path, MAX_BUNDLE_BYTES).map_err(BundleError::io(&path))?;
    Ok((path.display().to_string(), text))
}

/// The largest bundle file read (the shipped LSTM's is 66 KB): a path to
/// `/dev/zero` or a log file by mistake is refused, not read to the end.
pub const MAX_BUNDLE_BYTES: u64 = 64 << 20;

/// The text of `path` if it holds at most `max` bytes.
fn read_at_most(path: &Path, max: u64) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {max} bytes, the most a model file may hold"),
        ));
    }
    Ok(text)
}

/// Writes `text` and a newline to `path` (its folder created): a
/// temporary file, then a rename, so a reader never sees half a bundle or
/// half a pointer.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), BundleError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(BundleError::io(path))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, format!("{text}\n")).map_err(BundleError::io(path))?;
    std::fs::rename(&tmp, path).map_err(BundleError::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_path_to_an_endless_file_is_refused_not_read_to_the_end() {
        for location in ["/dev/zero", "/dev/urandom"] {
            let e = ModelBundle::load(location).unwrap_err().to_string();
            assert!(e.contains(location), "{e}");
            assert!(e.contains("larger than") || e.contains("UTF-8"), "{e}");
        }
        let e = crate::failure_bundle::FailureBundle::load("/dev/zero")
            .unwrap_err()
            .to_string();
        assert!(e.contains("larger than"), "{e}");
    }
}
