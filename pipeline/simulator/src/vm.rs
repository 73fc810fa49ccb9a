//! One simulated VM: its levels, its daily cycle, its noise, its patch state.

use super::event::FleetEvent;
use super::fault::{CRASH_DOWN_MINUTES, CRASH_MEMORY_PERCENT, FaultKind, Readings};
use super::fleet::region_utc_offset_hours;
use super::{PatchQuality, REBOOT_MINUTES};
use bellwether_schemas::{EventTime, VmRecord};
use rand::Rng;
use rand::rngs::StdRng;
use rand_distr::StandardNormal;
use std::f64::consts::TAU;

/// AR(1) persistence and innovation size of each metric's noise
/// (cpu, memory, disk, latency, response, errors, success).
const NOISE: [(f64, f64); 7] = [
    (0.7, 1.5),
    (0.95, 0.25),
    (0.5, 0.06),
    (0.6, 0.05),
    (0.6, 0.04),
    (0.5, 0.04),
    (0.3, 0.05),
];

/// A VM's own levels.
#[derive(Debug, Clone, Copy)]
struct Levels {
    cpu: f64,
    memory: f64,
    disk: f64,
    latency: f64,
    response: f64,
    errors: f64,
    /// Depth of the daily load cycle.
    amplitude: f64,
}

pub(super) struct SimVm {
    pub record: VmRecord,
    pub affected: bool,
    rng: StdRng,
    utc_offset_hours: f64,
    levels: Levels,
    noise: [f64; 7],
    load_noise: f64,
    patched_at: Option<i64>,
    /// The quality of the patch it runs, when not the fleet's.
    patch_quality: Option<PatchQuality>,
    down_until: i64,
    leak_since: i64,
    crashed_at: Option<i64>,
}

impl SimVm {
    pub fn new(
        record: VmRecord,
        index: usize,
        affected: bool,
        high_memory: bool,
        mut rng: StdRng,
    ) -> SimVm {
        let mut u = |lo: f64, hi: f64| rng.random_range(lo..hi);
        let (cpu, response) = match record.tags.get("role").map(String::as_str) {
            Some("db") => (u(25.0, 45.0), u(8.0, 25.0)),
            Some("cache") => (u(15.0, 30.0), u(40.0, 60.0)),
            Some("worker") => (u(40.0, 60.0), u(200.0, 500.0)),
            Some("api") => (u(30.0, 50.0), u(50.0, 120.0)),
            _ => (u(25.0, 50.0), u(80.0, 180.0)),
        };
        let levels = Levels {
            cpu,
            memory: if high_memory {
                u(82.0, 90.0)
            } else {
                u(35.0, 60.0)
            },
            disk: u(30.0, 180.0),
            latency: u(0.8, 3.0),
            response,
            errors: u(0.1, 0.7),
            amplitude: u(0.2, 0.45),
        };
        SimVm {
            utc_offset_hours: region_utc_offset_hours(&record.region, index),
            record,
            affected,
            rng,
            levels,
            noise: [0.0; 7],
            load_noise: 0.0,
            patched_at: None,
            patch_quality: None,
            down_until: i64::MIN,
            leak_since: 0,
            crashed_at: None,
        }
    }

    pub fn is_patched(&self) -> bool {
        self.patched_at.is_some()
    }

    pub fn patch(&mut self, t: i64, quality: Option<PatchQuality>) {
        self.patched_at = Some(t);
        self.patch_quality = quality;
        self.down_until = t + REBOOT_MINUTES * EventTime::MINUTE_MS;
        self.leak_since = self.down_until;
    }

    pub fn roll_back(&mut self, t: i64) {
        self.patched_at = None;
        self.patch_quality = None;
        self.down_until = t + REBOOT_MINUTES * EventTime::MINUTE_MS;
    }

    /// A crash that happened at the last sample, once.
    pub fn take_crash(&mut self) -> Option<i64> {
        self.crashed_at.take()
    }

    /// The VM's readings at `t` with their sample time, or `None` while it
    /// is down; `world` lists the fleet events reaching it now, each with
    /// its strength; `fault_size` sizes a bad patch's fault (none: its
    /// default).
    pub fn sample(
        &mut self,
        t: i64,
        quality: PatchQuality,
        fault_size: Option<f64>,
        world: &[(&FleetEvent, f64)],
    ) -> Option<(i64, [f64; 7])> {
        // Noise advances whether or not the VM is up, so a VM's metrics do not
        // depend on when other things happened to it.
        for (state, (phi, sigma)) in self.noise.iter_mut().zip(NOISE) {
            let shock: f64 = self.rng.sample(StandardNormal);
            *state = phi * *state + sigma * shock;
        }
        let shock: f64 = self.rng.sample(StandardNormal);
        self.load_noise = 0.95 * self.load_noise + 0.01 * shock;
        let jitter = self.rng.random_range(0..3_000);
        if t < self.down_until {
            return None;
        }

        let l = self.levels;
        let n = self.noise;
        let local_hours =
            (t as f64 / EventTime::HOUR_MS as f64 + self.utc_offset_hours).rem_euclid(24.0);
        let load = 1.0 + l.amplitude * (TAU * (local_hours - 9.0) / 24.0).sin() + self.load_noise;
        let cpu = l.cpu * load + n[0];
        let latency = l.latency * (1.0 + 0.2 * (load - 1.0) + n[3]);
        let saturation = ((cpu - 75.0) / 25.0).max(0.0);
        let errors = (l.errors * (1.0 + 0.5 * (load - 1.0)) + n[5]).max(0.0);
        let mut r = Readings {
            cpu,
            memory: l.memory + 4.0 * (load - 1.0) + n[1],
            disk: l.disk * load * (1.0 + n[2]),
            latency,
            response: l.response
                * (1.0 + 0.3 * (load - 1.0))
                * (1.0 + 0.8 * saturation)
                * (1.0 + n[4])
                + 3.0 * latency,
            errors,
            success: 100.0 - 1.1 * errors - n[6].abs(),
        };
        for (event, strength) in world {
            event.apply(&mut r, *strength);
        }

        if let Some(patched_at) = self.patched_at {
            let minutes = (t - patched_at - REBOOT_MINUTES * EventTime::MINUTE_MS) as f64
                / EventTime::MINUTE_MS as f64;
            match self.patch_quality.unwrap_or(quality) {
                PatchQuality::Good => {
                    r.cpu *= 0.98;
                    r.response *= 0.97;
                }
                PatchQuality::Bad(kind) if self.affected => {
                    let leak_minutes = (t - self.leak_since) as f64 / EventTime::MINUTE_MS as f64;
                    kind.apply(&mut r, minutes, leak_minutes, fault_size);
                    if kind == FaultKind::MemoryLeak && r.memory >= CRASH_MEMORY_PERCENT {
                        self.crashed_at = Some(t);
                        self.down_until =
                            t + (CRASH_DOWN_MINUTES * EventTime::MINUTE_MS as f64) as i64;
                        self.leak_since = self.down_until;
                        return None;
                    }
                }
                PatchQuality::Bad(_) => {}
            }
        }

        let values = [
            r.cpu.clamp(0.0, 100.0),
            r.memory.clamp(0.0, 100.0),
            r.disk.max(0.0),
            r.latency.max(0.05),
            r.response.max(0.1),
            r.errors.clamp(0.0, 100.0),
            r.success.clamp(0.0, 100.0),
        ];
        Some((t + jitter, values))
    }
}
