//! Any text as a config file layered over the built-in default (`--config
//! FILE`, `bellwether config check FILE`): loading must never panic, and a
//! file it refuses is refused naming the key at fault or the line of a
//! syntax error. Runs the config's own source files, and those of the
//! sections it assembles from their owners (each section's config and
//! checks, inventory groups, approval rules, SQL bounds, remote write,
//! simulator events, maintenance windows).
#![no_main]
#![allow(dead_code, unused_imports)]

// Each file at the root, under the name its `super::` paths expect, and
// re-exported where its `crate::` paths expect it.
#[path = "../../pipeline/src/config/mod.rs"]
mod config;
#[path = "../../pipeline/simulator/src/event.rs"]
mod event;
#[path = "../../pipeline/src/inventory/expression.rs"]
pub mod expression;
#[path = "../../pipeline/simulator/src/fault.rs"]
mod fault;
#[path = "../../pipeline/src/remote_write/config.rs"]
mod remote_write_config;
#[path = "../../pipeline/src/approval/rules.rs"]
pub mod rules;
#[path = "../../pipeline/src/inventory/selector.rs"]
pub mod selector;
#[path = "../../pipeline/history/src/sql_config.rs"]
mod sql_config;
#[path = "../../pipeline/history/src/config.rs"]
pub mod history_config;
#[path = "../../pipeline/src/inventory/config.rs"]
pub mod inventory_config;
#[path = "../../pipeline/src/kafka/config.rs"]
pub mod kafka_config;
#[path = "../../pipeline/src/model/config.rs"]
pub mod model_config;
#[path = "../../pipeline/src/monitor/config.rs"]
pub mod monitor_config;
#[path = "../../pipeline/src/rollout/config.rs"]
pub mod rollout_config;
#[path = "../../pipeline/src/scoring/config.rs"]
pub mod scoring_config;
#[path = "../../pipeline/src/scoring/judge.rs"]
pub mod judge;
#[path = "../../pipeline/simulator/src/config.rs"]
pub mod simulator_config;
#[path = "../../pipeline/src/rollout/window.rs"]
pub mod window;

mod approval {
    pub use super::rules;
}
mod history {
    pub use super::history_config as config;
    pub mod sql {
        pub use crate::sql_config::SqlConfig;
    }
}
mod inventory {
    pub use super::inventory_config as config;
    pub use super::{expression, selector};
}
mod kafka {
    pub use super::kafka_config as config;
}
mod model {
    pub use super::model_config as config;
}
mod monitor {
    pub use super::monitor_config as config;
}
mod scoring {
    pub use super::judge;
    pub use super::scoring_config as config;
}
mod remote_write {
    pub use super::remote_write_config::{RemoteWriteConfig, SeriesRule};
}
mod rollout {
    pub use super::rollout_config as config;
    pub use super::window;
}
mod simulator {
    pub use super::event::{EventKind, FleetEvent, MAX_EVENTS};
    pub use super::simulator_config as config;
}

// Where the simulator crate's files look for its events (`crate::`).
pub use event::{FleetEvent, MAX_EVENTS};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = config::load_str(text) {
        let named = match &e {
            config::ConfigError::Key { key, .. } => !key.is_empty(),
            config::ConfigError::Syntax { reason, .. } => reason.contains("line"),
            config::ConfigError::File { .. } => false,
        };
        assert!(named, "`{e}` names no key or line");
    }
});
