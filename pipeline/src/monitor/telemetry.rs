//! Prometheus series of the pipeline's health and of each rollout.
//!
//! Names follow Prometheus conventions: a `bellwether_` prefix, base units
//! in the name (`_seconds`, `_ratio`), `_total` on counters. Latencies are
//! measured into hdrhistograms and exported as Prometheus histograms with
//! fixed buckets at scrape time.

use hdrhistogram::Histogram as Hdr;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{Bucket, Histogram, Metric, MetricFamily, MetricType};
use prometheus::{
    Encoder, GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::Mutex;
use std::time::Duration;

/// Every series bellwether exports.
pub struct Telemetry {
    registry: Registry,
    records_in: IntCounterVec,
    decode_errors: IntCounterVec,
    dead_letters: IntCounterVec,
    consumer_lag: IntGaugeVec,
    window_latency: HdrCollector,
    model_time: HdrCollector,
    model_info: IntGaugeVec,
    model_fallback: IntGauge,
    /// Share of the fleet running the rollout's patch, 0..1.
    pub patched_ratio: GaugeVec,
    /// Health of a canary group in a rollout: 0 green, 1 yellow, 2 red.
    pub group_health: IntGaugeVec,
    /// Highest anomaly score among the rollout's patched VMs, last window.
    pub anomaly_score: GaugeVec,
    /// Highest predicted failure risk of the rollout's patched VMs.
    pub failure_risk: GaugeVec,
    /// VMs rolled back in the rollout.
    pub rolled_back: IntGaugeVec,
    /// VMs running the patch, per wave.
    pub wave_patched: IntGaugeVec,
    /// 1 for the state a rollout is in, 0 for the others it was in.
    pub rollout_state: IntGaugeVec,
    /// Commands the actuator could not carry out, by action.
    pub actuations_failed: IntCounterVec,
    /// Patched VMs that sent no metrics for the last window.
    pub patched_vms_silent: IntGauge,
    /// Rows this process wrote to each history table.
    pub history_rows: IntGaugeVec,
    /// History flushes that failed (their rows are kept and retried).
    pub history_write_errors: IntCounterVec,
    /// Remote-write requests answered, by status code.
    pub remote_write_requests: IntCounterVec,
    /// Remote-written samples, by what became of them.
    pub remote_write_samples: IntCounterVec,
    /// Remote-written series no rule maps to a VM metric, by reason.
    pub remote_write_series_dropped: IntCounterVec,
}

/// Bucket bounds (seconds) of the latency histograms.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

impl Telemetry {
    /// A fresh registry holding every series.
    pub fn new() -> Telemetry {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique");
            c
        };
        let records_in = counter(
            "bellwether_records_in_total",
            "Metric messages read, per topic and partition.",
            &["topic", "partition"],
        );
        let decode_errors = counter(
            "bellwether_decode_errors_total",
            "Messages that failed to decode, per source topic.",
            &["topic"],
        );
        let dead_letters = counter(
            "bellwether_dead_letters_total",
            "Messages sent to the dead-letter topic, per source topic.",
            &["topic"],
        );
        let int_gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(g.clone())).expect("unique");
            g
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = GaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(g.clone())).expect("unique");
            g
        };
        let consumer_lag = int_gauge(
            "bellwether_consumer_lag_records",
            "Messages behind the end of the partition, as librdkafka last reported.",
            &["topic", "partition"],
        );
        let model_info = int_gauge(
            "bellwether_model_info",
            "The forecaster in use (value 1), with its name and version.",
            &["forecaster", "version"],
        );
        let model_fallback = IntGauge::new(
            "bellwether_model_fallback",
            "1 when the configured LSTM model could not be loaded and the statistical forecaster scores instead.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(model_fallback.clone()))
            .expect("unique");
        let window_latency = HdrCollector::new(
            "bellwether_window_latency_seconds",
            "From the metrics batch that closed a window to its decisions being delivered.",
        );
        let model_time = HdrCollector::new(
            "bellwether_model_inference_seconds",
            "Forecaster time (forecast and update) per window, all VMs at once.",
        );
        registry
            .register(Box::new(window_latency.clone_handle()))
            .expect("unique");
        registry
            .register(Box::new(model_time.clone_handle()))
            .expect("unique");
        Telemetry {
            patched_ratio: gauge(
                "bellwether_rollout_patched_ratio",
                "Share of the fleet running the rollout's patch (0 to 1).",
                &["rollout"],
            ),
            group_health: int_gauge(
                "bellwether_canary_group_health",
                "Health of a canary group in a rollout: 0 green, 1 yellow, 2 red.",
                &["rollout", "group"],
            ),
            anomaly_score: gauge(
                "bellwether_rollout_anomaly_score",
                "Highest anomaly score (0 to 1) among the rollout's patched VMs in the last window.",
                &["rollout"],
            ),
            failure_risk: gauge(
                "bellwether_rollout_failure_risk",
                "Highest predicted failure risk (0 to 1) among the rollout's patched VMs, last window.",
                &["rollout"],
            ),
            rolled_back: int_gauge(
                "bellwether_rollout_vms_rolled_back",
                "VMs rolled back in the rollout.",
                &["rollout"],
            ),
            wave_patched: int_gauge(
                "bellwether_rollout_wave_vms_patched",
                "VMs running the patch, per wave of the rollout.",
                &["rollout", "wave"],
            ),
            rollout_state: int_gauge(
                "bellwether_rollout_state",
                "1 for the state the rollout is in (label state: waiting_for_approval, canary, baking, advancing, halted, rolling_back, completed, rolled_back, ...), 0 for states it left.",
                &["rollout", "state"],
            ),
            actuations_failed: {
                let c = counter(
                    "bellwether_actuations_failed_total",
                    "Patch and rollback commands the actuator could not carry out (after its retries), by action.",
                    &["action"],
                );
                // Both series exist from the start, so `increase` sees the first failure.
                for action in ["patch", "rollback"] {
                    c.with_label_values(&[action]);
                }
                c
            },
            patched_vms_silent: {
                let g = IntGauge::new(
                    "bellwether_patched_vms_silent",
                    "Patched VMs that sent no metrics for the last closed window (they cannot be judged).",
                )
                .expect("valid metric");
                registry.register(Box::new(g.clone())).expect("unique");
                g
            },
            history_rows: int_gauge(
                "bellwether_history_rows_written",
                "Rows this process wrote to each Parquet history table.",
                &["table"],
            ),
            history_write_errors: counter(
                "bellwether_history_write_errors_total",
                "History flushes that failed; their rows stay buffered and are retried.",
                &[],
            ),
            remote_write_requests: counter(
                "bellwether_remote_write_requests_total",
                "Prometheus remote-write requests answered, by status code.",
                &["code"],
            ),
            remote_write_samples: counter(
                "bellwether_remote_write_samples_total",
                "Remote-written samples: produced onto the metrics topic, or skipped as stale markers or not finite.",
                &["outcome"],
            ),
            remote_write_series_dropped: counter(
                "bellwether_remote_write_series_dropped_total",
                "Remote-written series dropped: no remote_write.metrics rule takes them (unmapped) or they lack the VM label (no_vm_label).",
                &["reason"],
            ),
            registry,
            records_in,
            decode_errors,
            dead_letters,
            consumer_lag,
            window_latency,
            model_time,
            model_info,
            model_fallback,
        }
    }

    /// Counts `n` messages read from a topic's partition.
    pub fn records_in(&self, topic: &str, partition: &str, n: u64) {
        self.records_in
            .with_label_values(&[topic, partition])
            .inc_by(n);
    }

    /// Counts a message that failed to decode and was dead-lettered.
    pub fn dead_lettered(&self, source_topic: &str) {
        self.decode_errors.with_label_values(&[source_topic]).inc();
        self.dead_letters.with_label_values(&[source_topic]).inc();
    }

    /// Sets a partition's consumer lag.
    pub fn consumer_lag(&self, topic: &str, partition: &str, lag: i64) {
        self.consumer_lag
            .with_label_values(&[topic, partition])
            .set(lag);
    }

    /// Records one window's latency.
    pub fn window_latency(&self, d: Duration) {
        self.window_latency.record(d);
    }

    /// Records the forecaster's time for one window.
    pub fn model_time(&self, d: Duration) {
        self.model_time.record(d);
    }

    /// Names the forecaster in use.
    pub fn model_in_use(&self, forecaster: &str, version: &str) {
        self.model_info.reset();
        self.model_info
            .with_label_values(&[forecaster, version])
            .set(1);
    }

    /// Records whether the statistical fallback replaced the configured model.
    pub fn model_fallback(&self, active: bool) {
        self.model_fallback.set(i64::from(active));
    }

    /// Everything, in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

/// An hdrhistogram of durations (microseconds) exported as a Prometheus
/// histogram.
struct HdrCollector {
    desc: Desc,
    hdr: std::sync::Arc<Mutex<Hdr<u64>>>,
}

impl HdrCollector {
    fn new(name: &str, help: &str) -> HdrCollector {
        HdrCollector {
            desc: Desc::new(name.into(), help.into(), Vec::new(), Default::default())
                .expect("valid metric"),
            // 1 µs to 1 hour, 3 significant digits.
            hdr: std::sync::Arc::new(Mutex::new(
                Hdr::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
            )),
        }
    }

    fn clone_handle(&self) -> HdrCollector {
        HdrCollector {
            desc: self.desc.clone(),
            hdr: self.hdr.clone(),
        }
    }

    fn record(&self, d: Duration) {
        let micros = (d.as_micros() as u64).clamp(1, 3_600_000_000);
        let mut hdr = self.hdr.lock().unwrap_or_else(|p| p.into_inner());
        let _ = hdr.record(micros);
    }
}

impl Collector for HdrCollector {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let hdr = self.hdr.lock().unwrap_or_else(|p| p.into_inner());
        let buckets = LATENCY_BUCKETS
            .iter()
            .map(|&bound| {
                let mut b = Bucket::default();
                b.set_upper_bound(bound);
                let micros = (bound * 1e6) as u64;
                b.set_cumulative_count(hdr.count_between(0, micros));
                b
            })
            .collect();
        let mut h = Histogram::default();
        h.set_bucket(buckets);
        h.set_sample_count(hdr.len());
        h.set_sample_sum(hdr.mean() * hdr.len() as f64 / 1e6);
        let mut m = Metric::default();
        m.set_histogram(h);
        let mut family = MetricFamily::default();
        family.set_name(self.desc.fq_name.clone());
        family.set_help(self.desc.help.clone());
        family.set_field_type(MetricType::HISTOGRAM);
        family.set_metric(vec![m]);
        vec![family]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_come_out_as_a_prometheus_histogram() {
        let t = Telemetry::new();
        for ms in [1, 2, 3, 40] {
            t.window_latency(Duration::from_millis(ms));
        }
        let text = t.render();
        assert!(text.contains("# TYPE bellwether_window_latency_seconds histogram"));
        assert!(
            text.contains("bellwether_window_latency_seconds_bucket{le=\"0.005\"} 3"),
            "{text}"
        );
        assert!(text.contains("bellwether_window_latency_seconds_bucket{le=\"+Inf\"} 4"));
        assert!(text.contains("bellwether_window_latency_seconds_count 4"));
    }

    #[test]
    fn counters_carry_their_labels() {
        let t = Telemetry::new();
        t.records_in("metrics", "0", 5);
        t.dead_lettered("metrics");
        let text = t.render();
        assert!(text.contains("bellwether_records_in_total{partition=\"0\",topic=\"metrics\"} 5"));
        assert!(text.contains("bellwether_dead_letters_total{topic=\"metrics\"} 1"));
    }
}
