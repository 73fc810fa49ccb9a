//! `rollout.detect`: a canary stage sized to catch the shifts the user
//! names, from the fleet's measured noise.
//!
//! The wave test ([`bellwether_schemas::power`]) catches a shift with a
//! probability that grows with the canary VMs and the windows they are
//! judged in. The planner keeps the configured bake and takes the fewest
//! canaries that catch every named shift with the asked probability; where
//! even the most canaries allowed do not, it bakes longer (up to
//! `max_bake_minutes`); where that is not enough either, it says by how
//! much the plan falls short before the rollout starts.

use crate::judge::JudgeConfig;
use bellwether_schemas::check::Problem;
use bellwether_schemas::power::{Stage, WaveNoise, power, smallest_shift};
use bellwether_schemas::{FleetNoise, WavePlan, WaveSize, WaveSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// `[rollout.detect]`: what the canary stage must catch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectConfig {
    /// Per metric of `thresholds.metrics`, the shift every patched VM may
    /// take that the canary stage must catch: a share of the metric's level
    /// (`"5%"`), points of a metric in percent (`"0.5pp"`), or an amount
    /// in the metric's unit (`"20"`), e.g. `{ response_time_ms = "5%",
    /// error_rate_percent = "0.5pp" }`.
    pub shifts: BTreeMap<String, Shift>,
    /// The chance to catch each shift in the canary stage.
    #[serde(default = "default_power")]
    pub power: f64,
    /// False halts of good patches allowed (a share of rollouts): the wave
    /// test's threshold (`judge.wave_sigma`) is checked against it.
    #[serde(default = "default_false_halts")]
    pub false_halt_budget: f64,
    /// The most VMs the canary stage may take: a count or a share of the fleet.
    #[serde(default = "default_max_canaries")]
    pub max_canaries: WaveSize,
    /// The longest the canary stage's last wave may bake, minutes.
    #[serde(default = "default_max_bake")]
    pub max_bake_minutes: u32,
}

fn default_power() -> f64 {
    0.95
}
fn default_false_halts() -> f64 {
    0.01
}
fn default_max_canaries() -> WaveSize {
    WaveSize::Percent(10.0)
}
fn default_max_bake() -> u32 {
    240
}

impl DetectConfig {
    /// Catching `shifts`, every other setting its default.
    pub fn new(shifts: BTreeMap<String, Shift>) -> DetectConfig {
        DetectConfig {
            shifts,
            power: default_power(),
            false_halt_budget: default_false_halts(),
            max_canaries: default_max_canaries(),
            max_bake_minutes: default_max_bake(),
        }
    }

    /// Checks the ranges and that each shift names one of `metrics`: the error names the key.
    pub fn check(&self, metrics: &[String]) -> Result<(), Problem> {
        if self.shifts.is_empty() {
            return Err(Problem::new(
                "rollout.detect.shifts",
                "name at least one metric's shift to catch, e.g. { response_time_ms = \"5%\" }",
            ));
        }
        for (metric, shift) in &self.shifts {
            let key = format!("rollout.detect.shifts.{metric}");
            if !metrics.contains(metric) {
                return Err(Problem::new(
                    key,
                    format!(
                        "is not a metric of thresholds.metrics ({})",
                        metrics.join(", ")
                    ),
                ));
            }
            if matches!(shift, Shift::Points(_)) && !metric.ends_with("_percent") {
                return Err(Problem::new(
                    key,
                    "points (pp) are for metrics in percent: give a share (\"5%\") or an amount",
                ));
            }
        }
        if !(self.power > 0.5 && self.power < 1.0) {
            return Err(Problem::new(
                "rollout.detect.power",
                "must be above 0.5 and below 1",
            ));
        }
        if !(self.false_halt_budget > 0.0 && self.false_halt_budget < 1.0) {
            return Err(Problem::new(
                "rollout.detect.false_halt_budget",
                "must be above 0 and below 1",
            ));
        }
        if self.max_bake_minutes == 0 {
            return Err(Problem::new(
                "rollout.detect.max_bake_minutes",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// A shift to catch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub enum Shift {
    /// A share of the metric's level (0.05: 5%).
    Relative(f64),
    /// Points of a metric in percent.
    Points(f64),
    /// An amount in the metric's unit.
    Amount(f64),
}

impl Shift {
    /// The shift in the metric's unit, for a metric at `level`.
    pub fn amount(self, level: f64) -> f64 {
        match self {
            Shift::Relative(r) => r * level.abs(),
            Shift::Points(a) | Shift::Amount(a) => a,
        }
    }
}

impl FromStr for Shift {
    type Err = String;
    fn from_str(s: &str) -> Result<Shift, String> {
        let t = s.trim();
        let (number, make): (&str, fn(f64) -> Shift) = if let Some(p) = t.strip_suffix('%') {
            (p, |v| Shift::Relative(v / 100.0))
        } else if let Some(p) = t.strip_suffix("pp") {
            (p, Shift::Points)
        } else {
            (t, Shift::Amount)
        };
        match number.trim().parse::<f64>() {
            Ok(v) if v > 0.0 && v.is_finite() => Ok(make(v)),
            _ => Err(format!(
                "`{s}` is not a shift: a share (\"5%\"), points (\"0.5pp\") or an amount (\"20\"), above 0"
            )),
        }
    }
}

impl TryFrom<String> for Shift {
    type Error = String;
    fn try_from(s: String) -> Result<Shift, String> {
        s.parse()
    }
}

impl From<Shift> for String {
    fn from(s: Shift) -> String {
        s.to_string()
    }
}

impl fmt::Display for Shift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shift::Relative(r) => write!(f, "{}%", r * 100.0),
            Shift::Points(a) => write!(f, "{a}pp"),
            Shift::Amount(a) => write!(f, "{a}"),
        }
    }
}

/// A canary stage planned from `rollout.detect`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// VMs the canary stage patches.
    pub canary_vms: usize,
    /// Minutes its last wave bakes.
    pub bake_minutes: u32,
    /// Windows each of its VMs is judged in by then (at least).
    pub windows: u32,
    /// Per named shift: what the stage can catch.
    pub targets: Vec<TargetPower>,
    /// Whether every shift is caught with the asked probability.
    pub met: bool,
    /// The chance, under the wave test's own model, that a good patch
    /// is stopped by it in the canary stage (at most).
    pub false_halt_bound: f64,
    /// What falls short, for humans (empty when the plan meets the goals).
    pub warnings: Vec<String>,
}

/// One named shift against the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetPower {
    /// The metric.
    pub metric: String,
    /// The shift asked for.
    pub shift: Shift,
    /// It in the metric's unit, at the fleet's level.
    pub amount: f64,
    /// The chance the canary stage catches it.
    pub power: f64,
    /// The smallest shift caught with the asked chance, in the metric's
    /// unit, and relative to the level.
    pub smallest: f64,
    /// The same relative to the metric's level (None where the level is 0).
    pub smallest_relative: Option<f64>,
}

/// What the planner needs of the rest of the config.
#[derive(Debug, Clone, Copy)]
pub struct PlanInputs<'a> {
    /// What to catch.
    pub detect: &'a DetectConfig,
    /// The wave test's settings.
    pub judge: &'a JudgeConfig,
    /// Minutes after its patch before a VM is judged.
    pub settle_minutes: u32,
    /// VMs in the fleet.
    pub fleet: usize,
    /// VMs held back as the control until the last wave (never canaries).
    pub held_back: usize,
}

impl PlanInputs<'_> {
    /// Sizes the canary stage of `plan` against `noise`: returns the plan
    /// with its canary stage resized and what it can catch.
    pub fn plan(&self, plan: &WavePlan, noise: &FleetNoise) -> (WavePlan, Detection) {
        let canary_waves = plan.waves.iter().take_while(|w| w.canary).count().max(1);
        let bake = plan
            .waves
            .get(canary_waves - 1)
            .map_or(60, |w| w.bake_minutes);
        let most = self
            .detect
            .max_canaries
            .cumulative_vms(self.fleet)
            .min(self.fleet.saturating_sub(self.held_back));
        let fewest = self.judge.wave_min_vms.max(1);
        let meets = |vms: usize, bake: u32| self.detection(noise, vms, bake).met;
        let (vms, bake) = if let Some(n) = (fewest..=most).find(|&n| meets(n, bake)) {
            (n, bake)
        } else if let Some(b) =
            (bake..=self.detect.max_bake_minutes.max(bake)).find(|&b| meets(most.max(fewest), b))
        {
            (most.max(fewest), b)
        } else {
            (most.max(fewest), self.detect.max_bake_minutes.max(bake))
        };
        let mut detection = self.detection(noise, vms, bake);
        if vms > most {
            detection.warnings.insert(0, format!(
                "the fleet is too small: the wave test needs {vms} canaries (judge.wave_min_vms) and at most {most} may be taken (rollout.detect.max_canaries, less the held-back control)"
            ));
        } else if !detection.met {
            detection.warnings.insert(0, format!(
                "the fleet is too small or too noisy for this goal: even {vms} canaries (rollout.detect.max_canaries) baking {bake} min (rollout.detect.max_bake_minutes) fall short; allow more of either, or ask for larger shifts"
            ));
        }
        detection.met = detection.warnings.is_empty();
        (resize(plan, canary_waves, vms, bake, self.fleet), detection)
    }

    /// What a canary stage of `vms` VMs baking `bake` minutes catches.
    pub fn detection(&self, noise: &FleetNoise, vms: usize, bake: u32) -> Detection {
        let judge = self.judge;
        let step = noise.window_minutes.max(1e-9);
        let windows = (bake.saturating_sub(self.settle_minutes) as f64 / step).floor() as u32;
        let stage = Stage { vms, windows };
        let (threshold, asked) = (judge.wave_sigma, self.detect.power);
        let mut warnings = Vec::new();
        let mut targets = Vec::new();
        for (metric, shift) in &self.detect.shifts {
            let Some(measured) = noise.metric(metric) else {
                warnings.push(format!("{metric}: its noise is not measured yet"));
                continue;
            };
            let wave_noise = WaveNoise::from(measured);
            let amount = shift.amount(measured.level);
            let p = if threshold > 0.0 {
                power(amount, &wave_noise, stage, judge.wave_min_vms, threshold)
            } else {
                0.0
            };
            let smallest = smallest_shift(&wave_noise, stage, judge.wave_min_vms, threshold, asked)
                .unwrap_or(f64::INFINITY);
            if p < asked {
                warnings.push(format!(
                    "{metric} +{shift}: {:.0}% chance, not {:.0}% (the smallest caught is +{})",
                    p * 100.0,
                    asked * 100.0,
                    shown(smallest, measured.level)
                ));
            }
            targets.push(TargetPower {
                metric: metric.clone(),
                shift: *shift,
                amount,
                power: p,
                smallest,
                smallest_relative: (measured.level.abs() > 0.0 && smallest.is_finite())
                    .then(|| smallest / measured.level.abs()),
            });
        }
        if threshold <= 0.0 {
            warnings.push("the wave test is off (judge.wave_sigma = 0): nothing is planned to catch these shifts".into());
        }
        // Each window of each metric is one look at the test.
        let looks = (windows.max(1) as usize * noise.metrics.len().max(1)) as f64;
        let false_halt_bound = (looks * bellwether_schemas::power::normal_tail(threshold)).min(1.0);
        if false_halt_bound > self.detect.false_halt_budget {
            warnings.push(format!(
                "judge.wave_sigma = {threshold} allows up to {:.2}% false halts, over the budget of {:.2}%",
                false_halt_bound * 100.0,
                self.detect.false_halt_budget * 100.0
            ));
        }
        Detection {
            canary_vms: vms,
            bake_minutes: bake,
            windows,
            met: warnings.is_empty(),
            targets,
            false_halt_bound,
            warnings,
        }
    }
}

/// `amount` with its share of `level`: "4.1 (4.1%)".
fn shown(amount: f64, level: f64) -> String {
    if !amount.is_finite() {
        return "nothing (too few VMs or windows for the test)".into();
    }
    if level.abs() > 0.0 {
        format!("{amount:.3} ({:.1}%)", amount / level.abs() * 100.0)
    } else {
        format!("{amount:.3}")
    }
}

/// `plan` with a canary stage of `vms` VMs whose last wave bakes `bake`:
/// earlier canary waves as large or larger, and fleet waves no larger,
/// are left out.
fn resize(plan: &WavePlan, canary_waves: usize, vms: usize, bake: u32, fleet: usize) -> WavePlan {
    let size = |w: &WaveSpec| w.size.cumulative_vms(fleet);
    let mut waves: Vec<WaveSpec> = plan.waves[..canary_waves.min(plan.waves.len())]
        .iter()
        .filter(|w| size(w) < vms)
        .copied()
        .collect();
    waves.truncate(canary_waves.saturating_sub(1));
    waves.push(WaveSpec {
        size: WaveSize::Count(vms),
        bake_minutes: bake,
        canary: true,
    });
    waves.extend(
        plan.waves
            .iter()
            .skip(canary_waves)
            .filter(|w| size(w) > vms)
            .copied(),
    );
    WavePlan { waves }
}

impl Detection {
    /// One line for humans: "with 12 canaries and 60 min of bake: 95%
    /// chance to catch +5% response_time_ms (the smallest caught: +4.1%)".
    pub fn describe(&self) -> String {
        let caught: Vec<String> = self
            .targets
            .iter()
            .map(|t| {
                let smallest = match (t.shift, t.smallest_relative) {
                    _ if !t.smallest.is_finite() => "none: too few VMs or windows".to_string(),
                    (Shift::Relative(_), Some(r)) => format!("+{:.1}%", r * 100.0),
                    (Shift::Points(_), _) => format!("+{:.2}pp", t.smallest),
                    _ => format!("+{:.3}", t.smallest),
                };
                format!(
                    "{:.0}% chance to catch +{} {} (smallest at the asked chance: {smallest})",
                    t.power * 100.0,
                    t.shift,
                    t.metric
                )
            })
            .collect();
        let mut line = format!(
            "with {} canaries and {} min of bake ({} windows judged): {}",
            self.canary_vms,
            self.bake_minutes,
            self.windows,
            caught.join("; ")
        );
        for w in &self.warnings {
            line.push_str(&format!("\n  short of the goal: {w}"));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bellwether_schemas::MetricNoise;

    /// One metric around 100 whose change against peers spreads by 4 a
    /// window, windows correlated 0.6, controls of 100 VMs, 5-minute windows.
    fn noise() -> FleetNoise {
        FleetNoise {
            window_minutes: 5.0,
            windows: 60,
            metrics: vec![MetricNoise {
                metric: "response_time_ms".into(),
                vms: 280,
                spread: 4.0,
                spread_sigmas: 1.0,
                level: 100.0,
                correlation: 0.6,
                control_vms: 100,
            }],
        }
    }

    fn detect(shift: &str) -> DetectConfig {
        toml_detect(&format!("shifts = {{ response_time_ms = \"{shift}\" }}"))
    }

    fn toml_detect(text: &str) -> DetectConfig {
        toml::from_str(text).unwrap()
    }

    /// 3 canaries baking 30 min, 10 baking 60, then a quarter, then all.
    fn plan() -> WavePlan {
        let wave = |size, bake_minutes, canary| WaveSpec {
            size,
            bake_minutes,
            canary,
        };
        WavePlan {
            waves: vec![
                wave(WaveSize::Count(3), 30, true),
                wave(WaveSize::Count(10), 60, true),
                wave(WaveSize::Percent(25.0), 60, false),
                wave(WaveSize::Percent(100.0), 0, false),
            ],
        }
    }

    fn inputs<'a>(
        detect: &'a DetectConfig,
        judge: &'a JudgeConfig,
        fleet: usize,
    ) -> PlanInputs<'a> {
        PlanInputs {
            detect,
            judge,
            settle_minutes: 10,
            fleet,
            held_back: 0,
        }
    }

    #[test]
    fn the_fewest_canaries_that_catch_the_shift_at_the_configured_bake() {
        // By hand, threshold 5 and power 0.95: z must reach 5 + 1.6449.
        // 60 min of bake less 10 of settling: 10 windows. A 5% shift is 5:
        // z² = (5/4)² · 10n / (4 · (1 + (n−1)·0.015465)) = 3.90625 · n/(1+(n−1)s).
        // n = 13: 3.90625 · 10.965 = 42.83 < 44.155; n = 14: 3.90625 · 11.6565
        // = 45.53, z = 6.748, power Φ(1.748) = 0.9598.
        let (detect, judge) = (detect("5%"), JudgeConfig::default());
        let (planned, detection) = inputs(&detect, &judge, 300).plan(&plan(), &noise());
        assert_eq!(
            (
                detection.canary_vms,
                detection.bake_minutes,
                detection.windows
            ),
            (14, 60, 10)
        );
        assert!(detection.met, "{:?}", detection.warnings);
        let target = &detection.targets[0];
        assert!((target.power - 0.9598).abs() < 0.001, "{}", target.power);
        assert_eq!(target.amount, 5.0);
        // The first canary wave stays; the second takes the 14; the fleet waves follow.
        let sizes: Vec<usize> = planned
            .waves
            .iter()
            .map(|w| w.size.cumulative_vms(300))
            .collect();
        assert_eq!(sizes, [3, 14, 75, 300]);
        assert_eq!(planned.waves[1].bake_minutes, 60);
        assert!(planned.waves[1].canary && !planned.waves[2].canary);
        assert!(detection.describe().starts_with(
            "with 14 canaries and 60 min of bake (10 windows judged): 96% chance to catch +5% response_time_ms"
        ), "{}", detection.describe());
    }

    #[test]
    fn bakes_longer_when_the_most_canaries_allowed_are_not_enough() {
        // A 2% shift with the most canaries (10% of 300: 30):
        // z² = 0.25² · K · 30 / (4 · 1.448485) = 1.29444 · K ≥ 44.155 from
        // K = 35 windows: 10 + 35·5 = 185 minutes.
        let (detect, judge) = (detect("2%"), JudgeConfig::default());
        let (_, detection) = inputs(&detect, &judge, 300).plan(&plan(), &noise());
        assert_eq!(
            (
                detection.canary_vms,
                detection.bake_minutes,
                detection.windows
            ),
            (30, 185, 35)
        );
        assert!(detection.met);
        assert!(detection.targets[0].power >= 0.95);
    }

    #[test]
    fn says_before_the_rollout_when_the_fleet_is_too_noisy_for_the_goal() {
        // 1% with 30 canaries over 240 min (46 windows): z² = 0.015625 · 46
        // · 20.711 = 14.886, z = 3.858, power Φ(−1.142) = 0.127; the
        // smallest caught at 95%: 6.6449 · 4 · √(4·1.448485/1380) = 1.72.
        let (detect, judge) = (detect("1%"), JudgeConfig::default());
        let (_, detection) = inputs(&detect, &judge, 300).plan(&plan(), &noise());
        assert_eq!((detection.canary_vms, detection.bake_minutes), (30, 240));
        assert!(!detection.met);
        let target = &detection.targets[0];
        assert!((target.power - 0.127).abs() < 0.002, "{}", target.power);
        assert!(
            (target.smallest - 1.722).abs() < 0.005,
            "{}",
            target.smallest
        );
        let text = detection.describe();
        assert!(text.contains("too small or too noisy"), "{text}");
        assert!(text.contains("13% chance, not 95%"), "{text}");
    }

    #[test]
    fn a_fleet_smaller_than_the_wave_test_needs_is_named() {
        // 10% of 20 VMs is 2 canaries; the wave test needs 3.
        let (detect, judge) = (detect("5%"), JudgeConfig::default());
        let (_, detection) = inputs(&detect, &judge, 20).plan(&plan(), &noise());
        assert!(!detection.met);
        assert!(
            detection.warnings[0].contains("the fleet is too small"),
            "{:?}",
            detection.warnings
        );
    }

    #[test]
    fn shifts_parse_and_bad_keys_are_named() {
        assert_eq!("5%".parse::<Shift>(), Ok(Shift::Relative(0.05)));
        assert_eq!("0.5pp".parse::<Shift>(), Ok(Shift::Points(0.5)));
        assert_eq!(" 20 ".parse::<Shift>(), Ok(Shift::Amount(20.0)));
        assert!("-3%".parse::<Shift>().is_err());
        assert!(
            "fast"
                .parse::<Shift>()
                .unwrap_err()
                .contains("`fast` is not a shift")
        );
        let metrics = [
            "response_time_ms".to_string(),
            "error_rate_percent".to_string(),
        ];
        let unknown = toml_detect("shifts = { latency = \"5%\" }")
            .check(&metrics)
            .unwrap_err();
        assert_eq!(unknown.key, "rollout.detect.shifts.latency");
        let points = detect("0.5pp").check(&metrics).unwrap_err();
        assert_eq!(points.key, "rollout.detect.shifts.response_time_ms");
        let ok = toml_detect("shifts = { error_rate_percent = \"0.5pp\" }");
        assert_eq!(ok.check(&metrics), Ok(()));
        assert_eq!(ok.power, 0.95);
    }
}
