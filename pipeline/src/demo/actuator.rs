//! The simulated fleet as the rollout actor's actuator.

use crate::rollout::actuator::{Actuator, ActuatorError};
use crate::simulator::FleetSimulator;
use bellwether_schemas::{PatchCommand, RollbackCommand};
use std::sync::{Arc, Mutex};

/// The simulated fleet as an actuator (the embedded demo).
#[derive(Clone)]
pub struct SimulatorActuator {
    fleet: Arc<Mutex<FleetSimulator>>,
}

impl SimulatorActuator {
    /// Acts on `fleet`.
    pub fn new(fleet: Arc<Mutex<FleetSimulator>>) -> SimulatorActuator {
        SimulatorActuator { fleet }
    }

    fn with_fleet<R>(&self, f: impl FnOnce(&mut FleetSimulator) -> R) -> R {
        let mut fleet = self.fleet.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut fleet)
    }
}

impl Actuator for SimulatorActuator {
    fn patch(&mut self, command: &PatchCommand) -> Result<(), ActuatorError> {
        self.with_fleet(|f| f.patch(&command.vm_id, command.issued_at))
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
