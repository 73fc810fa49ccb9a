//! What a bad patch does to a VM it breaks.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The ways a bad patch can break a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Responses get slower at once (+60% and +30 ms).
    LatencyRegression,
    /// Requests start failing (+4 points of error rate).
    ErrorRateRise,
    /// CPU jumps by 35 points (a busy loop, a lost cache).
    CpuSpike,
    /// Memory climbs steadily until the VM crashes, reboots, and climbs again.
    MemoryLeak,
    /// Response time and CPU creep up hour after hour.
    SlowDrift,
}

impl FaultKind {
    /// Every fault kind.
    pub const ALL: [FaultKind; 5] = [
        FaultKind::LatencyRegression,
        FaultKind::ErrorRateRise,
        FaultKind::CpuSpike,
        FaultKind::MemoryLeak,
        FaultKind::SlowDrift,
    ];

    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::LatencyRegression => "latency-regression",
            FaultKind::ErrorRateRise => "error-rate-rise",
            FaultKind::CpuSpike => "cpu-spike",
            FaultKind::MemoryLeak => "memory-leak",
            FaultKind::SlowDrift => "slow-drift",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown fault `{s}`; known faults: {}",
                    FaultKind::ALL.map(FaultKind::as_str).join(", ")
                )
            })
    }
}

/// Memory percent at which a leaking VM crashes.
pub const CRASH_MEMORY_PERCENT: f64 = 98.0;
/// Minutes a crashed VM stays down before it has rebooted.
pub const CRASH_DOWN_MINUTES: f64 = 8.0;
/// Memory a leaking VM gains per minute, in percent points.
pub const LEAK_PERCENT_PER_MINUTE: f64 = 1.5;

/// Ramp from 0 to 1 over `minutes` after onset.
fn ramp(minutes_since: f64, minutes: f64) -> f64 {
    (minutes_since / minutes).clamp(0.0, 1.0)
}

/// A VM's metrics before a fault is applied (cpu, memory, disk, latency, response, errors, success).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Readings {
    /// CPU percent.
    pub cpu: f64,
    /// Memory percent.
    pub memory: f64,
    /// Disk MB/s.
    pub disk: f64,
    /// Network latency ms.
    pub latency: f64,
    /// Response time ms.
    pub response: f64,
    /// Error rate percent.
    pub errors: f64,
    /// Transaction success percent.
    pub success: f64,
}

impl FaultKind {
    /// Applies the fault `minutes` after it started; for a memory leak,
    /// `leak_minutes` counts from the last reboot.
    pub fn apply(self, r: &mut Readings, minutes: f64, leak_minutes: f64) {
        match self {
            FaultKind::LatencyRegression => {
                let k = ramp(minutes, 5.0);
                r.response = r.response * (1.0 + 0.6 * k) + 30.0 * k;
                r.latency += 1.5 * k;
            }
            FaultKind::ErrorRateRise => {
                let k = ramp(minutes, 5.0);
                r.errors += 4.0 * k;
                r.success -= 4.5 * k;
            }
            FaultKind::CpuSpike => {
                let k = ramp(minutes, 3.0);
                r.cpu += 35.0 * k;
                r.response *= 1.0 + 0.15 * k;
            }
            FaultKind::MemoryLeak => {
                r.memory += LEAK_PERCENT_PER_MINUTE * leak_minutes.max(0.0);
                // Near the end the VM swaps: latency and errors follow memory up.
                let pressure = ((r.memory - 88.0) / 10.0).clamp(0.0, 1.0);
                r.response *= 1.0 + 1.5 * pressure;
                r.errors += 3.0 * pressure;
                r.success -= 3.5 * pressure;
            }
            FaultKind::SlowDrift => {
                let hours = minutes / 60.0;
                r.response *= 1.0 + 0.25 * hours;
                r.cpu += 4.0 * hours;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_names_round_trip_and_unknown_ones_list_the_known() {
        for kind in FaultKind::ALL {
            assert_eq!(kind.as_str().parse::<FaultKind>().unwrap(), kind);
        }
        let err = "gremlins".parse::<FaultKind>().unwrap_err();
        assert!(err.contains("memory-leak"), "{err}");
    }
}
