//! `bellwether patch` (evaluate, submit, approve, rules) and the
//! deprecated top-level `bellwether approve`.

use super::{Global, ServiceArgs};
use anyhow::Result;
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// `bellwether patch` subcommands.
#[derive(Debug, Subcommand)]
pub enum PatchCommand {
    /// Every patch the running bellwether knows: its rollout, approval and
    /// state.
    List(super::remote::ApiArgs),
    /// Show what the approval rules decide for a patch (publishes nothing).
    Evaluate(PatchArgs),
    /// Submit a patch: bellwether keeps it with the rules' decision and
    /// starts its rollout once approved (at once, after the rule's days,
    /// or by hand); a rejected one never starts.
    Submit(PatchArgs),
    /// Approve a submitted patch that waits for a human.
    Approve(PatchApproveArgs),
    /// Put a new set of approval rules in force in the running bellwether
    /// (kept across restarts; `GET /api/approval/rules` shows it).
    Rules {
        /// Config and brokers.
        #[command(flatten)]
        service: ServiceArgs,
        /// The rules: TOML (an `[approval]` table, or its keys at the top)
        /// or JSON.
        #[arg(long)]
        file: PathBuf,
        /// Who (recorded).
        #[arg(long, default_value = "operator")]
        by: String,
    },
}

/// `bellwether patch approve` flags.
#[derive(Debug, Args)]
pub struct PatchApproveArgs {
    /// Config and brokers.
    #[command(flatten)]
    pub service: ServiceArgs,
    /// The patch id, e.g. KB-2026-1201.
    #[arg(long)]
    pub id: String,
    /// The rollout id (default: rollout-<patch id>).
    #[arg(long)]
    pub rollout_id: Option<String>,
    /// Who approves (recorded).
    #[arg(long, default_value = "operator")]
    pub by: String,
    /// Why (recorded).
    #[arg(long, default_value = "")]
    pub reason: String,
}

/// A patch, as `bellwether patch` takes it.
#[derive(Debug, Args)]
pub struct PatchArgs {
    /// Config and brokers.
    #[command(flatten)]
    pub service: ServiceArgs,
    /// The patch id, e.g. KB-2026-1201.
    #[arg(long)]
    pub id: String,
    /// A title for humans.
    #[arg(long, default_value = "")]
    pub title: String,
    /// Classification: security, bugfix, feature, ...
    #[arg(long)]
    pub classification: String,
    /// Severity: critical, important, moderate, low, ...
    #[arg(long)]
    pub severity: String,
    /// Product, e.g. debian-12.
    #[arg(long)]
    pub product: String,
    /// When the patch was released, RFC 3339 (default: now).
    #[arg(long)]
    pub released_at: Option<String>,
    /// The rollout id (default: rollout-<patch id>).
    #[arg(long)]
    pub rollout_id: Option<String>,
    /// Who submits (recorded).
    #[arg(long, default_value = "operator")]
    pub by: String,
    /// Canary groups for this rollout (repeatable; default:
    /// rollout.canary_groups).
    #[arg(long)]
    pub canary_group: Vec<String>,
    /// Same as `--format json` (kept for scripts written before it).
    #[arg(long, hide = true)]
    pub json: bool,
}

/// `bellwether approve` flags.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// Config and brokers.
    #[command(flatten)]
    pub service: ServiceArgs,
    /// The patch id, e.g. KB-2026-1102.
    #[arg(long)]
    pub patch: String,
    /// A title for humans.
    #[arg(long, default_value = "")]
    pub title: String,
    /// The rollout id (default: rollout-<patch id>).
    #[arg(long)]
    pub rollout_id: Option<String>,
    /// Who approves.
    #[arg(long, default_value = "operator")]
    pub by: String,
}

/// Runs a `bellwether patch` subcommand.
pub fn exec(command: PatchCommand, global: &Global) -> Result<()> {
    match command {
        PatchCommand::List(api) => {
            let patches: Vec<crate::monitor::patches::PatchStatus> =
                api.get(global, "api/patches")?;
            if global.json(false) {
                return super::write_stdout(&format!("{}\n", serde_json::to_string(&patches)?));
            }
            if patches.is_empty() {
                return super::write_stdout("no patch yet\n");
            }
            super::write_stdout(&crate::table::render(
                &["patch", "rollout", "state", "approval"],
                patches
                    .into_iter()
                    .map(|p| vec![p.patch_id, p.rollout_id, p.state, p.approval])
                    .collect(),
            ))
        }
        PatchCommand::Evaluate(args) => patch_decision(args, false, global),
        PatchCommand::Submit(args) => patch_decision(args, true, global),
        PatchCommand::Approve(args) => patch_approve(args, global),
        PatchCommand::Rules { service, file, by } => {
            let config = service.load(global)?;
            let rules = crate::approval::file::read_rules(&file)?;
            let n = rules.rules.len();
            crate::service::approve::publish(
                &config,
                bellwether_schemas::ControlMessage::ApprovalRules(
                    bellwether_schemas::ApprovalRulesUpdate {
                        rules,
                        by,
                        at: bellwether_schemas::EventTime::now(),
                    },
                ),
            )?;
            println!("approval rules sent: {n} rule(s) in force once bellwether reads them");
            Ok(())
        }
    }
}

/// `bellwether approve`: publishes an approval of a patch.
pub fn exec_approve(args: ApproveArgs, global: &Global) -> Result<()> {
    eprintln!(
        "note: `bellwether approve` is deprecated and goes in the next release; \
         use `bellwether patch submit` and `bellwether patch approve --id {}`",
        args.patch
    );
    let config = args.service.load(global)?;
    let rollout_id = args
        .rollout_id
        .unwrap_or_else(|| crate::approval::submit::default_rollout_id(&args.patch));
    crate::service::approve::publish_approval(
        &config,
        bellwether_schemas::Approval {
            rollout_id: rollout_id.clone(),
            patch: bellwether_schemas::Patch {
                id: args.patch,
                title: args.title,
                classification: "unspecified".into(),
                severity: "unspecified".into(),
                product: "unspecified".into(),
            },
            approved_by: args.by,
            approved_at: bellwether_schemas::EventTime(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64),
            ),
        },
    )?;
    println!("approved: {rollout_id}");
    Ok(())
}

fn patch_decision(args: PatchArgs, submit: bool, global: &Global) -> Result<()> {
    use crate::approval::submit::{PatchRequest, submission, what_happens};
    let config = args.service.load(global)?;
    let request = PatchRequest {
        id: args.id.clone(),
        title: args.title.clone(),
        classification: args.classification.clone(),
        severity: args.severity.clone(),
        product: args.product.clone(),
        released_at: args.released_at.clone(),
        rollout_id: args.rollout_id.clone(),
        by: None,
        canary_groups: (!args.canary_group.is_empty()).then(|| args.canary_group.clone()),
    };
    // Groups defined over the API are not in the config: the running
    // bellwether checks those.
    let inventory = crate::service::load_inventory(&config)?;
    let mut groups = inventory.group_names();
    groups.extend(args.canary_group.iter().map(String::as_str));
    let s = submission(
        &request,
        &args.by,
        bellwether_schemas::EventTime::now(),
        &groups,
    )
    .map_err(|e| anyhow::anyhow!("--{} {}", e.field.replace('_', "-"), e.reason))?;
    if submit {
        // The rollout actor keeps the submission: it starts the rollout once
        // the approval takes effect, or when a human approves it.
        crate::service::approve::publish(
            &config,
            bellwether_schemas::ControlMessage::Submission(s.clone()),
        )?;
    }
    // What the config's rules decide; rules put in force over the API
    // (`bellwether patch rules`) take precedence in the running bellwether.
    let decision = crate::approval::submit::decide(&config.approval, &s);
    if global.json(args.json) {
        println!(
            "{}",
            serde_json::json!({ "patch": s.patch.id, "rollout_id": s.rollout_id, "decision": decision, "submitted": submit, "next": what_happens(&s, &decision) })
        );
    } else if submit {
        println!("{}", what_happens(&s, &decision));
    } else {
        println!(
            "{} (bellwether patch submit to act on it)",
            crate::approval::rules::describe(&decision)
        );
    }
    Ok(())
}

fn patch_approve(args: PatchApproveArgs, global: &Global) -> Result<()> {
    let config = args.service.load(global)?;
    let rollout_id = args
        .rollout_id
        .unwrap_or_else(|| crate::approval::submit::default_rollout_id(&args.id));
    crate::service::approve::publish(
        &config,
        bellwether_schemas::ControlMessage::Manual(bellwether_schemas::ManualCommand {
            rollout_id: rollout_id.clone(),
            action: bellwether_schemas::ManualAction::Approve,
            by: args.by,
            reason: args.reason,
            at: bellwether_schemas::EventTime::now(),
        }),
    )?;
    println!(
        "approval sent: {rollout_id} starts if its patch waits for one (see the rollout events)"
    );
    Ok(())
}
