//! Retraining on a schedule: every `retrain.every_hours`, on a thread of
//! its own, the models are retrained from the history, run in shadow and
//! promoted if better ([`super::retrain`]). `bellwether run` starts it when
//! the interval is set; `bellwether retrain --every HOURS` runs it alone.

use super::retrain::{RetrainRequest, ShadowReport, describe, retrain};
use crate::config::Config;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The interval of `retrain.every_hours`, if retraining is scheduled.
pub fn interval(config: &Config) -> Option<Duration> {
    let h = config.retrain.every_hours;
    (h > 0.0).then(|| Duration::from_secs_f64(h * 3600.0))
}

/// One scheduled retraining: runs it and logs what it decided.
pub fn retrain_once(
    config: &Config,
    request: &RetrainRequest,
) -> anyhow::Result<Vec<ShadowReport>> {
    tracing::info!(
        histories = ?request.histories,
        models = %request.models.display(),
        "scheduled retraining started"
    );
    let result = retrain(config, request);
    match &result {
        Ok(reports) => {
            for r in reports {
                tracing::info!(
                    kind = r.kind,
                    candidate = %r.candidate_file,
                    promoted = r.promoted,
                    "retrained: {}",
                    r.verdict
                );
            }
            eprint!("{}", describe(reports));
        }
        // Retried at the next turn: a history without episodes yet, or one
        // being compacted, is not a reason to stop scoring.
        Err(e) => tracing::warn!("scheduled retraining failed (retried at the next turn): {e:#}"),
    }
    result
}

/// The retraining thread; stops when dropped (after a run in progress).
pub struct RetrainSchedule {
    stop: Arc<AtomicBool>,
}

impl RetrainSchedule {
    /// Retrains `request` every `every`, the first time one interval from now.
    pub fn spawn(config: Config, request: RetrainRequest, every: Duration) -> RetrainSchedule {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let started = std::thread::Builder::new()
            .name("retrain-schedule".into())
            .spawn(move || {
                loop {
                    let mut waited = Duration::ZERO;
                    while waited < every {
                        if flag.load(Ordering::Relaxed) {
                            return;
                        }
                        let step = Duration::from_millis(200).min(every - waited);
                        std::thread::sleep(step);
                        waited += step;
                    }
                    let _ = retrain_once(&config, &request);
                }
            });
        if let Err(e) = started {
            tracing::warn!("scheduled retraining not started: {e}");
        }
        RetrainSchedule { stop }
    }
}

impl Drop for RetrainSchedule {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
