//! The simulated fleet as the rollout actor's actuator.

use crate::rollout::actuator::{Actuator, ActuatorError};
use crate::simulator::FleetSimulator;
use crate::simulator::PatchQuality;
use bellwether_schemas::{PatchCommand, RollbackCommand};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The simulated fleet as an actuator (the embedded demo).
#[derive(Clone)]
pub struct SimulatorActuator {
    fleet: Arc<Mutex<FleetSimulator>>,
    /// Rollouts whose patch is not the fleet's, with its quality.
    qualities: HashMap<String, PatchQuality>,
}

impl SimulatorActuator {
    /// Acts on `fleet`: every rollout's patch is of the fleet's quality.
    pub fn new(fleet: Arc<Mutex<FleetSimulator>>) -> SimulatorActuator {
        SimulatorActuator {
            fleet,
            qualities: HashMap::new(),
        }
    }

    /// Rollout `rollout_id`'s patch is of `quality` (rollouts side by side).
    pub fn with_quality(mut self, rollout_id: &str, quality: PatchQuality) -> SimulatorActuator {
        self.qualities.insert(rollout_id.to_string(), quality);
        self
    }

    fn with_fleet<R>(&self, f: impl FnOnce(&mut FleetSimulator) -> R) -> R {
        let mut fleet = self.fleet.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut fleet)
    }
}

impl Actuator for SimulatorActuator {
    fn patch(&mut self, command: &PatchCommand) -> Result<(), ActuatorError> {
        let quality = self.qualities.get(&command.rollout_id).copied();
        self.with_fleet(|f| match quality {
            Some(q) => f.patch_with(&command.vm_id, command.issued_at, q),
            None => f.patch(&command.vm_id, command.issued_at),
        })
        .map_err(|e| ActuatorError {
            command: "patch",
            vm_id: command.vm_id.clone(),
            reason: e.to_string(),
        })
    }

    fn roll_back(&mut self, command: &RollbackCommand) -> Result<(), ActuatorError> {
        self.with_fleet(|f| f.roll_back(&command.vm_id, command.issued_at))
            .map_err(|e| ActuatorError {
                command: "rollback",
                vm_id: command.vm_id.clone(),
                reason: e.to_string(),
            })
    }
}
