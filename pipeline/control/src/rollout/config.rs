//! Config of rollouts: `[rollout]` (waves, bake times, maintenance window), `[rollback]` and `[actor]` (the actor and its actuators).

use bellwether_schemas::check::Problem;

use crate::rollout::window::{CronSchedule, TimeZoneName};
use bellwether_schemas::WaveSize;
use bellwether_schemas::check::non_empty;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Waves and bake times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutConfig {
    /// Groups whose VMs the canary stage patches first.
    pub canary_groups: Vec<String>,
    /// Cumulative wave sizes: a VM count ("10") or a share of the fleet ("5%").
    pub waves: Vec<WaveSize>,
    /// The first N waves form the canary stage.
    pub canary_waves: usize,
    /// Minutes of fleet time each wave after the first bakes before the
    /// next one starts.
    pub bake_minutes: u32,
    /// Minutes of fleet time the first wave bakes: longer, as it meets the
    /// patch first.
    pub first_bake_minutes: u32,
    /// Minutes after a VM is patched (or rolled back) before it is judged (or
    /// learns again): reboots and cache warm-up are not the patch's fault.
    pub settle_minutes: u32,
    /// A window without metrics from a patched VM (crashed, unreachable):
    /// "halt" the rollout, "wait" (inconclusive: hold the next wave until it
    /// reports again or an operator resumes), or "proceed".
    #[serde(default)]
    pub on_missing_data: OnMissingData,
    /// `listed`: the `waves` sizes; `exponential`: 1, 2, 4, 8, ... VMs per
    /// wave until the whole fleet (the `waves` list is then not used).
    #[serde(default)]
    pub plan: WavePlanKind,
    /// VMs of a wave patched at the same time at most (0: the whole wave
    /// at once); the next VM starts when one is done.
    #[serde(default)]
    pub max_concurrency: usize,
    /// Approved rollouts running at once, at most; the next one approved
    /// waits in a queue until one ends. Rollouts side by side patch disjoint
    /// VMs: a VM in another rollout's wave that has not baked waits for it.
    /// 1: one rollout at a time.
    #[serde(default = "default_max_parallel")]
    pub max_parallel: usize,
    /// Waves start only inside a maintenance window: it opens at each time
    /// the cron expression names, in the time zone, and stays open
    /// `duration_minutes`. A VM of a wave not patched when it closes waits
    /// for the next one. Rollbacks never wait. Unset: any time.
    #[serde(default)]
    pub maintenance_window: Option<MaintenanceWindowConfig>,
    /// VMs of each control cohort (judge.cohort_by) kept unpatched until the
    /// last wave, so every earlier wave is judged against unpatched peers: a
    /// count ("3") or a share of the cohort ("20%"). The last wave patches
    /// them, judged on their own forecasts (no peers are left).
    #[serde(default)]
    pub control_holdback: Option<WaveSize>,
    /// The shifts the canary stage must catch: when set, the canary
    /// stage's size and bake are planned from them and the fleet's measured
    /// noise when a rollout starts (the configured waves until the noise
    /// is measured).
    #[serde(default)]
    pub detect: Option<crate::rollout::detect::DetectConfig>,
}

/// A recurring maintenance window: it opens at each time a cron expression
/// names, in a time zone, and stays open for a while.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindowConfig {
    /// When the window opens: a cron expression, five fields (minute hour
    /// day-of-month month day-of-week), e.g. `"0 2 * * SAT"`.
    #[schemars(with = "String")]
    pub cron: CronSchedule,
    /// The IANA time zone the expression is read in, e.g. `"Europe/Berlin"`.
    #[serde(default = "utc")]
    #[schemars(with = "String")]
    pub timezone: TimeZoneName,
    /// How long the window stays open, minutes.
    pub duration_minutes: u32,
}

fn utc() -> TimeZoneName {
    TimeZoneName::UTC
}

/// How wave sizes are given.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum WavePlanKind {
    /// The cumulative sizes of `rollout.waves`.
    #[default]
    Listed,
    /// Each wave twice the one before: 1, 2, 4, 8, ... VMs.
    Exponential,
}

impl RolloutConfig {
    /// The cumulative wave sizes the plan stands for.
    pub fn wave_sizes(&self) -> Vec<bellwether_schemas::WaveSize> {
        use bellwether_schemas::WaveSize;
        match self.plan {
            WavePlanKind::Listed => self.waves.clone(),
            // Cumulative 1, 3, 7, 15, ...: waves of 1, 2, 4, 8, ... VMs.
            WavePlanKind::Exponential => (1..=30)
                .map(|k| WaveSize::Count((1usize << k) - 1))
                .chain([WaveSize::Percent(100.0)])
                .collect(),
        }
    }
}

/// What missing metrics of a patched VM do to the rollout.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum OnMissingData {
    /// Halt: nothing more is deployed (the safe default).
    #[default]
    Halt,
    /// Inconclusive: hold the next wave until the VM reports again (or an
    /// operator promotes or resumes).
    Wait,
    /// Go on as if the VM were healthy.
    Proceed,
}

/// Order of waiting rollbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RollbackOrder {
    /// Critical VMs first, then the worse anomaly.
    CriticalFirst,
    /// In the order they were detected.
    AsDetected,
}

/// What an anomaly does to the rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnAnomaly {
    /// Roll back the affected VMs and deploy nothing more.
    Halt,
    /// Roll back the affected VMs and go on without them.
    Continue,
    /// Roll back every VM the rollout patched, critical first.
    RollBackAll,
}

/// How far one VM's rollback reaches.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum RollbackScope {
    /// Only the affected VM.
    #[default]
    Vm,
    /// Every patched VM of the affected VM's canary group (outside the
    /// canary groups: of its wave).
    Group,
    /// Every VM the rollout patched.
    Rollout,
}

/// Rollback policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackConfig {
    /// Order of rollbacks waiting at the same time: "critical-first" (then the
    /// worse anomaly) or "as-detected".
    pub order: RollbackOrder,
    /// After an anomaly: "halt" the rollout (roll back the affected VMs, deploy
    /// nothing more), "continue" without the affected VMs, or "roll-back-all"
    /// (every VM the rollout patched, critical first).
    pub on_anomaly: OnAnomaly,
    /// Rollbacks in flight at once at most (capped by `actor.workers`);
    /// never fewer than the most VMs the rollout patched at once
    /// (`rollout.max_concurrency`, or a whole wave), so a rollout rolls
    /// back at least as fast as it patched. Rollbacks are carried out as
    /// soon as they are decided, critical first; they wait for no window.
    pub max_concurrent: usize,
    /// With `on_anomaly = "continue"`: rollbacks the rollout absorbs (a
    /// count, "3", or a share of the VMs it patched, "2%") before it halts.
    /// Unset: no budget.
    #[serde(default)]
    pub error_budget: Option<bellwether_schemas::WaveSize>,
    /// How far one VM's rollback reaches: "vm" (only the affected VM), "group"
    /// (every patched VM of its canary group; outside the canary groups, of its
    /// wave) or "rollout" (every patched VM). Widened rollbacks have trigger
    /// "policy" and name the VM that set them off.
    #[serde(default)]
    pub scope: RollbackScope,
}

/// How the actor carries out commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ActuatorKind {
    /// Publish each executed command on the control topic for the agents on
    /// the VMs (`bellwether simulate` is one) to carry out.
    Agents,
    /// POST each command, HMAC-signed, to `actor.webhook.url`.
    Webhook,
    /// Run `actor.shell.patch` / `actor.shell.rollback` for each command.
    Shell,
}

/// The webhook actuator's endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The endpoint (`http://` or `https://`).
    pub url: String,
    /// The HMAC-SHA256 key of the `X-Bellwether-Signature` header, at
    /// least 16 characters; better from the environment
    /// (`BELLWETHER__ACTOR__WEBHOOK__SECRET`) than from a file.
    pub secret: String,
    /// Seconds one call may take.
    #[serde(default = "webhook_timeout")]
    pub timeout_secs: f64,
    /// Calls after the first on a network error, timeout, 429 or 5xx.
    #[serde(default = "webhook_retries")]
    pub retries: u32,
    /// Wait before the first retry, doubled before each next one.
    #[serde(default = "webhook_backoff")]
    pub backoff_ms: u64,
}

impl Default for WebhookConfig {
    fn default() -> WebhookConfig {
        WebhookConfig {
            url: String::new(),
            secret: String::new(),
            timeout_secs: webhook_timeout(),
            retries: webhook_retries(),
            backoff_ms: webhook_backoff(),
        }
    }
}

fn webhook_timeout() -> f64 {
    10.0
}

fn webhook_retries() -> u32 {
    3
}

fn webhook_backoff() -> u64 {
    500
}

/// The shell actuator's command templates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellConfig {
    /// Run to patch a VM: `{vm_id}`, `{patch_id}`, `{rollout_id}`, `{command_id}`.
    pub patch: String,
    /// Run to roll a VM back: `{vm_id}`, `{rollout_id}`, `{command_id}`.
    pub rollback: String,
    /// Seconds a command may take.
    #[serde(default = "shell_timeout")]
    pub timeout_secs: f64,
}

impl Default for ShellConfig {
    fn default() -> ShellConfig {
        ShellConfig {
            patch: String::new(),
            rollback: String::new(),
            timeout_secs: shell_timeout(),
        }
    }
}

fn default_max_parallel() -> usize {
    4
}

fn default_workers() -> usize {
    32
}

fn shell_timeout() -> f64 {
    600.0
}

/// The rollout actor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActorConfig {
    /// The rollout actor's consumer group on the control topic.
    pub group_id: String,
    /// Where the actor records the commands it executed, so that none is
    /// executed twice, also after a restart.
    pub state_dir: std::path::PathBuf,
    /// "agents": publish each executed command on the control topic for the
    /// agents on the VMs to carry out (`bellwether simulate` is one).
    /// "webhook": POST each command as JSON to [actor.webhook] url, signed
    /// (header X-Bellwether-Signature: sha256=HMAC-SHA256(secret, body)), with
    /// retries and exponential backoff on network errors, 429 and 5xx. "shell":
    /// run [actor.shell] patch / rollback with sh -c; {vm_id}, {patch_id},
    /// {rollout_id} and {command_id} are replaced, shell-quoted. A command the
    /// actuator fails is recorded (rollout event `actuation_failed`); no
    /// execution is published for it, and a failed patch counts against its
    /// wave as an anomaly does (`rollback.on_anomaly`).
    pub actuator: ActuatorKind,
    /// The webhook (with `actuator = "webhook"`).
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
    /// The command templates (with `actuator = "shell"`).
    #[serde(default)]
    pub shell: Option<ShellConfig>,
    /// Commands the webhook and shell actuators carry out at once at most
    /// (their pool of workers). Rollbacks go first, critical first, at most
    /// `rollback.max_concurrent` at once; then patches.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// The fleet's inventory: a JSON array of VM records (`vm_id`, `region`,
    /// `instance_type`, `criticality`, `tags`). Unset: the simulated fleet of
    /// `[fleet]`, which is what `bellwether simulate` runs.
    #[serde(default)]
    pub inventory_file: Option<std::path::PathBuf>,
}

impl ActorConfig {
    /// Checks the actuator's settings: the error names the key.
    pub fn check(&self) -> Result<(), Problem> {
        let a = self;
        if !(1..=1024).contains(&a.workers) {
            return Err(Problem::new(
                "actor.workers",
                format!("{} is not between 1 and 1024", a.workers),
            ));
        }
        match a.actuator {
            ActuatorKind::Agents => {}
            ActuatorKind::Webhook => {
                let Some(w) = &a.webhook else {
                    return Err(Problem::new(
                        "actor.webhook",
                        "actuator = \"webhook\" needs [actor.webhook] with url and secret",
                    ));
                };
                if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                    return Err(Problem::new(
                        "actor.webhook.url",
                        format!("`{}` is not an http:// or https:// URL", w.url),
                    ));
                }
                if w.secret.len() < 16 {
                    return Err(Problem::new(
                        "actor.webhook.secret",
                        "use at least 16 characters (the HMAC key the endpoint checks signatures with)",
                    ));
                }
                if !(w.timeout_secs > 0.0 && w.timeout_secs.is_finite()) {
                    return Err(Problem::new(
                        "actor.webhook.timeout_secs",
                        "must be above 0",
                    ));
                }
            }
            ActuatorKind::Shell => {
                let Some(s) = &a.shell else {
                    return Err(Problem::new(
                        "actor.shell",
                        "actuator = \"shell\" needs [actor.shell] with patch and rollback",
                    ));
                };
                for (key, template) in [
                    ("actor.shell.patch", &s.patch),
                    ("actor.shell.rollback", &s.rollback),
                ] {
                    if template.trim().is_empty() {
                        return Err(Problem::new(key, "an empty command"));
                    }
                }
                if s.rollback.contains("{patch_id}") {
                    return Err(Problem::new(
                        "actor.shell.rollback",
                        "{patch_id} is not known to a rollback (use {vm_id}, {rollout_id}, {command_id})",
                    ));
                }
                if !(s.timeout_secs > 0.0 && s.timeout_secs.is_finite()) {
                    return Err(Problem::new("actor.shell.timeout_secs", "must be above 0"));
                }
            }
        }
        if self.group_id.trim().is_empty() {
            return Err(Problem::new("actor.group_id", "must not be empty"));
        }
        Ok(())
    }
}

impl RolloutConfig {
    /// Checks the waves and the canary stage against the canary `groups` defined: the error names the key.
    pub fn check(&self, groups: &BTreeSet<String>) -> Result<(), Problem> {
        if !(1..=64).contains(&self.max_parallel) {
            return Err(Problem::new(
                "rollout.max_parallel",
                format!("{} is not between 1 and 64", self.max_parallel),
            ));
        }
        // Cumulative sizes grow: each count past the counts before it, each
        // share past the shares before it (how counts and shares interleave
        // depends on the fleet, which the inventory may change).
        let (mut count, mut percent) = (0usize, 0f64);
        for (i, w) in self.waves.iter().enumerate() {
            let grows = match *w {
                bellwether_schemas::WaveSize::Count(n) => std::mem::replace(&mut count, n) < n,
                bellwether_schemas::WaveSize::Percent(p) => std::mem::replace(&mut percent, p) < p,
            };
            if !grows {
                return Err(Problem::new(
                    format!("rollout.waves[{i}]"),
                    format!(
                        "`{w}` is not larger than the wave before it: wave sizes are cumulative and must grow"
                    ),
                ));
            }
        }
        non_empty("rollout.canary_groups", &self.canary_groups)?;
        for (i, name) in self.canary_groups.iter().enumerate() {
            if !groups.contains(name) {
                return Err(Problem::new(
                    format!("rollout.canary_groups[{i}]"),
                    format!(
                        "no canary group named `{name}`; known groups: {}",
                        groups.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        non_empty("rollout.waves", &self.waves)?;
        let waves = self.wave_sizes().len();
        if self.canary_waves == 0 || self.canary_waves > waves {
            return Err(Problem::new(
                "rollout.canary_waves",
                format!("must be between 1 and the number of waves ({waves})"),
            ));
        }
        // The cron expression and time zone were parsed when read.
        if self
            .maintenance_window
            .as_ref()
            .is_some_and(|w| w.duration_minutes == 0)
        {
            return Err(Problem::new(
                "rollout.maintenance_window.duration_minutes",
                "must be at least 1",
            ));
        }

        Ok(())
    }
}

impl RollbackConfig {
    /// Checks the policy: the error names the key.
    pub fn check(&self) -> Result<(), Problem> {
        if self.max_concurrent == 0 {
            return Err(Problem::new(
                "rollback.max_concurrent",
                "at least one rollback must be allowed at a time",
            ));
        }
        Ok(())
    }
}
