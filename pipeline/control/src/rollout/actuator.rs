//! Actuators carry out patch and rollback commands on VMs (the simulated
//! fleet's is `demo::SimulatorActuator`: the actor knows no simulator).

use bellwether_schemas::{PatchCommand, RollbackCommand};
use thiserror::Error;

/// An actuator could not carry out a command.
#[derive(Debug, Error)]
#[error("{command} on {vm_id} failed: {reason}")]
pub struct ActuatorError {
    /// `patch` or `rollback`.
    pub command: &'static str,
    /// The VM.
    pub vm_id: String,
    /// Why.
    pub reason: String,
}

/// Carries out commands.
pub trait Actuator {
    /// Deploys the patch to the command's VM.
    fn patch(&mut self, command: &PatchCommand) -> Result<(), ActuatorError>;
    /// Rolls the command's VM back.
    fn roll_back(&mut self, command: &RollbackCommand) -> Result<(), ActuatorError>;
}

impl<T: Actuator + ?Sized> Actuator for Box<T> {
    fn patch(&mut self, command: &PatchCommand) -> Result<(), ActuatorError> {
        (**self).patch(command)
    }

    fn roll_back(&mut self, command: &RollbackCommand) -> Result<(), ActuatorError> {
        (**self).roll_back(command)
    }
}

/// The actuator `config` names (`actor.actuator`).
pub fn from_config(config: &super::config::ActorConfig) -> Box<dyn Actuator + Send> {
    use super::config::ActuatorKind;
    match config.actuator {
        ActuatorKind::Agents => Box::new(AgentsActuator),
        // validate() made sure the section of the kind is there.
        ActuatorKind::Webhook => Box::new(super::webhook::WebhookActuator::new(
            config.webhook.clone().unwrap_or_default(),
        )),
        ActuatorKind::Shell => Box::new(super::shell::ShellActuator::new(
            config.shell.clone().unwrap_or_default(),
        )),
    }
}

/// The `agents` actuator: the actor publishes an execution record on the
/// control topic for every command it carries out, and the agents on the
/// VMs (`bellwether simulate` for the simulated fleet) obey those records.
/// Handing the command over is all this actuator does, so it cannot fail.
#[derive(Debug, Clone, Copy, Default)]
pub struct AgentsActuator;

impl Actuator for AgentsActuator {
    fn patch(&mut self, command: &PatchCommand) -> Result<(), ActuatorError> {
        tracing::info!(vm = %command.vm_id, wave = command.wave + 1, "patch handed to the VM's agent");
        Ok(())
    }

    fn roll_back(&mut self, command: &RollbackCommand) -> Result<(), ActuatorError> {
        tracing::info!(vm = %command.vm_id, critical = command.critical, reason = %command.reason.summary, "rollback handed to the VM's agent");
        Ok(())
    }
}
