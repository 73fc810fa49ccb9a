//! Remote-written series to bellwether's VM snapshots: which label names
//! the VM, which series are which metric, what is dropped and why.

use super::config::RemoteWriteConfig;
use bellwether_schemas::EventTime;
use bellwether_schemas::metric::VmSnapshot;
use bellwether_schemas::wire::remote_write::{TimeSeries, WriteRequest, is_stale_marker};
use regex::Regex;
use std::collections::{BTreeMap, HashMap};

/// Why a series was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// No `remote_write.metrics` rule names it.
    Unmapped,
    /// It lacks the VM label (or the label is empty).
    NoVm,
}

impl DropReason {
    /// The `reason` label of `bellwether_remote_write_series_dropped_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Unmapped => "unmapped",
            DropReason::NoVm => "no_vm_label",
        }
    }
}

/// What became of one request's series and samples.
#[derive(Debug, Default, PartialEq)]
pub struct Mapped {
    /// Each VM's snapshots, oldest first.
    pub vms: BTreeMap<String, Vec<VmSnapshot>>,
    /// Samples kept.
    pub samples: u64,
    /// Stale markers (a series' end), skipped.
    pub stale: u64,
    /// NaN and infinite values, skipped.
    pub not_finite: u64,
    /// Series dropped, by reason.
    pub dropped: BTreeMap<DropReason, u64>,
}

struct Rule {
    metric: String,
    labels: Vec<(String, String)>,
}

/// The compiled mapping of `[remote_write]`.
pub struct SeriesMap {
    vm_label: String,
    strip_port: bool,
    rewrite: Option<(Regex, String)>,
    by_name: HashMap<String, Vec<Rule>>,
}

impl SeriesMap {
    /// Compiles `config` (validated: its regular expression parses).
    pub fn new(config: &RemoteWriteConfig) -> SeriesMap {
        let mut by_name: HashMap<String, Vec<Rule>> = HashMap::new();
        for (metric, rule) in &config.metrics {
            by_name
                .entry(rule.name().to_string())
                .or_default()
                .push(Rule {
                    metric: metric.clone(),
                    labels: rule
                        .labels()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                });
        }
        let rewrite = (!config.vm_regex.is_empty())
            .then(|| Regex::new(&format!("^(?:{})$", config.vm_regex)).ok())
            .flatten()
            .map(|r| (r, config.vm_replacement.clone()));
        SeriesMap {
            vm_label: config.vm_label.clone(),
            strip_port: config.strip_port,
            rewrite,
            by_name,
        }
    }

    /// The VM a series is of, if it names one.
    pub fn vm_of(&self, series: &TimeSeries) -> Option<String> {
        let value = series.label(&self.vm_label).filter(|v| !v.is_empty())?;
        let value = if self.strip_port {
            strip_port(value)
        } else {
            value
        };
        let vm = match &self.rewrite {
            Some((regex, replacement)) => match regex.captures(value) {
                Some(c) => {
                    let mut out = String::new();
                    c.expand(replacement, &mut out);
                    out
                }
                None => value.to_string(),
            },
            None => value.to_string(),
        };
        (!vm.is_empty()).then_some(vm)
    }

    /// The bellwether metric a series is, if any rule takes it.
    fn metric_of(&self, series: &TimeSeries) -> Option<&str> {
        let rules = self.by_name.get(series.label("__name__")?)?;
        rules
            .iter()
            .find(|r| {
                r.labels
                    .iter()
                    .all(|(k, v)| series.label(k).unwrap_or("") == v)
            })
            .map(|r| r.metric.as_str())
    }

    /// Maps every series of `request`.
    pub fn map(&self, request: &WriteRequest) -> Mapped {
        let mut mapped = Mapped::default();
        let mut by_vm: BTreeMap<String, BTreeMap<i64, BTreeMap<String, f64>>> = BTreeMap::new();
        for series in &request.timeseries {
            let Some(metric) = self.metric_of(series) else {
                *mapped.dropped.entry(DropReason::Unmapped).or_default() += 1;
                continue;
            };
            let Some(vm) = self.vm_of(series) else {
                *mapped.dropped.entry(DropReason::NoVm).or_default() += 1;
                continue;
            };
            let times = by_vm.entry(vm).or_default();
            for s in &series.samples {
                if is_stale_marker(s.value) {
                    mapped.stale += 1;
                } else if !s.value.is_finite() {
                    mapped.not_finite += 1;
                } else {
                    mapped.samples += 1;
                    times
                        .entry(s.timestamp)
                        .or_default()
                        .insert(metric.to_string(), s.value);
                }
            }
        }
        for (vm, times) in by_vm {
            if times.is_empty() {
                continue;
            }
            let snapshots = times
                .into_iter()
                .map(|(t, metrics)| VmSnapshot {
                    vm_id: vm.clone(),
                    time: EventTime(t),
                    metrics,
                })
                .collect();
            mapped.vms.insert(vm, snapshots);
        }
        mapped
    }
}

/// `host:9100` is `host`, `[::1]:9100` is `::1`; anything else (a bare
/// IPv6 address, a name) is kept whole.
fn strip_port(value: &str) -> &str {
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split_once(']').map_or(value, |(host, _)| host);
    }
    match value.rsplit_once(':') {
        Some((host, port))
            if !host.contains(':')
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            host
        }
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote_write::config::SeriesRule;
    use bellwether_schemas::wire::remote_write::{Label, STALE_NAN_BITS, Sample, decode};

    fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries {
            labels: labels
                .iter()
                .map(|(n, v)| Label {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            samples: samples
                .iter()
                .map(|&(timestamp, value)| Sample { value, timestamp })
                .collect(),
        }
    }

    #[test]
    fn ports_are_stripped_from_names_and_addresses() {
        assert_eq!(strip_port("10.0.0.7:9100"), "10.0.0.7");
        assert_eq!(strip_port("web-01.example.com:9100"), "web-01.example.com");
        assert_eq!(strip_port("[2001:db8::7]:9100"), "2001:db8::7");
        assert_eq!(strip_port("2001:db8::7"), "2001:db8::7");
        assert_eq!(strip_port("web-01"), "web-01");
        assert_eq!(strip_port("web-01:"), "web-01:");
    }

    #[test]
    fn a_request_from_prometheus_becomes_snapshots_of_its_vm() {
        let body = include_bytes!("../../../tests/fixtures/remote_write/node.bin");
        let request = decode(body, 1 << 20).unwrap();
        let mapped = SeriesMap::new(&RemoteWriteConfig::default()).map(&request);
        assert_eq!(mapped.vms.keys().collect::<Vec<_>>(), ["127.0.0.1"]);
        let snapshots = &mapped.vms["127.0.0.1"];
        // Two rule evaluations, two seconds apart; CPU, memory and disk
        // in the second, memory alone (from the earlier scrape) in the first.
        assert!(snapshots.windows(2).all(|w| w[0].time < w[1].time));
        let last = snapshots.last().unwrap();
        for metric in ["cpu_percent", "memory_percent", "disk_io_mbps"] {
            assert!(last.metrics.contains_key(metric), "{last:?}");
        }
        assert_eq!(mapped.samples, 4);
        assert!(mapped.dropped.is_empty());
    }

    #[test]
    fn stale_markers_and_nans_are_skipped_and_counted() {
        let body = include_bytes!("../../../tests/fixtures/remote_write/stale.bin");
        let mapped =
            SeriesMap::new(&RemoteWriteConfig::default()).map(&decode(body, 1 << 20).unwrap());
        assert_eq!(mapped.stale, 1);
        let memory_seen = mapped.vms["127.0.0.1"]
            .iter()
            .any(|s| s.metrics.contains_key("memory_percent"));
        assert!(!memory_seen, "{mapped:?}");

        let request = WriteRequest {
            timeseries: vec![series(
                &[("__name__", "bellwether:cpu_percent"), ("instance", "a")],
                &[
                    (1, f64::NAN),
                    (2, f64::INFINITY),
                    (3, f64::from_bits(STALE_NAN_BITS)),
                    (4, 12.5),
                ],
            )],
        };
        let mapped = SeriesMap::new(&RemoteWriteConfig::default()).map(&request);
        assert_eq!((mapped.samples, mapped.stale, mapped.not_finite), (1, 1, 2));
        assert_eq!(mapped.vms["a"][0].time, EventTime(4));
    }

    #[test]
    fn series_map_by_name_and_labels_and_the_rest_is_dropped() {
        let mut config = RemoteWriteConfig {
            vm_label: "host".into(),
            ..RemoteWriteConfig::default()
        };
        config.metrics.insert(
            "cpu_percent".into(),
            SeriesRule::Matching {
                name: "cpu_usage".into(),
                labels: [("mode".to_string(), "total".to_string())].into(),
            },
        );
        let request = WriteRequest {
            timeseries: vec![
                series(
                    &[
                        ("__name__", "cpu_usage"),
                        ("mode", "total"),
                        ("host", "web-1:9100"),
                    ],
                    &[(1000, 40.0)],
                ),
                // The wrong label value, no label, an unknown name.
                series(
                    &[
                        ("__name__", "cpu_usage"),
                        ("mode", "user"),
                        ("host", "web-1"),
                    ],
                    &[(1000, 30.0)],
                ),
                series(&[("__name__", "bellwether:memory_percent")], &[(1000, 1.0)]),
                series(
                    &[("__name__", "go_goroutines"), ("host", "web-1")],
                    &[(1000, 9.0)],
                ),
            ],
        };
        let mapped = SeriesMap::new(&config).map(&request);
        assert_eq!(mapped.vms["web-1"][0].metrics["cpu_percent"], 40.0);
        assert_eq!(mapped.vms["web-1"][0].metrics.len(), 1);
        assert_eq!(mapped.dropped[&DropReason::Unmapped], 2);
        assert_eq!(mapped.dropped[&DropReason::NoVm], 1);
    }

    #[test]
    fn the_vm_label_can_be_rewritten() {
        let config = RemoteWriteConfig {
            vm_regex: r"(?<name>[a-z]+-\d+)\.prod\.example\.com".into(),
            vm_replacement: "$name".into(),
            ..RemoteWriteConfig::default()
        };
        let map = SeriesMap::new(&config);
        let of = |instance: &str| map.vm_of(&series(&[("instance", instance)], &[]));
        assert_eq!(
            of("web-0042.prod.example.com:9100").as_deref(),
            Some("web-0042")
        );
        // No match: the value is kept (as Prometheus's `replace` does).
        assert_eq!(of("db-7.staging:9100").as_deref(), Some("db-7.staging"));
        assert_eq!(of(""), None);
    }
}
