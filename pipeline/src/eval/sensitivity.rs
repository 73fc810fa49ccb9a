//! `bellwether eval sensitivity`: the smallest regression bellwether stops
//! in the canary stage. Seeded rollouts over a grid of fault kind × fault
//! size × canary size × bake time, each a bad patch of that size on every
//! VM it breaks (`simulation.affected_share` of those it reaches); and,
//! with the same canary and bake settings, good patches, whose halts are
//! false halts.

use crate::config::Config;
use crate::demo::{DemoError, DemoOptions, run_demo};
use crate::rollout::detect::{DetectConfig, PlanInputs, Shift};
use crate::simulator::{FaultKind, PatchQuality};
use crate::summary::DemoSummary;
use bellwether_schemas::{FleetNoise, WaveSize};
use serde::Serialize;
use std::collections::BTreeMap;

/// What to sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// Faults with the sizes to try, in each fault's unit.
    pub faults: Vec<(FaultKind, Vec<f64>)>,
    /// VMs in the canary stage.
    pub canary_vms: Vec<usize>,
    /// Minutes the first wave bakes (later waves bake half of it).
    pub bake_minutes: Vec<u32>,
    /// Fleet seeds; each setting runs once per seed.
    pub seeds: Vec<u64>,
}

impl Grid {
    /// The three regressions at half, one, two and four times the
    /// size to catch (5% latency, 0.5 points of errors, 3 points of CPU).
    pub fn goals(canary_vms: Vec<usize>, bake_minutes: Vec<u32>, seeds: Vec<u64>) -> Grid {
        let ladder = |goal: f64| [0.5, 1.0, 2.0, 4.0].map(|m| goal * m).to_vec();
        Grid {
            faults: vec![
                (FaultKind::LatencyRegression, ladder(5.0)),
                (FaultKind::ErrorRateRise, ladder(0.5)),
                (FaultKind::CpuSpike, ladder(3.0)),
            ],
            canary_vms,
            bake_minutes,
            seeds,
        }
    }

    fn runs(&self) -> usize {
        let settings = self.canary_vms.len() * self.bake_minutes.len();
        let sizes: usize = self.faults.iter().map(|(_, s)| s.len()).sum();
        settings * (sizes + 1) * self.seeds.len()
    }
}

/// One bad patch setting: how often it was stopped in the canary stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// The fault.
    pub fault: String,
    /// Its size, in the fault's unit.
    pub size: f64,
    /// The unit (`%`, `pp`, ...).
    pub unit: String,
    /// VMs in the canary stage.
    pub canary_vms: usize,
    /// Minutes the first wave baked.
    pub bake_minutes: u32,
    /// Rollouts run.
    pub rollouts: usize,
    /// Of those, stopped in the canary stage: a VM rolled back, and no wave
    /// past the canary stage deployed.
    pub stopped_in_canary: usize,
    /// Median minutes from the approval to the first rollback, over the
    /// rollouts with one.
    pub median_minutes_to_rollback: Option<f64>,
    /// What `rollout.detect`'s model promises for this stage: the wave
    /// test's chance to stop it (the fault's mean shift over the canaries,
    /// judged over the last canary wave's bake), from the noise each run
    /// measured, averaged over the runs (None for faults that are no
    /// single shift: leaks, drifts).
    pub predicted: Option<f64>,
}

impl Detection {
    /// Share of rollouts stopped in the canary stage.
    pub fn probability(&self) -> f64 {
        self.stopped_in_canary as f64 / self.rollouts.max(1) as f64
    }
}

/// Good patches with one canary setting: how often they were halted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FalseHalts {
    /// VMs in the canary stage.
    pub canary_vms: usize,
    /// Minutes the first wave baked.
    pub bake_minutes: u32,
    /// Good rollouts run.
    pub rollouts: usize,
    /// Of those, halted.
    pub halted: usize,
}

/// What a sweep found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sensitivity {
    /// One line per fault, size, canary size and bake time.
    pub detections: Vec<Detection>,
    /// One line per canary size and bake time.
    pub false_halts: Vec<FalseHalts>,
}

/// `config` with a canary stage of `canary_vms` VMs (two waves, a fifth of
/// it then all of it, as the default 1% and 5% are) and a first bake of
/// `bake` minutes (the others half of it).
fn with_canary(config: &Config, canary_vms: usize, bake: u32) -> Config {
    let mut config = config.clone();
    let first = canary_vms.div_ceil(5).max(1);
    config.rollout.waves = vec![
        WaveSize::Count(first),
        WaveSize::Count(canary_vms),
        WaveSize::Percent(25.0),
        WaveSize::Percent(100.0),
    ];
    config.rollout.canary_waves = 2;
    config.rollout.first_bake_minutes = bake;
    config.rollout.bake_minutes = (bake / 2).max(1);
    config
}

fn minutes_to_first_rollback(s: &DemoSummary) -> Option<f64> {
    let first = s.rollbacks.iter().map(|r| r.detected_at).min()?;
    Some(first.minutes_since(s.patch_approved_at) as f64)
}

/// The upper median (the middle value, the higher of two), as the
/// failure model's lead times are reported.
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// The wave test's chance to stop a `kind` fault of `size` on a canary
/// stage of `canary_vms` under `config`, as `rollout.detect` plans it
/// from `noise`: the fault hits `simulation.affected_share` of the
/// canaries, so the stage's mean shift is that share of it.
fn promised(
    config: &Config,
    kind: FaultKind,
    size: f64,
    canary_vms: usize,
    noise: &FleetNoise,
) -> Option<f64> {
    let share = config.simulation.affected_share;
    let (metric, shift) = match kind {
        FaultKind::LatencyRegression => ("response_time_ms", Shift::Relative(size / 100.0 * share)),
        FaultKind::ErrorRateRise => ("error_rate_percent", Shift::Points(size * share)),
        FaultKind::CpuSpike => ("cpu_percent", Shift::Points(size * share)),
        FaultKind::MemoryLeak | FaultKind::SlowDrift => return None,
    };
    let detect = DetectConfig::new(BTreeMap::from([(metric.to_string(), shift)]));
    let plan = PlanInputs {
        detect: &detect,
        judge: &config.judge,
        settle_minutes: config.rollout.settle_minutes,
        fleet: config.fleet.vms,
        held_back: 0,
    };
    let stage = plan.detection(noise, canary_vms, config.rollout.bake_minutes);
    stage.targets.first().map(|t| t.power)
}

/// Runs the grid; `progress` hears of each rollout as it ends.
pub fn sweep(
    config: &Config,
    grid: &Grid,
    mut progress: impl FnMut(usize, usize),
) -> Result<Sensitivity, DemoError> {
    let (total, mut done) = (grid.runs(), 0);
    let mut run = |config: &Config, quality, size: Option<f64>, seed| {
        let mut config = config.clone();
        config.simulation.seed = seed;
        config.simulation.fault_size = size;
        let s = run_demo(&config, DemoOptions::new(quality), None, None, &mut |_| {});
        done += 1;
        progress(done, total);
        s
    };
    let mut out = Sensitivity {
        detections: Vec::new(),
        false_halts: Vec::new(),
    };
    for &canary_vms in &grid.canary_vms {
        for &bake in &grid.bake_minutes {
            let config = with_canary(config, canary_vms, bake);
            let mut halts = FalseHalts {
                canary_vms,
                bake_minutes: bake,
                rollouts: 0,
                halted: 0,
            };
            for &seed in &grid.seeds {
                let s = run(&config, PatchQuality::Good, None, seed)?;
                halts.rollouts += 1;
                halts.halted += usize::from(s.outcome != crate::summary::RolloutOutcome::Completed);
            }
            out.false_halts.push(halts);
            for (kind, sizes) in &grid.faults {
                for &size in sizes {
                    let (mut stopped, mut minutes, mut predicted) = (0, Vec::new(), Vec::new());
                    for &seed in &grid.seeds {
                        let s = run(&config, PatchQuality::Bad(*kind), Some(size), seed)?;
                        stopped += usize::from(!s.left_canary_stage && !s.rollbacks.is_empty());
                        minutes.extend(minutes_to_first_rollback(&s));
                        predicted.extend(
                            s.noise
                                .as_ref()
                                .and_then(|n| promised(&config, *kind, size, canary_vms, n)),
                        );
                    }
                    out.detections.push(Detection {
                        fault: kind.to_string(),
                        size,
                        unit: kind.unit().to_string(),
                        canary_vms,
                        bake_minutes: bake,
                        rollouts: grid.seeds.len(),
                        stopped_in_canary: stopped,
                        median_minutes_to_rollback: median(minutes),
                        predicted: (!predicted.is_empty())
                            .then(|| predicted.iter().sum::<f64>() / predicted.len() as f64),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// The sweep as the table `bellwether eval sensitivity` prints.
pub fn table(s: &Sensitivity) -> String {
    let mut out = format!(
        "{:<20} {:>8} {:>7} {:>5} {:>9} {:>15} {:>9}\n",
        "fault", "size", "canary", "bake", "stopped", "first rollback", "promised"
    );
    for d in &s.detections {
        out.push_str(&format!(
            "{:<20} {:>8} {:>7} {:>5} {:>9} {:>15} {:>9}\n",
            d.fault,
            format!("{}{}", d.size, d.unit),
            d.canary_vms,
            d.bake_minutes,
            format!("{:.0}%", 100.0 * d.probability()),
            d.median_minutes_to_rollback
                .map(|m| format!("{m:.0} min"))
                .unwrap_or_else(|| "-".into()),
            d.predicted
                .map(|p| format!("{:.0}%", 100.0 * p))
                .unwrap_or_else(|| "-".into())
        ));
    }
    out.push_str(&format!(
        "\n{:<20} {:>7} {:>5} {:>9}\n",
        "good patches", "canary", "bake", "halted"
    ));
    for h in &s.false_halts {
        out.push_str(&format!(
            "{:<20} {:>7} {:>5} {:>9}\n",
            "",
            h.canary_vms,
            h.bake_minutes,
            format!("{}/{}", h.halted, h.rollouts)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bellwether_schemas::RollbackTrigger;

    #[test]
    fn a_large_fault_is_stopped_in_the_canary_stage_and_a_good_patch_is_not() {
        let mut config = Config::default_config();
        config.fleet.vms = 60;
        let grid = Grid {
            faults: vec![(FaultKind::CpuSpike, vec![0.5, 35.0])],
            canary_vms: vec![12],
            bake_minutes: vec![120],
            seeds: vec![1, 2],
        };
        let mut calls = Vec::new();
        let s = sweep(&config, &grid, |done, total| calls.push((done, total))).unwrap();
        // Two seeds of the good patch and of each size: six rollouts.
        assert_eq!(calls.last(), Some(&(6, 6)));
        assert_eq!(s.false_halts.len(), 1);
        assert_eq!(s.false_halts[0].rollouts, 2);
        assert_eq!(s.false_halts[0].halted, 0, "{s:?}");
        let [small, large] = &s.detections[..] else {
            panic!("{s:?}")
        };
        assert_eq!((large.size, large.unit.as_str()), (35.0, "pp"));
        assert_eq!(large.stopped_in_canary, 2, "{large:?}");
        let minutes = large.median_minutes_to_rollback.expect("rolled back");
        // Inside the canary stage: the first wave's 120 minutes and the
        // second's 60.
        assert!((0.0..=180.0).contains(&minutes), "{minutes}");
        assert!(small.probability() <= large.probability());
        let text = table(&s);
        assert!(
            text.contains("cpu-spike") && text.contains("35pp"),
            "{text}"
        );
        assert!(text.contains("0/2"), "{text}");
    }

    #[test]
    fn a_regression_on_every_canary_too_small_for_any_one_is_stopped_by_the_wave() {
        // +3 points of CPU on the patch's affected half of 15 canaries:
        // each inside its own noise, the fifteen together not (on these
        // seeds; benches/README has the rate over many).
        let config = with_canary(&Config::default_config(), 15, 120);
        let rollout = |config: &Config, seed| {
            let mut config = config.clone();
            config.simulation.seed = seed;
            config.simulation.fault_size = Some(3.0);
            let quality = PatchQuality::Bad(FaultKind::CpuSpike);
            run_demo(&config, DemoOptions::new(quality), None, None, &mut |_| {}).unwrap()
        };
        let mut alone = config.clone();
        alone.judge.wave_sigma = 0.0;
        for seed in [3, 5] {
            let s = rollout(&config, seed);
            assert!(!s.left_canary_stage, "seed {seed}: {s:?}");
            let first = &s.rollbacks[0];
            assert_eq!(first.trigger, RollbackTrigger::Wave, "{first:?}");
            let wave = first.wave.as_ref().expect("the wave's evidence");
            assert_eq!((wave.metric.as_str(), wave.wave), ("cpu_percent", 1));
            assert!(wave.z > wave.threshold && wave.vms >= 3, "{wave:?}");
            assert!(first.reason.contains("VMs together"), "{}", first.reason);
            // Every patched VM goes back, not only the worst.
            assert_eq!(s.vms_rolled_back, s.vms_patched, "{s:?}");
            // The VMs' own verdicts alone let it past the canary stage.
            let s = rollout(&alone, seed);
            assert!(s.left_canary_stage, "seed {seed} without the wave: {s:?}");
        }
    }

    #[test]
    fn the_canary_stage_is_two_waves_of_the_size_asked() {
        let config = with_canary(&Config::default_config(), 30, 90);
        let sizes: Vec<String> = config.rollout.waves.iter().map(|w| w.to_string()).collect();
        assert_eq!(sizes, ["6", "30", "25%", "100%"]);
        assert_eq!(config.rollout.canary_waves, 2);
        assert_eq!(
            (
                config.rollout.first_bake_minutes,
                config.rollout.bake_minutes
            ),
            (90, 45)
        );
    }
}
