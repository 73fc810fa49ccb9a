//! The simulated fleet: the embedded default source of metrics, and the
//! actuator of the embedded demo.
//!
//! Every VM has its own levels, a daily load cycle in its region's local
//! time, autocorrelated noise, and metrics that move together (load drives
//! CPU, disk and response time; CPU saturation slows responses; errors eat
//! into transaction success). A patch reboots a VM (two minutes without
//! samples); a bad patch breaks a seeded share of the VMs it touches with one
//! [`FaultKind`]; a rollback reboots the VM into its pre-patch self.

#![warn(missing_docs)]

pub mod config;
mod event;
mod fault;
pub mod fleet;
mod vm;

pub use event::{EventKind, FleetEvent, MAX_EVENTS};
pub use fault::FaultKind;

use crate::config::{FleetConfig, SimulationConfig};
use arrow::array::{ArrayRef, DictionaryArray, RecordBatch, StringArray};
use arrow::datatypes::{UInt16Type, UInt32Type};
use bellwether_schemas::metric::{names, sample_batch};
use bellwether_schemas::{EventTime, VmRecord};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use thiserror::Error;
use vm::SimVm;

/// Whether the patch being rolled out is good or bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PatchQuality {
    /// Works everywhere (with a slight, harmless improvement).
    Good,
    /// Breaks a share of the VMs it touches in this way.
    Bad(FaultKind),
}

/// A VM crash: memory ran out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrashEvent {
    /// The VM.
    pub vm_id: String,
    /// When it crashed.
    pub time: EventTime,
}

/// A command the simulator cannot carry out.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SimulatorError {
    /// No VM with that id.
    #[error("no VM `{0}` in the simulated fleet")]
    UnknownVm(String),
}

/// Fleet time at which every simulated fleet starts (the demo, `simulate`,
/// generated training data): Monday 2026-11-02 00:00 UTC.
pub const DEMO_START: EventTime = EventTime(1_793_577_600_000);

/// Minutes a VM is down while a patch or rollback reboots it.
pub const REBOOT_MINUTES: i64 = 2;

/// The simulated fleet.
pub struct FleetSimulator {
    vms: Vec<SimVm>,
    index: HashMap<String, usize>,
    quality: PatchQuality,
    /// A bad patch's fault size (`simulation.fault_size`).
    fault_size: Option<f64>,
    partitions: usize,
    vm_dictionaries: Vec<ArrayRef>,
    partition_key: Vec<(usize, u32)>,
    metric_dictionary: ArrayRef,
    crashes: Vec<CrashEvent>,
    /// Fleet events, and per VM a bit for each event that reaches it.
    events: Vec<FleetEvent>,
    reached_by: Vec<u64>,
    /// When the patch is approved: events start relative to it.
    patch_at: Option<EventTime>,
}

impl FleetSimulator {
    /// A fleet as configured, rolling out a patch of the given quality.
    pub fn new(
        fleet: &FleetConfig,
        simulation: &SimulationConfig,
        quality: PatchQuality,
    ) -> FleetSimulator {
        let seed = simulation.seed;
        let inventory = crate::fleet::generate_inventory(fleet, seed);
        let partitions = simulation.partitions.max(1);
        let mut per_partition: Vec<Vec<String>> = vec![Vec::new(); partitions];
        let mut partition_key = Vec::with_capacity(inventory.len());
        for (i, vm) in inventory.iter().enumerate() {
            let p = i % partitions;
            partition_key.push((p, per_partition[p].len() as u32));
            per_partition[p].push(vm.id.clone());
        }
        let vms: Vec<SimVm> = inventory
            .into_iter()
            .enumerate()
            .map(|(i, record)| {
                let mut rng = StdRng::seed_from_u64(
                    seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i as u64 + 1),
                );
                let affected = rand::Rng::random::<f64>(&mut rng) < simulation.affected_share;
                // Every n-th VM, so the share draws nothing from the rng.
                let every = (1.0 / simulation.high_memory_share.max(1e-9))
                    .round()
                    .clamp(1.0, 1e9) as usize;
                let high_memory = simulation.high_memory_share > 0.0 && i % every == every - 1;
                SimVm::new(record, i, affected, high_memory, rng)
            })
            .collect();
        let events: Vec<FleetEvent> = simulation.events.iter().take(MAX_EVENTS).cloned().collect();
        let first_region = fleet.regions.first().map_or("", String::as_str);
        let reached_by = vms
            .iter()
            .map(|vm| {
                events
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| e.reaches(&vm.record, first_region))
                    .fold(0u64, |bits, (i, _)| bits | 1 << i)
            })
            .collect();
        FleetSimulator {
            events,
            reached_by,
            patch_at: None,
            index: vms
                .iter()
                .enumerate()
                .map(|(i, v)| (v.record.id.clone(), i))
                .collect(),
            vms,
            quality,
            fault_size: simulation.fault_size,
            partitions,
            vm_dictionaries: per_partition
                .into_iter()
                .map(|ids| Arc::new(StringArray::from(ids)) as ArrayRef)
                .collect(),
            partition_key,
            metric_dictionary: Arc::new(StringArray::from(names::ALL.to_vec())),
            crashes: Vec::new(),
        }
    }

    /// Sets when the patch is approved: fleet events start relative to it
    /// (none happens before this is known).
    pub fn set_patch_time(&mut self, at: EventTime) {
        self.patch_at = Some(at);
    }

    /// The fleet events, and whether `vm_id` is reached by each.
    pub fn events(&self) -> &[FleetEvent] {
        &self.events
    }

    /// The fleet's inventory.
    pub fn inventory(&self) -> Vec<VmRecord> {
        self.vms.iter().map(|v| v.record.clone()).collect()
    }

    /// Number of metric partitions.
    pub fn partitions(&self) -> usize {
        self.partitions
    }

    /// The quality of the patch.
    pub fn quality(&self) -> PatchQuality {
        self.quality
    }

    /// Samples of every VM that is up at `time`, one batch per partition
    /// (long schema, one row per VM and metric).
    pub fn tick(&mut self, time: EventTime) -> Vec<RecordBatch> {
        let mut keys: Vec<Vec<u32>> = vec![Vec::new(); self.partitions];
        let mut metrics: Vec<Vec<u16>> = vec![Vec::new(); self.partitions];
        let mut times: Vec<Vec<i64>> = vec![Vec::new(); self.partitions];
        let mut values: Vec<Vec<f64>> = vec![Vec::new(); self.partitions];
        let minutes = self
            .patch_at
            .map(|p| (time.0 - p.0) as f64 / EventTime::MINUTE_MS as f64);
        let strengths: Vec<f64> = self
            .events
            .iter()
            .map(|e| minutes.map_or(0.0, |m| e.strength(m)))
            .collect();
        let mut world = Vec::new();
        for (i, vm) in self.vms.iter_mut().enumerate() {
            world.clear();
            world.extend(
                self.events
                    .iter()
                    .zip(&strengths)
                    .enumerate()
                    .filter(|(e, (_, s))| **s > 0.0 && self.reached_by[i] & (1 << e) != 0)
                    .map(|(_, (event, s))| (event, *s)),
            );
            let Some((sample_time, readings)) =
                vm.sample(time.0, self.quality, self.fault_size, &world)
            else {
                if let Some(crash) = vm.take_crash() {
                    self.crashes.push(CrashEvent {
                        vm_id: vm.record.id.clone(),
                        time: EventTime(crash),
                    });
                }
                continue;
            };
            let (p, key) = self.partition_key[i];
            for (m, value) in readings.into_iter().enumerate() {
                keys[p].push(key);
                metrics[p].push(m as u16);
                times[p].push(sample_time);
                values[p].push(value);
            }
        }
        (0..self.partitions)
            .map(|p| {
                let vm_ids = DictionaryArray::<UInt32Type>::try_new(
                    std::mem::take(&mut keys[p]).into(),
                    self.vm_dictionaries[p].clone(),
                );
                let metric = DictionaryArray::<UInt16Type>::try_new(
                    std::mem::take(&mut metrics[p]).into(),
                    self.metric_dictionary.clone(),
                );
                match (vm_ids, metric) {
                    (Ok(vm_ids), Ok(metric)) => sample_batch(
                        vm_ids,
                        std::mem::take(&mut times[p]),
                        metric,
                        std::mem::take(&mut values[p]),
                    ),
                    (Err(e), _) | (_, Err(e)) => Err(e.into()),
                }
                // Keys index dictionaries built above from the same fleet: a
                // failure here is a defect in this file, not bad input.
                .unwrap_or_else(|e| panic!("simulator built an invalid sample batch: {e}"))
            })
            .collect()
    }

    /// Patches `vm_id` at `time`: it reboots, and a bad patch breaks it if it is affected.
    pub fn patch(&mut self, vm_id: &str, time: EventTime) -> Result<(), SimulatorError> {
        let vm = self.vm_mut(vm_id)?;
        vm.patch(time.0, None);
        Ok(())
    }

    /// Patches `vm_id` at `time` with a patch of `quality` rather than the
    /// fleet's (another rollout's patch, rolled out beside it).
    pub fn patch_with(
        &mut self,
        vm_id: &str,
        time: EventTime,
        quality: PatchQuality,
    ) -> Result<(), SimulatorError> {
        let vm = self.vm_mut(vm_id)?;
        vm.patch(time.0, Some(quality));
        Ok(())
    }

    /// Rolls `vm_id` back at `time`: it reboots into its pre-patch self.
    pub fn roll_back(&mut self, vm_id: &str, time: EventTime) -> Result<(), SimulatorError> {
        let vm = self.vm_mut(vm_id)?;
        vm.roll_back(time.0);
        Ok(())
    }

    /// True when `vm_id` currently runs the patch.
    pub fn is_patched(&self, vm_id: &str) -> bool {
        self.index
            .get(vm_id)
            .is_some_and(|&i| self.vms[i].is_patched())
    }

    /// Ground truth: the VMs a bad patch breaks (empty for a good patch).
    pub fn affected_vms(&self) -> Vec<String> {
        match self.quality {
            PatchQuality::Good => Vec::new(),
            PatchQuality::Bad(_) => self
                .vms
                .iter()
                .filter(|v| v.affected)
                .map(|v| v.record.id.clone())
                .collect(),
        }
    }

    /// Ground truth: every crash so far.
    pub fn crashes(&self) -> &[CrashEvent] {
        &self.crashes
    }

    fn vm_mut(&mut self, vm_id: &str) -> Result<&mut SimVm, SimulatorError> {
        let i = *self
            .index
            .get(vm_id)
            .ok_or_else(|| SimulatorError::UnknownVm(vm_id.to_string()))?;
        Ok(&mut self.vms[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use arrow::datatypes::Float64Type;

    fn fleet(quality: PatchQuality) -> FleetSimulator {
        let (mut fleet, simulation) = crate::config::defaults();
        fleet.vms = 40;
        FleetSimulator::new(&fleet, &simulation, quality)
    }

    fn mean_of(sim: &mut FleetSimulator, vm: &str, metric: usize, from: i64, minutes: i64) -> f64 {
        let slot = sim.index[vm];
        let (p, key) = sim.partition_key[slot];
        let mut sum = 0.0;
        let mut n = 0.0;
        for m in 0..minutes {
            let batches = sim.tick(EventTime(from + m * 60_000));
            let b = &batches[p];
            let vms = b.column(0).as_dictionary::<UInt32Type>().keys().clone();
            let ms = b.column(2).as_dictionary::<UInt16Type>().keys().clone();
            let vs = b.column(3).as_primitive::<Float64Type>();
            for r in 0..b.num_rows() {
                if vms.value(r) == key && ms.value(r) as usize == metric {
                    sum += vs.value(r);
                    n += 1.0;
                }
            }
        }
        sum / n
    }

    #[test]
    fn the_same_seed_gives_the_same_fleet_and_metrics() {
        let mut a = fleet(PatchQuality::Good);
        let mut b = fleet(PatchQuality::Good);
        assert_eq!(a.inventory(), b.inventory());
        assert_eq!(a.tick(EventTime(0)), b.tick(EventTime(0)));
    }

    #[test]
    fn every_up_vm_reports_every_metric_each_tick() {
        let mut sim = fleet(PatchQuality::Good);
        let rows: usize = sim.tick(EventTime(0)).iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 40 * names::ALL.len());
    }

    #[test]
    fn a_bad_patch_hurts_an_affected_vm_and_a_rollback_heals_it() {
        let mut sim = fleet(PatchQuality::Bad(FaultKind::LatencyRegression));
        let vm = sim.affected_vms()[0].clone();
        let rt = 4; // response_time_ms
        let before = mean_of(&mut sim, &vm, rt, 0, 30);
        sim.patch(&vm, EventTime(30 * 60_000)).unwrap();
        let during = mean_of(&mut sim, &vm, rt, 40 * 60_000, 20);
        sim.roll_back(&vm, EventTime(60 * 60_000)).unwrap();
        let after = mean_of(&mut sim, &vm, rt, 65 * 60_000, 20);
        assert!(during > before * 1.4, "patched {during} vs before {before}");
        assert!(
            (after / before - 1.0).abs() < 0.2,
            "rolled back {after} vs before {before}"
        );
    }

    #[test]
    fn a_vm_runs_the_quality_of_the_patch_it_was_given() {
        // A bad fleet patch; the same VM given a good patch instead (a
        // rollout beside it) stays healthy.
        let mut sim = fleet(PatchQuality::Bad(FaultKind::LatencyRegression));
        let vm = sim.affected_vms()[0].clone();
        let rt = 4; // response_time_ms
        let before = mean_of(&mut sim, &vm, rt, 0, 30);
        sim.patch_with(&vm, EventTime(30 * 60_000), PatchQuality::Good)
            .unwrap();
        let good = mean_of(&mut sim, &vm, rt, 40 * 60_000, 20);
        sim.patch(&vm, EventTime(60 * 60_000)).unwrap();
        let bad = mean_of(&mut sim, &vm, rt, 70 * 60_000, 20);
        assert!(good < before * 1.1, "good patch {good} vs before {before}");
        assert!(
            bad > before * 1.4,
            "fleet's bad patch {bad} vs before {before}"
        );
    }

    #[test]
    fn a_memory_leak_ends_in_a_crash_and_the_vm_goes_silent() {
        let mut sim = fleet(PatchQuality::Bad(FaultKind::MemoryLeak));
        let vm = sim.affected_vms()[0].clone();
        sim.patch(&vm, EventTime(0)).unwrap();
        for m in 0..200 {
            sim.tick(EventTime(m * 60_000));
        }
        let crash = sim
            .crashes()
            .iter()
            .find(|c| c.vm_id == vm)
            .expect("the leak crashes the VM");
        assert!(
            crash.time.0 > 30 * 60_000,
            "memory climbs for a while before the crash"
        );
    }

    #[test]
    fn a_sized_fault_adds_its_size_to_every_affected_vm() {
        let (mut fleet, mut simulation) = crate::config::defaults();
        fleet.vms = 40;
        let mut good = FleetSimulator::new(&fleet, &simulation, PatchQuality::Good);
        simulation.fault_size = Some(0.5);
        let mut bad = FleetSimulator::new(
            &fleet,
            &simulation,
            PatchQuality::Bad(FaultKind::ErrorRateRise),
        );
        let vm = bad.affected_vms()[0].clone();
        let errors = 5; // error_rate_percent
        good.patch(&vm, EventTime(0)).unwrap();
        bad.patch(&vm, EventTime(0)).unwrap();
        // The same seed: the same noise; after the reboot and the ramp,
        // the bad patch's VM sits 0.5 points higher.
        let rise = mean_of(&mut bad, &vm, errors, 20 * 60_000, 30)
            - mean_of(&mut good, &vm, errors, 20 * 60_000, 30);
        assert!((rise - 0.5).abs() < 0.05, "{rise}");
    }

    #[test]
    fn commands_for_unknown_vms_are_refused() {
        let mut sim = fleet(PatchQuality::Good);
        assert_eq!(
            sim.patch("vm-nope", EventTime(0)),
            Err(SimulatorError::UnknownVm("vm-nope".into()))
        );
    }
}
