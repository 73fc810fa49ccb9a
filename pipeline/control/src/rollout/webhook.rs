//! The webhook actuator: every patch and rollback command is POSTed as JSON
//! to the user's endpoint (their deployment system), signed with HMAC-SHA256
//! so the endpoint can check it came from bellwether, retried with
//! exponential backoff on network errors, timeouts, 429 and 5xx answers.
//!
//! Headers: `X-Bellwether-Signature: sha256=<hex of HMAC-SHA256(secret,
//! body)>`, `X-Bellwether-Command-Id` (the same on every retry: the
//! endpoint's idempotency key), `X-Bellwether-Attempt` (1, 2, ...).

use super::actuator::{Actuation, Actuator, ActuatorError, in_pool};
use super::config::WebhookConfig;
use bellwether_schemas::{PatchCommand, RollbackCommand};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use std::time::Duration;

/// The signature header's value of `body` under `secret`: `sha256=<hex>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The JSON body of a call.
#[derive(Serialize)]
struct Call<'a, C: Serialize> {
    /// `patch` or `rollback`.
    action: &'static str,
    vm_id: &'a str,
    command_id: &'a str,
    rollout_id: &'a str,
    /// The whole command, as on the control topic.
    command: &'a C,
}

/// POSTs commands to a webhook.
pub struct WebhookActuator {
    config: WebhookConfig,
    agent: ureq::Agent,
    workers: usize,
}

impl WebhookActuator {
    /// An actuator calling `config.url`.
    pub fn new(config: WebhookConfig) -> WebhookActuator {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs_f64(config.timeout_secs)))
            .http_status_as_error(false)
            .build()
            .into();
        WebhookActuator {
            config,
            agent,
            workers: 1,
        }
    }

    /// Makes up to `workers` calls at once (`actor.workers`).
    pub fn with_workers(mut self, workers: usize) -> WebhookActuator {
        self.workers = workers.max(1);
        self
    }

    fn carry(&self, command: Actuation<'_>) -> Result<(), ActuatorError> {
        match command {
            Actuation::Patch(c) => self.call("patch", &c.vm_id, &c.command_id.0, &c.rollout_id, c),
            Actuation::Rollback(c) => {
                self.call("rollback", &c.vm_id, &c.command_id.0, &c.rollout_id, c)
            }
        }
    }

    fn call<C: Serialize>(
        &self,
        action: &'static str,
        vm_id: &str,
        command_id: &str,
        rollout_id: &str,
        command: &C,
    ) -> Result<(), ActuatorError> {
        let fail = |reason: String| ActuatorError {
            command: action,
            vm_id: vm_id.to_string(),
            reason,
        };
        let body = serde_json::to_vec(&Call {
            action,
            vm_id,
            command_id,
            rollout_id,
            command,
        })
        .map_err(|e| fail(e.to_string()))?;
        let signature = signature(&self.config.secret, &body);
        let attempts = self.config.retries + 1;
        let mut last = String::new();
        for attempt in 1..=attempts {
            let sent = self
                .agent
                .post(&self.config.url)
                .header("Content-Type", "application/json")
                .header("X-Bellwether-Signature", &signature)
                .header("X-Bellwether-Command-Id", command_id)
                .header("X-Bellwether-Attempt", &attempt.to_string())
                .send(&body[..]);
            let retry = match sent {
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    if (200..300).contains(&status) {
                        tracing::info!(vm = vm_id, action, attempt, "webhook accepted the command");
                        return Ok(());
                    }
                    let text = response
                        .body_mut()
                        .read_to_string()
                        .unwrap_or_default()
                        .chars()
                        .take(200)
                        .collect::<String>();
                    last = format!("{} answered {status}: {text}", self.config.url);
                    status == 429 || status >= 500
                }
                Err(e) => {
                    last = format!("{}: {e}", self.config.url);
                    true
                }
            };
            if !retry {
                break;
            }
            if attempt < attempts {
                let wait = self
                    .config
                    .backoff_ms
                    .saturating_mul(1 << (attempt - 1).min(16));
                tracing::warn!(
                    vm = vm_id,
                    action,
                    attempt,
                    wait_ms = wait,
                    "webhook call failed, retrying: {last}"
                );
                std::thread::sleep(Duration::from_millis(wait));
            }
        }
        Err(fail(format!("after {attempts} attempt(s): {last}")))
    }
}

impl Actuator for WebhookActuator {
    fn patch(&mut self, command: &PatchCommand) -> Result<(), ActuatorError> {
        self.carry(Actuation::Patch(command))
    }

    fn roll_back(&mut self, command: &RollbackCommand) -> Result<(), ActuatorError> {
        self.carry(Actuation::Rollback(command))
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
