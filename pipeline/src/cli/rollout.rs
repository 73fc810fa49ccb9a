//! `bellwether rollout`: show the rollouts of a running bellwether (`list`,
//! `status`), or pause, resume, promote, abort or roll one back (published
//! on the control topic).

use super::remote::ApiArgs;
use super::{Global, ServiceArgs, write_stdout};
use crate::monitor::rollouts::RolloutListing;
use crate::monitor::view::RolloutSnapshot;
use anyhow::Result;
use bellwether_schemas::ManualAction;
use clap::{Args, Subcommand};

/// `bellwether rollout` subcommands.
#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Every rollout the running bellwether knows, newest first: state,
    /// waves, VMs on the patch and rolled back.
    List(ApiArgs),
    /// One rollout: its waves (VMs on the patch, rolled back, to patch),
    /// its canary groups' health and its rollbacks with their reasons.
    Status {
        /// The rollout, e.g. rollout-kb-2026-1201.
        id: String,
        /// Where the running bellwether answers.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Stop advancing: the current wave keeps baking, no next wave starts.
    Pause(ControlArgs),
    /// Advance again.
    Resume(ControlArgs),
    /// End the current wave's bake now and deploy the next wave.
    Promote(ControlArgs),
    /// Stop the rollout for good; patched VMs keep the patch.
    Abort(ControlArgs),
    /// Roll every patched VM back now (critical first), without analysis.
    Rollback(ControlArgs),
    /// Approve a submitted patch (deprecated, goes in the next release:
    /// use `bellwether patch approve`).
    #[command(alias = "approve")]
    Start(ControlArgs),
}

/// The flags of a control command.
#[derive(Debug, Args)]
pub struct ControlArgs {
    /// Config and brokers.
    #[command(flatten)]
    pub service: ServiceArgs,
    /// The rollout, e.g. rollout-kb-2026-1201.
    #[arg(long)]
    pub rollout_id: String,
    /// Who asks (recorded).
    #[arg(long, default_value = "operator")]
    pub by: String,
    /// Why (recorded).
    #[arg(long, default_value = "")]
    pub reason: String,
}

/// Runs a `bellwether rollout` subcommand.
pub fn exec(command: RolloutCommand, global: &Global) -> Result<()> {
    let (action, args) = match command {
        RolloutCommand::List(api) => {
            let rollouts: Vec<RolloutListing> = api.get(global, "api/rollouts")?;
            return if global.json(false) {
                write_stdout(&format!("{}\n", serde_json::to_string(&rollouts)?))
            } else {
                write_stdout(&list_table(&rollouts))
            };
        }
        RolloutCommand::Status { id, api } => {
            let rollout: RolloutSnapshot = api.get(global, &format!("api/rollouts/{id}"))?;
            return if global.json(false) {
                write_stdout(&format!("{}\n", serde_json::to_string(&rollout)?))
            } else {
                write_stdout(&status_text(&rollout))
            };
        }
        RolloutCommand::Pause(a) => (ManualAction::Pause, a),
        RolloutCommand::Resume(a) => (ManualAction::Resume, a),
        RolloutCommand::Promote(a) => (ManualAction::Promote, a),
        RolloutCommand::Abort(a) => (ManualAction::Abort, a),
        RolloutCommand::Rollback(a) => (ManualAction::Rollback, a),
        RolloutCommand::Start(a) => {
            eprintln!(
                "note: `bellwether rollout start` is deprecated and goes in the next release; \
                 use `bellwether patch approve --id PATCH`"
            );
            (ManualAction::Approve, a)
        }
    };
    let config = args.service.load(global)?;
    crate::service::approve::publish(
        &config,
        bellwether_schemas::ControlMessage::Manual(bellwether_schemas::ManualCommand {
            rollout_id: args.rollout_id.clone(),
            action,
            by: args.by,
            reason: args.reason,
            at: bellwether_schemas::EventTime::now(),
        }),
    )?;
    println!("{}: {}", action.as_str(), args.rollout_id);
    Ok(())
}

fn list_table(rollouts: &[RolloutListing]) -> String {
    if rollouts.is_empty() {
        return "no rollout yet\n".into();
    }
    crate::table::render(
        &[
            "rollout",
            "patch",
            "state",
            "waves",
            "on patch",
            "rolled back",
            "approval",
        ],
        rollouts
            .iter()
            .map(|r| {
                vec![
                    r.id.clone(),
                    r.patch_id.clone(),
                    r.state.clone(),
                    match r.waves_planned {
                        Some(planned) => format!("{}/{planned}", r.waves),
                        None => r.waves.to_string(),
                    },
                    r.patched.to_string(),
                    r.rolled_back.to_string(),
                    r.approval.clone(),
                ]
            })
            .collect(),
    )
}

fn status_text(r: &RolloutSnapshot) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let title = if r.patch_title.is_empty() {
        String::new()
    } else {
        format!(" ({})", r.patch_title)
    };
    let _ = writeln!(out, "{}: patch {}{title}", r.id, r.patch_id);
    let _ = writeln!(
        out,
        "state {}; {}; {} VMs on the patch ({:.1}% of the fleet), {} rolled back",
        r.state,
        r.approval,
        r.patched,
        r.patched_percent,
        r.rollbacks.len()
    );
    let planned = r
        .waves_planned
        .map_or(String::new(), |n| format!(" of {n} planned"));
    if let Some(reason) = &r.state_reason {
        let _ = writeln!(out, "why {}: {reason}", r.state);
    }
    if let Some(ends) = r.bake_ends_at {
        let _ = writeln!(out, "the baking wave has baked at {ends}");
    }
    let _ = writeln!(out, "\nWaves ({}{planned})", r.waves.len());
    out += &crate::table::render(
        &[
            "wave",
            "VMs",
            "on patch",
            "healthy",
            "rolled back",
            "failed to patch",
            "to patch",
        ],
        r.waves
            .iter()
            .map(|w| {
                vec![
                    w.wave.to_string(),
                    w.vms.to_string(),
                    w.patched.to_string(),
                    w.healthy.to_string(),
                    w.rolled_back.to_string(),
                    w.failed.to_string(),
                    w.vms
                        .saturating_sub(w.patched + w.rolled_back + w.failed)
                        .to_string(),
                ]
            })
            .collect(),
    );
    let groups: Vec<String> = r
        .groups
        .iter()
        .filter(|g| g.reached > 0)
        .map(|g| {
            format!(
                "{} {:?} ({} of {} reached)",
                g.name, g.health, g.reached, g.vms
            )
        })
        .collect();
    if !groups.is_empty() {
        let _ = writeln!(out, "\nCanary groups reached: {}", groups.join("; "));
    }
    let _ = writeln!(out, "\nRollbacks ({})", r.rollbacks.len());
    for b in &r.rollbacks {
        let _ = writeln!(
            out,
            "  {}{}  decided {}, {}",
            b.vm,
            if b.critical { " [critical]" } else { "" },
            b.decided_at,
            b.executed_at
                .map_or("not carried out yet".to_string(), |t| format!(
                    "rolled back {t}"
                ))
        );
        let _ = writeln!(out, "    {}: {}", b.trigger, b.reason);
    }
    out
}
