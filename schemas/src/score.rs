//! Per-VM scores: what the forecaster expected, what was seen, and the verdict.

use crate::{contract_metadata, metric::Direction, time::EventTime};
use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One metric's verdict for one VM and window; also the evidence carried by
/// a rollback command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricVerdict {
    /// Metric name.
    pub metric: String,
    /// Mean observed in the window.
    pub observed: f64,
    /// What the forecaster expected for the window.
    pub forecast: f64,
    /// Residual RMSE over the window's samples, in the metric's unit.
    pub residual_rmse: f64,
    /// The VM's pre-patch level of this metric (its baseline).
    pub baseline_mean: f64,
    /// Signed deviation (observed - forecast) in units of the baseline's
    /// residual spread ("sigmas").
    pub deviation: f64,
    /// The threshold the deviation was held to, in sigmas.
    pub threshold: f64,
    /// Which way is bad for this metric.
    pub direction: Direction,
    /// True when the deviation went past the threshold in the bad direction
    /// for as many consecutive windows as the config demands.
    pub anomalous: bool,
    /// The same window seen against the VM's unpatched peers (None: the VM
    /// had no control, or is not patched; judged on its own forecast alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<PeerEvidence>,
}

/// One metric of a patched VM against its control cohort in the same window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerEvidence {
    /// The cohort the control was drawn from, e.g. `tags.role=web, region=eu-west-1`
    /// or `whole fleet`.
    pub cohort: String,
    /// Unpatched VMs in the control.
    pub control_vms: u32,
    /// The control's concurrent move, in this VM's sigmas.
    pub peer_deviation: f64,
    /// This VM's deviation against its peers (difference in differences), in sigmas.
    pub vs_peers: f64,
    /// Mann-Whitney U test of the VM's windows since it was judged against
    /// its control's same windows: one-sided p-value, where it was tested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mann_whitney_p: Option<f64>,
    /// The Hodges-Lehmann shift of those windows over the control's, in sigmas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift_sigma: Option<f64>,
    /// Canary windows the test used.
    #[serde(default)]
    pub test_windows: u16,
}

/// One feature's part in a VM's predicted failure risk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskDriver {
    /// Feature name, e.g. `memory_percent trend`.
    pub feature: String,
    /// The feature's value (sigmas, sigmas per window, or scaled sigmas²).
    pub value: f64,
    /// Its contribution to the log-odds of failure.
    pub contribution: f64,
}

/// A VM's predicted failure risk in one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureRisk {
    /// Probability in [0, 1] that the VM fails within `horizon_minutes`.
    pub risk: f64,
    /// Minutes ahead the model predicts.
    pub horizon_minutes: u32,
    /// The model (e.g. `failure-builtin-1`).
    pub model: String,
    /// The features that raised the risk most, largest first.
    pub drivers: Vec<RiskDriver>,
}

/// The score of one VM for one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreRecord {
    /// VM id.
    pub vm_id: String,
    /// Window start (inclusive).
    pub window_start: EventTime,
    /// Window end (exclusive).
    pub window_end: EventTime,
    /// The rollout that patched this VM, if any.
    pub rollout_id: Option<String>,
    /// Name of the forecaster that produced the forecasts.
    pub forecaster: String,
    /// Root mean square of the per-metric deviations, in sigmas: one number
    /// for "how far is this VM from what was expected".
    pub residual_rmse: f64,
    /// Anomaly score in [0, 1]: the worst bad-direction deviation relative to
    /// its threshold, squashed (0.5 = at the threshold).
    pub anomaly_score: f64,
    /// True when any metric is anomalous.
    pub anomalous: bool,
    /// Per-metric verdicts.
    pub verdicts: Vec<MetricVerdict>,
    /// Predicted failure risk, when a failure model is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureRisk>,
}

/// Arrow schema of scores, one row per VM, window and metric (for history and SQL).
pub fn score_schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    Arc::new(Schema::new_with_metadata(
        vec![
            Field::new("vm_id", DataType::Utf8, false),
            Field::new("window_start", ts.clone(), false),
            Field::new("window_end", ts, false),
            Field::new("rollout_id", DataType::Utf8, true),
            Field::new("metric", DataType::Utf8, false),
            Field::new("observed", DataType::Float64, false),
            Field::new("forecast", DataType::Float64, false),
            Field::new("residual_rmse", DataType::Float64, false),
            Field::new("deviation", DataType::Float64, false),
            Field::new("threshold", DataType::Float64, false),
            Field::new("anomalous", DataType::Boolean, false),
        ],
        contract_metadata("score"),
    ))
}

/// Flattens score records into one batch following [`score_schema`].
pub fn score_batch(records: &[ScoreRecord]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let pairs: Vec<(&ScoreRecord, &MetricVerdict)> = records
        .iter()
        .flat_map(|r| r.verdicts.iter().map(move |v| (r, v)))
        .collect();
    let rows = || pairs.iter().copied();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows().map(|(r, _)| r.vm_id.as_str()),
        )),
        Arc::new(
            TimestampMillisecondArray::from_iter_values(rows().map(|(r, _)| r.window_start.0))
                .with_timezone("UTC"),
        ),
        Arc::new(
            TimestampMillisecondArray::from_iter_values(rows().map(|(r, _)| r.window_end.0))
                .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from_iter(
            rows().map(|(r, _)| r.rollout_id.as_deref()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows().map(|(_, v)| v.metric.as_str()),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows().map(|(_, v)| v.observed),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows().map(|(_, v)| v.forecast),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows().map(|(_, v)| v.residual_rmse),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows().map(|(_, v)| v.deviation),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows().map(|(_, v)| v.threshold),
        )),
        Arc::new(BooleanArray::from_iter(
            rows().map(|(_, v)| Some(v.anomalous)),
        )),
    ];
    RecordBatch::try_new(score_schema(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_flatten_to_one_row_per_metric() {
        let verdict = |metric: &str, anomalous| MetricVerdict {
            metric: metric.into(),
            observed: 2.0,
            forecast: 1.0,
            residual_rmse: 1.0,
            baseline_mean: 1.0,
            deviation: 5.0,
            threshold: 4.0,
            direction: Direction::Increase,
            anomalous,
            peers: None,
        };
        let record = ScoreRecord {
            vm_id: "vm-1".into(),
            window_start: EventTime(0),
            window_end: EventTime(300_000),
            rollout_id: Some("r1".into()),
            forecaster: "seasonal".into(),
            residual_rmse: 5.0,
            anomaly_score: 0.7,
            anomalous: true,
            verdicts: vec![verdict("a", true), verdict("b", false)],
            failure: None,
        };
        let batch = score_batch(&[record]).unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.num_columns(), score_schema().fields().len());
    }
}
