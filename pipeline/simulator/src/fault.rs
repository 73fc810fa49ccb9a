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

/// The largest fault size any kind takes (1000% of response time).
pub const MAX_FAULT_SIZE: f64 = 1000.0;

impl FaultKind {
    /// The size of this fault when none is given, in its [`unit`](FaultKind::unit).
    pub fn default_size(self) -> f64 {
        match self {
            FaultKind::LatencyRegression => 60.0,
            FaultKind::ErrorRateRise => 4.0,
            FaultKind::CpuSpike => 35.0,
            FaultKind::MemoryLeak => LEAK_PERCENT_PER_MINUTE,
            FaultKind::SlowDrift => 25.0,
        }
    }

    /// The unit of this fault's size: `%` of response time (latency
    /// regression), `pp` (points of error rate or CPU), `pp/min` (points of
    /// memory a minute), `%/h` (of response time an hour).
    pub fn unit(self) -> &'static str {
        match self {
            FaultKind::LatencyRegression => "%",
            FaultKind::ErrorRateRise | FaultKind::CpuSpike => "pp",
            FaultKind::MemoryLeak => "pp/min",
            FaultKind::SlowDrift => "%/h",
        }
    }

    /// The largest size this fault takes.
    fn max_size(self) -> f64 {
        match self {
            FaultKind::ErrorRateRise | FaultKind::CpuSpike => 100.0,
            FaultKind::MemoryLeak => 50.0,
            FaultKind::LatencyRegression | FaultKind::SlowDrift => MAX_FAULT_SIZE,
        }
    }

    /// Reads a size of this fault: a number, with or without its unit
    /// (`5%`, `0.5pp`, `2pp/min`, `10%/h`).
    pub fn parse_size(self, text: &str) -> Result<f64, String> {
        let unit = self.unit();
        let t = text.trim();
        // The whole unit, or its first part (`%` for `%/h`, `pp` for `pp/min`).
        let short = unit.split_once('/').map_or(unit, |(short, _)| short);
        let number = t
            .strip_suffix(unit)
            .or_else(|| t.strip_suffix(short))
            .unwrap_or(t)
            .trim();
        let size: f64 = number.parse().map_err(|_| {
            format!(
                "`{text}` is not a size of a {self}: give a number in {unit}, e.g. `{}{unit}`",
                self.default_size()
            )
        })?;
        if !(size > 0.0 && size <= self.max_size()) {
            return Err(format!(
                "`{text}`: a {self}'s size must be above 0 and at most {}{unit}",
                self.max_size()
            ));
        }
        Ok(size)
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
    /// `leak_minutes` counts from the last reboot. `size` is in the fault's
    /// [`unit`](FaultKind::unit) (none: its [default](FaultKind::default_size);
    /// an unsized latency regression also adds 30 ms, a sized one is only
    /// its share of response time).
    pub fn apply(self, r: &mut Readings, minutes: f64, leak_minutes: f64, size: Option<f64>) {
        let s = size.unwrap_or(self.default_size());
        let scale = s / self.default_size();
        match self {
            FaultKind::LatencyRegression => {
                let k = ramp(minutes, 5.0);
                let fixed = if size.is_none() { 30.0 } else { 0.0 };
                r.response = r.response * (1.0 + s / 100.0 * k) + fixed * k;
                r.latency += 1.5 * scale * k;
            }
            FaultKind::ErrorRateRise => {
                let k = ramp(minutes, 5.0);
                r.errors += s * k;
                r.success -= 1.125 * s * k;
            }
            FaultKind::CpuSpike => {
                let k = ramp(minutes, 3.0);
                r.cpu += s * k;
                r.response *= 1.0 + 0.15 * scale * k;
            }
            FaultKind::MemoryLeak => {
                r.memory += s * leak_minutes.max(0.0);
                // Near the end the VM swaps: latency and errors follow memory up.
                let pressure = ((r.memory - 88.0) / 10.0).clamp(0.0, 1.0);
                r.response *= 1.0 + 1.5 * pressure;
                r.errors += 3.0 * pressure;
                r.success -= 3.5 * pressure;
            }
            FaultKind::SlowDrift => {
                let hours = minutes / 60.0;
                r.response *= 1.0 + s / 100.0 * hours;
                r.cpu += 4.0 * scale * hours;
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

    fn readings() -> Readings {
        Readings {
            cpu: 40.0,
            memory: 50.0,
            disk: 10.0,
            latency: 2.0,
            response: 200.0,
            errors: 1.0,
            success: 98.0,
        }
    }

    fn applied(kind: FaultKind, size: Option<f64>, minutes: f64) -> Readings {
        let mut r = readings();
        kind.apply(&mut r, minutes, minutes, size);
        r
    }

    #[test]
    fn a_sized_fault_moves_its_metric_by_its_size_once_ramped_up() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        let r = applied(FaultKind::LatencyRegression, Some(5.0), 10.0);
        assert!(close(r.response, 210.0), "{}", r.response);
        let r = applied(FaultKind::ErrorRateRise, Some(0.5), 10.0);
        assert!(close(r.errors, 1.5), "{}", r.errors);
        let r = applied(FaultKind::CpuSpike, Some(3.0), 10.0);
        assert!(close(r.cpu, 43.0), "{}", r.cpu);
        let r = applied(FaultKind::MemoryLeak, Some(0.1), 60.0);
        assert!(close(r.memory, 56.0), "{}", r.memory);
        let r = applied(FaultKind::SlowDrift, Some(10.0), 120.0);
        assert!(close(r.response, 240.0), "{}", r.response);
        // Half way up the ramp, half the size.
        let r = applied(FaultKind::ErrorRateRise, Some(0.5), 2.5);
        assert!(close(r.errors, 1.25), "{}", r.errors);
    }

    #[test]
    fn the_default_size_is_the_unsized_fault_but_for_latencys_fixed_30_ms() {
        for kind in FaultKind::ALL {
            let sized = applied(kind, Some(kind.default_size()), 30.0);
            let unsized_ = applied(kind, None, 30.0);
            if kind == FaultKind::LatencyRegression {
                assert!((unsized_.response - sized.response - 30.0).abs() < 1e-9);
            } else {
                assert_eq!(sized, unsized_, "{kind}");
            }
        }
    }

    #[test]
    fn sizes_read_with_or_without_their_unit_and_bad_ones_say_why() {
        let l = FaultKind::LatencyRegression;
        assert_eq!(l.parse_size("5%"), Ok(5.0));
        assert_eq!(l.parse_size("5"), Ok(5.0));
        assert_eq!(FaultKind::ErrorRateRise.parse_size("0.5pp"), Ok(0.5));
        assert_eq!(FaultKind::MemoryLeak.parse_size("0.2pp/min"), Ok(0.2));
        assert_eq!(FaultKind::SlowDrift.parse_size("10%/h"), Ok(10.0));
        let e = FaultKind::ErrorRateRise.parse_size("5%").unwrap_err();
        assert!(e.contains("pp"), "{e}");
        let e = FaultKind::CpuSpike.parse_size("300pp").unwrap_err();
        assert!(e.contains("at most 100pp"), "{e}");
        assert!(l.parse_size("-5%").is_err());
        assert!(l.parse_size("NaN").is_err());
    }
}
