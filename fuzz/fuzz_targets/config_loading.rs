//! Any text as a config file layered over the built-in default (`--config
//! FILE`, `bellwether config check FILE`): loading must never panic, and a
//! file it refuses is refused naming the key at fault or the line of a
//! syntax error. Runs the config's own source files, and those of the
//! sections it assembles from their owners (each section's config and
//! checks, SQL bounds, remote write) and the control-plane and simulator
//! crates (inventory groups, approval rules, maintenance windows, simulator
//! events).
#![no_main]
#![allow(dead_code, unused_imports)]

// The control plane and the simulator are crates of their own; the other
// sections' files are compiled here, each at the root under the name its
// `super::` paths expect, and re-exported where its `crate::` paths
// expect it.
#[path = "../../pipeline/src/config/mod.rs"]
mod config;
#[path = "../../pipeline/src/remote_write/config.rs"]
mod remote_write_config;
#[path = "../../pipeline/history/src/sql_config.rs"]
mod sql_config;
#[path = "../../pipeline/history/src/config.rs"]
pub mod history_config;
#[path = "../../pipeline/src/kafka/config.rs"]
pub mod kafka_config;
#[path = "../../pipeline/src/model/config.rs"]
pub mod model_config;
#[path = "../../pipeline/src/monitor/config.rs"]
pub mod monitor_config;
#[path = "../../pipeline/src/scoring/config.rs"]
pub mod scoring_config;

use bellwether_control::{approval, inventory, rollout};
use bellwether_simulator as simulator;

mod history {
    pub use super::history_config as config;
    pub mod sql {
        pub use crate::sql_config::SqlConfig;
    }
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
    pub use super::scoring_config as config;
    pub use bellwether_control::judge;
}
mod remote_write {
    pub use super::remote_write_config::{RemoteWriteConfig, SeriesRule};
}

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
