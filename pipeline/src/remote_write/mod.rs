//! Prometheus remote write into the Kafka path: `POST /api/v1/write`,
//! served by `bellwether run` (with `remote_write.enabled`) and by
//! `bellwether gateway`.
//!
//! A request's series are mapped to bellwether's VM metrics
//! ([`mapping`]) and produced onto a metrics topic as bellwether's JSON
//! snapshots, keyed by VM id, so the scoring instances read them through
//! their consumer group like any other metrics. Shipped Prometheus
//! recording rules and a `remote_write` block are in `config/prometheus/`.

pub(crate) mod config;
pub mod mapping;
pub(crate) mod receiver;

pub use config::{RemoteWriteConfig, SeriesRule};
pub use receiver::Receiver;
