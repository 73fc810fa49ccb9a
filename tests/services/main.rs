//! The tests that need real services: the Kafka-protocol broker (tansu),
//! Debian's chromium, prometheus and its exporters, and the Python clients.
//! Each skips with a message when what it needs is missing, unless
//! `BELLWETHER_REQUIRE_BROKER` / `BELLWETHER_REQUIRE_BROWSER` are set (as
//! `scripts/test` does). One binary with a module per area.

#[path = "../common/mod.rs"]
mod common;

mod api_schemathesis;
mod approval;
mod control_plane;
mod dashboard;
mod history_object_store;
mod history_pyarrow;
mod kafka_consumer_group;
mod kafka_dead_letters;
mod kafka_interop;
mod kafka_inventory;
mod kafka_peer_control;
mod kafka_rollout;
mod prometheus;
mod prometheus_remote_write;
