//! The shell actuator: runs a command template per patch and rollback
//! (`sh -c`), e.g. `ssh {vm_id} sudo apt-get install -y {patch_id}`. The
//! placeholders `{vm_id}`, `{patch_id}`, `{rollout_id}` and `{command_id}`
//! are replaced by their values single-quoted for the shell, so a value
//! cannot run code of its own. A non-zero exit or a timeout fails the
//! command, with the end of its error output as the reason.

use super::actuator::{Actuation, Actuator, ActuatorError, in_pool};
use super::config::ShellConfig;
use bellwether_schemas::{PatchCommand, RollbackCommand};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `value` single-quoted for `sh`.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// `template` with its placeholders replaced by quoted values.
pub fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), &quote(value));
    }
    out
}

/// Runs command templates.
pub struct ShellActuator {
    config: ShellConfig,
    workers: usize,
}

impl ShellActuator {
    /// An actuator running `config`'s templates, one at a time.
    pub fn new(config: ShellConfig) -> ShellActuator {
        ShellActuator { config, workers: 1 }
    }

    /// Runs up to `workers` commands at once (`actor.workers`).
    pub fn with_workers(mut self, workers: usize) -> ShellActuator {
        self.workers = workers.max(1);
        self
    }

    fn script<'c>(&self, command: Actuation<'c>) -> (&'static str, &'c str, String) {
        match command {
            Actuation::Patch(c) => (
                "patch",
                &c.vm_id,
                render(
                    &self.config.patch,
                    &[
                        ("vm_id", &c.vm_id),
                        ("patch_id", &c.patch_id),
                        ("rollout_id", &c.rollout_id),
                        ("command_id", &c.command_id.0),
                    ],
                ),
            ),
            Actuation::Rollback(c) => (
                "rollback",
                &c.vm_id,
                render(
                    &self.config.rollback,
                    &[
                        ("vm_id", &c.vm_id),
                        ("rollout_id", &c.rollout_id),
                        ("command_id", &c.command_id.0),
                    ],
                ),
            ),
        }
    }

    fn carry(&self, command: Actuation<'_>) -> Result<(), ActuatorError> {
        let (action, vm_id, script) = self.script(command);
        self.run(action, vm_id, &script)
    }

    fn run(&self, action: &'static str, vm_id: &str, script: &str) -> Result<(), ActuatorError> {
        let fail = |reason: String| ActuatorError {
            command: action,
            vm_id: vm_id.to_string(),
            reason,
        };
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("cannot start sh: {e}")))?;
        // Read while it runs: a full pipe would stall the command.
        let reader = child.stderr.take().map(|mut e| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = e.read_to_string(&mut text);
                text
            })
        });
        let limit = Duration::from_secs_f64(self.config.timeout_secs);
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() >= limit => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(fail(format!(
                        "timed out after {} s: {script}",
                        self.config.timeout_secs
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(fail(e.to_string())),
            }
        };
        if status.success() {
            tracing::info!(vm = vm_id, action, "shell command succeeded");
            return Ok(());
        }
        let stderr = reader.and_then(|r| r.join().ok()).unwrap_or_default();
        let stderr = stderr.trim();
        let tail = &stderr[stderr.floor_char_boundary(stderr.len().saturating_sub(300))..];
        Err(fail(format!("`{script}` exited with {status}: {tail}")))
    }
}

impl Actuator for ShellActuator {
    fn patch(&mut self, c: &PatchCommand) -> Result<(), ActuatorError> {
        self.carry(Actuation::Patch(c))
    }

    fn roll_back(&mut self, c: &RollbackCommand) -> Result<(), ActuatorError> {
        self.carry(Actuation::Rollback(c))
    }

    fn carry_out_all(
        &mut self,
        commands: &[Actuation<'_>],
        in_flight: usize,
    ) -> Vec<Result<(), ActuatorError>> {
        let this = &*self;
        in_pool(commands, in_flight.min(this.workers), |c| this.carry(*c))
    }
}
