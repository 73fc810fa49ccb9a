//! The LSTM detector of `bellwether eval nab`: the fleet's LSTM design
//! (seasonal regression plus an LSTM correction of its residuals, run by
//! the fused kernel) on one univariate series, with a model trained on
//! that series' own probation period (NAB's first 15% of rows, which are
//! never scored) and nothing after it.
//!
//! NAB's series are other metrics than the fleet's and each has a scale of
//! its own, so the fleet's bundle does not fit them: every series gets its
//! own small model. As when a retrained model is promoted, the correction
//! is used only where it beats the seasonal regression alone on the
//! held-out end of the probation period; elsewhere the series is scored by
//! the statistical forecaster, and the report says how many were.

use super::nab::Series;
use crate::model::data::WindowMeans;
use crate::model::train::{TrainOptions, train};
use bellwether_operators::forecast::Forecaster;
use bellwether_operators::forecast::lstm::LstmForecaster;
use bellwether_operators::forecast::seasonal::{SeasonalRegression, SeasonalRegressionConfig};
use bellwether_operators::nab::probation_rows;

/// The one metric a NAB series carries.
const METRIC: &str = "value";

/// Training settings for one NAB series: a smaller model than the
/// fleet's (a few hundred windows to learn from), shorter sequences; with
/// `interval`, an interval head too ([`TrainOptions::interval`]).
pub fn nab_train_options(base: SeasonalRegressionConfig, interval: bool) -> TrainOptions {
    TrainOptions {
        interval,
        hidden: 16,
        sequence: 48,
        burn_in: 8,
        batch: 16,
        epochs: 60,
        patience: 8,
        base,
        ..TrainOptions::default()
    }
}

/// What scores one series.
pub struct SeriesDetector {
    /// The forecaster, fresh (it learns the series from its first row).
    pub forecaster: Box<dyn Forecaster>,
    /// Whether the LSTM correction is in use (false: statistical alone).
    pub lstm: bool,
    /// Held-out RMSE of the LSTM and of the seasonal regression alone, in
    /// units of the series' residual spread; `None` when training failed.
    pub validation: Option<(f64, f64)>,
    /// Why the statistical forecaster scores this series, if it does.
    pub reason: Option<String>,
}

/// Trains a model on `series`' probation period and returns the detector
/// that scores it: the LSTM forecaster when its correction beats the
/// seasonal regression on the held-out end of the probation period, else
/// the seasonal regression, with the reason.
pub fn detector_for(series: &Series, options: &TrainOptions) -> SeriesDetector {
    let statistical = |reason: String, validation| SeriesDetector {
        forecaster: Box::new(SeasonalRegression::new(options.base)),
        lstm: false,
        validation,
        reason: Some(reason),
    };
    let probation = probation_rows(series.values.len());
    let step = series.step_ms();
    let metrics = [METRIC.to_string()];
    let mut means = WindowMeans::new(&metrics, step);
    for (&t, &v) in series.times_ms.iter().zip(&series.values).take(probation) {
        means.add(&series.key, t, METRIC, v);
    }
    let data = match means.finish(format!("{} (probation rows)", series.key)) {
        Ok(data) => data,
        Err(e) => return statistical(e.to_string(), None),
    };
    let trained = match train(&data, options, "nab", |_, _| {}, |_| {}) {
        Ok(trained) => trained,
        Err(e) => return statistical(format!("training failed: {e}"), None),
    };
    let validation = Some((trained.validation_rmse, trained.seasonal_validation_rmse));
    if trained.validation_rmse.is_nan()
        || trained.validation_rmse >= trained.seasonal_validation_rmse
    {
        return statistical(
            format!(
                "the LSTM correction did not beat the seasonal regression on held-out probation rows (RMSE {:.3} vs {:.3})",
                trained.validation_rmse, trained.seasonal_validation_rmse
            ),
            validation,
        );
    }
    match LstmForecaster::new(trained.model, &metrics) {
        Ok(forecaster) => SeriesDetector {
            forecaster: Box::new(forecaster),
            lstm: true,
            validation,
            reason: None,
        },
        Err(e) => statistical(e.to_string(), validation),
    }
}
