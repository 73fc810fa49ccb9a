//! Learned models as configured: training data from the simulated fleet or
//! the history, the choice of forecaster and failure model at start-up,
//! replay, retraining and its schedule. The trainers, bundles and versions
//! are `bellwether-models`, re-exported here.

pub(crate) mod command;
pub(crate) mod config;
pub(crate) mod data;
pub(crate) mod failure;
pub(crate) mod replay;
pub(crate) mod retrain;
pub(crate) mod schedule;

pub use bellwether_models::{bundle, failure_bundle, thresholds, train, versions};

use crate::config::{Config, ForecastKind};
use bellwether_operators::forecast::Forecaster;
use bellwether_operators::forecast::lstm::LstmForecaster;
use bellwether_operators::forecast::seasonal::{SeasonalRegression, SeasonalRegressionConfig};
use bellwether_schemas::EventTime;
use bundle::ModelBundle;
use std::collections::BTreeMap;

/// Windows a series must have been seen before the statistical forecaster
/// forecasts it (one hour of five-minute windows). Judgement waits far
/// longer, for `baseline.min_hours`; this only keeps the first wild fits
/// out of the baseline's residual spread.
const SEASONAL_MIN_WINDOWS: u32 = 12;

/// The forecaster in use and what came with it.
pub struct ForecasterChoice {
    /// The forecaster.
    pub forecaster: Box<dyn Forecaster>,
    /// Thresholds learned with the model, per metric (sigmas).
    pub learned_thresholds: BTreeMap<String, f64>,
    /// Why the configured model is not in use, when the statistical
    /// fallback replaced it.
    pub fallback: Option<String>,
}

/// The seasonal regression's settings, as configured.
pub fn seasonal_config(config: &Config) -> SeasonalRegressionConfig {
    let per_hour = EventTime::HOUR_MS as f64 / (config.window.slide_secs as f64 * 1000.0);
    SeasonalRegressionConfig {
        harmonics: config.forecast.harmonics,
        forgetting_half_life_windows: config.forecast.forgetting_half_life_hours * per_hour,
        min_windows: SEASONAL_MIN_WINDOWS,
    }
}

/// The statistical forecaster (seasonal regression), as configured.
pub fn statistical(config: &Config) -> Box<dyn Forecaster> {
    Box::new(SeasonalRegression::new(seasonal_config(config)))
}

/// The configured forecaster. With `forecast.kind = "lstm"`, loads the
/// bundle named by `forecast.model`; a missing, corrupt or incompatible
/// bundle falls back to the statistical forecaster with a warning (never
/// an error: rollouts keep their safety net).
pub fn choose_forecaster(config: &Config) -> ForecasterChoice {
    match config.forecast.kind {
        ForecastKind::SeasonalRegression => ForecasterChoice {
            forecaster: statistical(config),
            learned_thresholds: BTreeMap::new(),
            fallback: None,
        },
        ForecastKind::Lstm => match load_lstm(config) {
            Ok((forecaster, bundle)) => ForecasterChoice {
                forecaster: Box::new(forecaster),
                learned_thresholds: bundle.thresholds,
                fallback: None,
            },
            Err(reason) => {
                tracing::warn!(
                    model = %config.forecast.model,
                    "LSTM model not usable, falling back to the statistical forecaster (seasonal-regression): {reason}"
                );
                ForecasterChoice {
                    forecaster: statistical(config),
                    learned_thresholds: BTreeMap::new(),
                    fallback: Some(reason),
                }
            }
        },
    }
}

/// The failure model in use and what came with it.
pub struct FailureChoice {
    /// The model, or none (`failure.model = "none"`, or it could not be used).
    pub model: Option<bellwether_operators::failure::FailureModel>,
    /// Risk at or above which a patched VM is rolled back (None: not acted on).
    pub act_at: Option<f64>,
    /// Why the configured model is not in use, if it is not.
    pub unusable: Option<String>,
}

/// The configured failure model (`failure.model`). One that is missing,
/// corrupt or does not fit the scored metrics is left out with a warning:
/// anomaly detection goes on without predictions, never stops.
pub fn choose_failure_model(config: &Config) -> FailureChoice {
    let location = config.failure.model.as_str();
    if location == "none" {
        return FailureChoice {
            model: None,
            act_at: None,
            unusable: None,
        };
    }
    let loaded = failure_bundle::FailureBundle::load(location)
        .map_err(|e| e.to_string())
        .and_then(|bundle| {
            let model = bundle.model();
            model
                .check_fits(&config.thresholds.metrics)
                .map_err(|e| format!("{location}: {e}"))?;
            Ok((model, bundle.threshold))
        });
    match loaded {
        Ok((model, learned)) => FailureChoice {
            model: Some(model),
            act_at: config
                .failure
                .act
                .then(|| config.failure.risk_threshold.unwrap_or(learned)),
            unusable: None,
        },
        Err(reason) => {
            tracing::warn!(
                model = %location,
                "failure model not usable, failure risks will not be predicted: {reason}"
            );
            FailureChoice {
                model: None,
                act_at: None,
                unusable: Some(reason),
            }
        }
    }
}

fn load_lstm(config: &Config) -> Result<(LstmForecaster, ModelBundle), String> {
    let location = &config.forecast.model;
    let bundle = ModelBundle::load(location).map_err(|e| e.to_string())?;
    bundle
        .check_fits(
            &config.thresholds.metrics,
            config.window.slide_secs,
            location,
        )
        .map_err(|e| e.to_string())?;
    let model = bundle.model().map_err(|e| format!("{location}: {e}"))?;
    let forecaster =
        LstmForecaster::new(model, &config.thresholds.metrics).map_err(|e| e.to_string())?;
    Ok((forecaster, bundle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with_model(model: &str) -> Config {
        let mut config = crate::config::load(None).unwrap();
        config.forecast.model = model.to_string();
        config
    }

    #[test]
    fn the_builtin_model_is_the_default_and_brings_learned_thresholds() {
        let choice = choose_forecaster(&crate::config::load(None).unwrap());
        assert!(choice.fallback.is_none(), "{:?}", choice.fallback);
        assert!(
            choice.forecaster.name().starts_with("lstm-"),
            "{}",
            choice.forecaster.name()
        );
        assert_eq!(choice.learned_thresholds.len(), 7);
    }

    #[test]
    fn missing_corrupt_or_incompatible_bundles_fall_back_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let corrupt = dir.path().join("corrupt.json");
        std::fs::write(&corrupt, &bundle::BUILTIN[..bundle::BUILTIN.len() / 2]).unwrap();
        let mut other: serde_json::Value = serde_json::from_str(bundle::BUILTIN).unwrap();
        other["window_secs"] = 60.into();
        let incompatible = dir.path().join("other.json");
        std::fs::write(&incompatible, other.to_string()).unwrap();
        let empty_models = dir.path().join("models");
        std::fs::create_dir(&empty_models).unwrap();
        for (location, says) in [
            (dir.path().join("absent.json"), "absent.json"),
            (corrupt, "not a readable model bundle"),
            (incompatible, "trained on 60 s windows"),
            (empty_models, "promoted"),
        ] {
            let choice = choose_forecaster(&config_with_model(location.to_str().unwrap()));
            let reason = choice.fallback.expect("falls back");
            assert!(reason.contains(says), "{reason}");
            assert_eq!(choice.forecaster.name(), "seasonal-regression");
            assert!(choice.learned_thresholds.is_empty());
        }
    }

    #[test]
    fn the_builtin_failure_model_acts_at_its_own_threshold_unless_told_otherwise() {
        let mut config = crate::config::load(None).unwrap();
        let choice = choose_failure_model(&config);
        let model = choice.model.expect("the built-in failure model loads");
        assert_eq!(model.name, "failure-builtin-2");
        let learned = failure_bundle::FailureBundle::load("builtin")
            .unwrap()
            .threshold;
        assert_eq!(choice.act_at, Some(learned));
        config.failure.risk_threshold = Some(0.75);
        assert_eq!(choose_failure_model(&config).act_at, Some(0.75));
        config.failure.act = false;
        let quiet = choose_failure_model(&config);
        assert!(quiet.model.is_some() && quiet.act_at.is_none());
        config.failure.model = "none".into();
        assert!(choose_failure_model(&config).model.is_none());
    }

    #[test]
    fn an_unusable_failure_model_is_left_out_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::config::load(None).unwrap();
        let corrupt = dir.path().join("failure.json");
        std::fs::write(&corrupt, "{\"format\": ").unwrap();
        let mut other: failure_bundle::FailureBundle =
            serde_json::from_str(failure_bundle::BUILTIN).unwrap();
        other.features.pop();
        let unfitting = dir.path().join("other.json");
        other.save(&unfitting).unwrap();
        for (location, says) in [
            (dir.path().join("absent.json"), "absent.json"),
            (corrupt, "not a readable model bundle"),
            (unfitting, "features"),
        ] {
            config.failure.model = location.to_str().unwrap().into();
            let choice = choose_failure_model(&config);
            assert!(choice.model.is_none() && choice.act_at.is_none());
            let reason = choice.unusable.expect("says why");
            assert!(reason.contains(says), "{reason}");
        }
    }

    #[test]
    fn a_models_folder_loads_its_promoted_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let mut b: ModelBundle = serde_json::from_str(bundle::BUILTIN).unwrap();
        b.version = "7".into();
        b.save(&dir.path().join("lstm-7.json")).unwrap();
        std::fs::write(dir.path().join("promoted"), "lstm-7.json\n").unwrap();
        let choice = choose_forecaster(&config_with_model(dir.path().to_str().unwrap()));
        assert_eq!(choice.forecaster.name(), "lstm-7");
    }
}
