//! Actuators carry out patch and rollback commands on VMs (the simulated
//! fleet's is `demo::SimulatorActuator`: the actor knows no simulator).

use bellwether_schemas::{Action, CommandId, PatchCommand, RollbackCommand};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// One command for an actuator to carry out.
#[derive(Debug, Clone, Copy)]
pub enum Actuation<'a> {
    /// Deploy the patch.
    Patch(&'a PatchCommand),
    /// Roll the VM back.
    Rollback(&'a RollbackCommand),
}

impl Actuation<'_> {
    /// The command's id.
    pub fn command_id(&self) -> &CommandId {
        match self {
            Actuation::Patch(c) => &c.command_id,
            Actuation::Rollback(c) => &c.command_id,
        }
    }

    /// The VM.
    pub fn vm_id(&self) -> &str {
        match self {
            Actuation::Patch(c) => &c.vm_id,
            Actuation::Rollback(c) => &c.vm_id,
        }
    }

    /// What it does.
    pub fn action(&self) -> Action {
        match self {
            Actuation::Patch(_) => Action::Patch,
            Actuation::Rollback(_) => Action::Rollback,
        }
    }
}

/// Carries out commands.
pub trait Actuator {
    /// Deploys the patch to the command's VM.
    fn patch(&mut self, command: &PatchCommand) -> Result<(), ActuatorError>;
    /// Rolls the command's VM back.
    fn roll_back(&mut self, command: &RollbackCommand) -> Result<(), ActuatorError>;

    /// Carries out `commands`, started in their order with at most
    /// `in_flight` running at once; the n-th result is the n-th command's.
    /// One at a time unless the actuator runs a pool of workers (the
    /// webhook and shell actuators do, of `actor.workers`).
    fn carry_out_all(
        &mut self,
        commands: &[Actuation<'_>],
        in_flight: usize,
    ) -> Vec<Result<(), ActuatorError>> {
        let _ = in_flight;
        commands.iter().map(|c| self.carry_out(*c)).collect()
    }

    /// Carries out one command.
    fn carry_out(&mut self, command: Actuation<'_>) -> Result<(), ActuatorError> {
        match command {
            Actuation::Patch(p) => self.patch(p),
            Actuation::Rollback(r) => self.roll_back(r),
        }
    }
}

impl<T: Actuator + ?Sized> Actuator for Box<T> {
    fn patch(&mut self, command: &PatchCommand) -> Result<(), ActuatorError> {
        (**self).patch(command)
    }

    fn roll_back(&mut self, command: &RollbackCommand) -> Result<(), ActuatorError> {
        (**self).roll_back(command)
    }

    fn carry_out_all(
        &mut self,
        commands: &[Actuation<'_>],
        in_flight: usize,
    ) -> Vec<Result<(), ActuatorError>> {
        (**self).carry_out_all(commands, in_flight)
    }
}

/// Runs `work` on every item on up to `workers` threads, the items taken
/// in their order (the first `workers` start first, the next one as soon
/// as any is done); the n-th result is the n-th item's.
pub fn in_pool<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    work: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let workers = workers.clamp(1, items.len().max(1));
    if workers == 1 {
        return items.iter().map(work).collect();
    }
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let result = work(item);
                    *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|r| {
            r.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .expect("every item was worked on")
        })
        .collect()
}

/// The actuator `config` names (`actor.actuator`).
pub fn from_config(config: &super::config::ActorConfig) -> Box<dyn Actuator + Send> {
    use super::config::ActuatorKind;
    match config.actuator {
        ActuatorKind::Agents => Box::new(AgentsActuator),
        // validate() made sure the section of the kind is there.
        ActuatorKind::Webhook => Box::new(
            super::webhook::WebhookActuator::new(config.webhook.clone().unwrap_or_default())
                .with_workers(config.workers),
        ),
        ActuatorKind::Shell => Box::new(
            super::shell::ShellActuator::new(config.shell.clone().unwrap_or_default())
                .with_workers(config.workers),
        ),
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

#[cfg(test)]
mod tests {
    use super::in_pool;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn a_pool_keeps_the_order_of_results_and_its_bound() {
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let items: Vec<usize> = (0..40).collect();
        let out = in_pool(&items, 4, |&i| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            running.fetch_sub(1, Ordering::SeqCst);
            i * 10
        });
        assert_eq!(out, items.iter().map(|i| i * 10).collect::<Vec<_>>());
        let most = most.load(Ordering::SeqCst);
        assert!((2..=4).contains(&most), "{most} at once");
    }
}
