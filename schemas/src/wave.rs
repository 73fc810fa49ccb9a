//! Wave plans: how a rollout grows from a few canaries to the whole fleet.

use crate::time::EventTime;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How big a wave is: an absolute VM count or a percentage of the fleet.
/// Sizes are cumulative: `5%` after `1%` means "until 5% of the fleet is patched".
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub enum WaveSize {
    /// Patch until this many VMs are patched.
    Count(usize),
    /// Patch until this percentage of the fleet is patched.
    Percent(f64),
}

impl WaveSize {
    /// Cumulative VMs patched at the end of this wave, for a fleet of `fleet` VMs.
    /// A percentage never rounds down to zero VMs.
    pub fn cumulative_vms(self, fleet: usize) -> usize {
        match self {
            WaveSize::Count(n) => n.min(fleet),
            WaveSize::Percent(p) => ((p / 100.0 * fleet as f64).ceil() as usize).clamp(1, fleet),
        }
    }
}

impl FromStr for WaveSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("`{s}` is not a percentage like `5%`"))?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(format!(
                    "`{s}`: a wave percentage must be above 0% and at most 100%"
                ));
            }
            Ok(WaveSize::Percent(p))
        } else {
            let n: usize = s.parse().map_err(|_| {
                format!("`{s}` is neither a VM count like `10` nor a percentage like `5%`")
            })?;
            if n == 0 {
                return Err("a wave of 0 VMs patches nothing".to_string());
            }
            Ok(WaveSize::Count(n))
        }
    }
}

impl TryFrom<String> for WaveSize {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<WaveSize> for String {
    fn from(w: WaveSize) -> String {
        w.to_string()
    }
}

impl fmt::Display for WaveSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaveSize::Count(n) => write!(f, "{n}"),
            WaveSize::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// One wave of a plan: its cumulative size and how long it bakes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WaveSpec {
    /// Cumulative size at the end of the wave.
    pub size: WaveSize,
    /// Minutes of event time the wave's VMs are watched before the next wave.
    pub bake_minutes: u32,
    /// True for waves of the canary stage.
    pub canary: bool,
}

/// The waves of a rollout, smallest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WavePlan {
    /// The waves in order.
    pub waves: Vec<WaveSpec>,
}

impl WavePlan {
    /// A plan of cumulative `sizes`: the first wave bakes `first_bake_minutes`,
    /// the others `bake_minutes`, and the first `canary_waves` form the canary stage.
    pub fn new(
        sizes: &[WaveSize],
        first_bake_minutes: u32,
        bake_minutes: u32,
        canary_waves: usize,
    ) -> WavePlan {
        WavePlan {
            waves: sizes
                .iter()
                .enumerate()
                .map(|(i, &size)| WaveSpec {
                    size,
                    bake_minutes: if i == 0 {
                        first_bake_minutes
                    } else {
                        bake_minutes
                    },
                    canary: i < canary_waves,
                })
                .collect(),
        }
    }

    /// Number of VMs each wave adds, for a fleet of `fleet` VMs. A wave that
    /// would add none (its cumulative size is already reached) adds none.
    pub fn wave_sizes(&self, fleet: usize) -> Vec<usize> {
        let mut done = 0;
        self.waves
            .iter()
            .map(|w| {
                let target = w.size.cumulative_vms(fleet).max(done);
                let add = target - done;
                done = target;
                add
            })
            .collect()
    }
}

/// A wave as deployed: which VMs, when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wave {
    /// Index in the plan, from 0.
    pub index: usize,
    /// VMs patched in this wave.
    pub vms: Vec<String>,
    /// When the patch commands were issued.
    pub started_at: EventTime,
    /// Minutes it bakes.
    pub bake_minutes: u32,
    /// Part of the canary stage.
    pub canary: bool,
}

/// Serde for a wave index (from 0 in Rust) written as the wave's number
/// (from 1) in every JSON message, history row and screen, so that "wave 1"
/// means the first wave wherever a person or a query reads it.
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct W {
///     #[serde(with = "bellwether_schemas::wave::number")]
///     wave: usize,
/// }
/// assert_eq!(serde_json::to_string(&W { wave: 0 }).unwrap(), r#"{"wave":1}"#);
/// assert_eq!(serde_json::from_str::<W>(r#"{"wave":2}"#).unwrap().wave, 1);
/// assert!(serde_json::from_str::<W>(r#"{"wave":0}"#).is_err());
/// ```
pub mod number {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes index `i` as number `i + 1`.
    pub fn serialize<S: Serializer>(index: &usize, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*index as u64 + 1)
    }

    /// Reads number `n` (at least 1) as index `n - 1`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        let n = u64::deserialize(d)?;
        match n.checked_sub(1) {
            Some(i) => usize::try_from(i).map_err(D::Error::custom),
            None => Err(D::Error::custom("wave numbers start at 1")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counts_and_percentages() {
        assert_eq!("5%".parse::<WaveSize>().unwrap(), WaveSize::Percent(5.0));
        assert_eq!("12".parse::<WaveSize>().unwrap(), WaveSize::Count(12));
        assert!("0".parse::<WaveSize>().is_err());
        assert!(
            "150%"
                .parse::<WaveSize>()
                .unwrap_err()
                .contains("at most 100%")
        );
        assert!("lots".parse::<WaveSize>().is_err());
    }

    #[test]
    fn wave_sizes_are_cumulative_and_never_empty_first() {
        let sizes: Vec<WaveSize> = ["1%", "5%", "25%", "100%"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let plan = WavePlan::new(&sizes, 120, 60, 2);
        assert_eq!(plan.waves[0].bake_minutes, 120);
        assert!(plan.waves[1].canary && !plan.waves[2].canary);
        assert_eq!(plan.wave_sizes(300), vec![3, 12, 60, 225]);
        assert_eq!(plan.wave_sizes(10), vec![1, 0, 2, 7]);
    }
}
