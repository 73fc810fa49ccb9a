//! The rollout state machine's allowed moves.

use bellwether_schemas::RolloutState::{self, *};

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
}
