//! The rollout's state machine: the state a rollout is in and what holds it.
//!
//! The public [`RolloutState`] (what the API, the dashboard and the history
//! show) is one part of a [`Phase`]; the rest is typed: what keeps a moving
//! rollout from its next step ([`Hold`]), why it rolls back
//! ([`RollingBack`]), and why it halted ([`Halt`]).

use bellwether_schemas::RolloutState::{self, *};

/// What keeps a moving rollout from its next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hold {
    /// Nothing: it moves.
    #[default]
    Free,
    /// An operator paused it: no VM is patched and no wave starts until an
    /// operator resumes it or promotes the wave.
    Paused,
    /// Patched VMs sent no metrics (`rollout.on_missing_data = "wait"`):
    /// the next wave waits until they report again or an operator resumes.
    WaitingForData,
}

/// Why a rollout rolls back, which decides where it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollingBack {
    /// Anomalous VMs (and what `rollback.scope` takes with them) go back;
    /// then `rollback.on_anomaly` decides.
    Anomalies,
    /// Every patched VM goes back (an operator's emergency rollback, or
    /// `rollback.on_anomaly = "roll-back-all"`): the rollout ends rolled back.
    Everything,
    /// Rollbacks that arrived after the rollout halted: it halts again, as
    /// it halted.
    AfterHalt(Halt),
}

/// Why a rollout halted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Halt {
    /// A policy halted it (an anomaly, missing data, the error budget): it
    /// stays the actor's (its VMs may still need rolling back) until an
    /// operator aborts it or rolls it back.
    Stopped,
    /// An operator aborted it: the next approved rollout may start.
    Aborted,
}

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Approved; no wave out yet (the first may wait for the maintenance
    /// window).
    Pending(Hold),
    /// A wave of the canary stage is being deployed.
    Canary(Hold),
    /// A wave after the canary stage is being deployed.
    Advancing(Hold),
    /// The last wave is out; it bakes, or waits for the window.
    Baking(Hold),
    /// VMs are being rolled back.
    RollingBack(Hold, RollingBack),
    /// Nothing more is deployed.
    Halted(Halt),
    /// Every wave deployed and baked healthy.
    Completed,
    /// Every patched VM went back.
    RolledBack,
}

impl Default for Phase {
    fn default() -> Phase {
        Phase::Pending(Hold::Free)
    }
}

impl Phase {
    /// The state the API and the history show.
    pub fn state(self) -> RolloutState {
        match self {
            Phase::Pending(_) => Pending,
            Phase::Canary(_) => Canary,
            Phase::Advancing(_) => Advancing,
            Phase::Baking(_) => Baking,
            Phase::RollingBack(..) => RollingBack,
            Phase::Halted(_) => Halted,
            Phase::Completed => Completed,
            Phase::RolledBack => RolledBack,
        }
    }

    /// What holds the rollout ([`Hold::Free`] once it stopped moving).
    pub fn hold(self) -> Hold {
        match self {
            Phase::Pending(h)
            | Phase::Canary(h)
            | Phase::Advancing(h)
            | Phase::Baking(h)
            | Phase::RollingBack(h, _) => h,
            Phase::Halted(_) | Phase::Completed | Phase::RolledBack => Hold::Free,
        }
    }

    /// The same phase held by `hold`; a phase that stopped moving has no
    /// hold and is returned as it is.
    pub fn held(self, hold: Hold) -> Phase {
        match self {
            Phase::Pending(_) => Phase::Pending(hold),
            Phase::Canary(_) => Phase::Canary(hold),
            Phase::Advancing(_) => Phase::Advancing(hold),
            Phase::Baking(_) => Phase::Baking(hold),
            Phase::RollingBack(_, why) => Phase::RollingBack(hold, why),
            stopped => stopped,
        }
    }

    /// True while waves are deployed or bake.
    pub fn is_deploying(self) -> bool {
        matches!(
            self,
            Phase::Canary(_) | Phase::Advancing(_) | Phase::Baking(_)
        )
    }

    /// True once nothing more is deployed (completed, halted or rolled back).
    pub fn is_final(self) -> bool {
        self.state().is_final()
    }
}

/// True when a rollout may move from `from` to `to`.
pub fn allowed(from: RolloutState, to: RolloutState) -> bool {
    matches!(
        (from, to),
        (Pending, Canary)
            | (Canary | Advancing, Baking)
            | (Baking, Advancing | Canary | Completed)
            | (Canary | Baking | Advancing | Halted, RollingBack)
            | (RollingBack, Halted | Baking | RolledBack)
            | (Halted, RolledBack)
            // An operator's abort.
            | (Pending | Canary | Baking | Advancing, Halted)
            // An operator's emergency rollback.
            | (Pending | Completed, RollingBack)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rollout_cannot_skip_baking_or_leave_a_final_state() {
        assert!(allowed(Pending, Canary));
        assert!(allowed(Canary, Baking));
        assert!(
            !allowed(Canary, Completed),
            "every wave bakes before completion"
        );
        assert!(!allowed(Completed, Baking));
        assert!(!allowed(RolledBack, Canary));
        assert!(allowed(Baking, RollingBack));
        assert!(allowed(RollingBack, Halted));
    }

    #[test]
    fn a_hold_belongs_to_a_moving_rollout_and_travels_with_it() {
        let paused = Phase::Baking(Hold::Paused);
        assert_eq!(paused.state(), Baking);
        assert_eq!(paused.hold(), Hold::Paused);
        assert_eq!(
            Phase::RollingBack(paused.hold(), RollingBack::Anomalies).hold(),
            Hold::Paused
        );
        assert_eq!(paused.held(Hold::Free), Phase::Baking(Hold::Free));
        for stopped in [
            Phase::Halted(Halt::Stopped),
            Phase::Completed,
            Phase::RolledBack,
        ] {
            assert_eq!(stopped.held(Hold::Paused), stopped, "{stopped:?}");
            assert_eq!(stopped.hold(), Hold::Free);
            assert!(stopped.is_final());
        }
        assert!(Phase::Canary(Hold::WaitingForData).is_deploying());
        assert!(!Phase::Pending(Hold::Free).is_deploying());
        assert!(!Phase::RollingBack(Hold::Free, RollingBack::Everything).is_deploying());
    }
}
