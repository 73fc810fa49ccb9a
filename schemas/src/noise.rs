//! The fleet's measured noise: what a patched VM's deviation against its
//! peers faces in one window, per metric, as the scoring stage measures it
//! on the unpatched VMs. The rollout planner sizes canary stages from it.

use serde::{Deserialize, Serialize};

/// Per metric, the noise a canary's deviation against peers faces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetNoise {
    /// Minutes between windows (the window slide).
    pub window_minutes: f64,
    /// Windows the figures average over.
    pub windows: u32,
    /// One entry per metric.
    pub metrics: Vec<MetricNoise>,
}

/// One metric's noise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricNoise {
    /// The metric.
    pub metric: String,
    /// Unpatched VMs measured in the latest window.
    pub vms: usize,
    /// A window's spread of a VM's change against its peers, in the
    /// metric's unit (robust: 1.4826 × the median absolute deviation).
    pub spread: f64,
    /// The same spread in the judge's sigmas (its deviation against peers
    /// is divided by the VM's baseline spread): under 1 where the
    /// baselines' spreads are wider than the change varies.
    pub spread_sigmas: f64,
    /// A VM's typical level (median baseline), for relative shifts.
    pub level: f64,
    /// Correlation of a VM's deviations in consecutive windows.
    pub correlation: f64,
    /// Typical size of the control a VM is compared with.
    pub control_vms: usize,
}

impl FleetNoise {
    /// The noise of `metric`, if measured.
    pub fn metric(&self, metric: &str) -> Option<&MetricNoise> {
        self.metrics.iter().find(|m| m.metric == metric)
    }
}
