//! `bellwether gateway`: Prometheus remote write into Kafka, for hosts that
//! should not run the scorer. Serves `POST /api/v1/write` and `/metrics`.

use crate::config::Config;
use crate::inventory::Inventory;
use crate::kafka::dead_letter::DeadLetters;
use crate::kafka::sink::SharedProducer;
use crate::monitor::Monitor;
use crate::monitor::server::{AppState, gateway_router, serve_app};
use crate::remote_write::Receiver;
use anyhow::Result;
use std::sync::Arc;
use std::time::Duration;

/// Runs until SIGINT/SIGTERM, listening on `remote_write.gateway_listen`.
pub fn run_gateway(config: &Config) -> Result<()> {
    let stop = super::shutdown_flag()?;
    let kafka = &config.kafka;
    if !super::connect(kafka, &stop)? {
        return Ok(());
    }
    let monitor = Monitor::new(&Inventory::new(Vec::new(), Vec::new()), "none (gateway)");
    let dead_letters = DeadLetters::new(SharedProducer::new(kafka)?, &kafka.dead_letter_topic)
        .with_monitor(monitor.clone());
    let receiver = Receiver::new(&config.remote_write, kafka, dead_letters, monitor.clone())?;
    let topic = receiver.topic().to_string();
    let state = AppState {
        hosts: crate::monitor::guard::AllowedHosts(Arc::new(config.http.allowed_hosts.clone())),
        limits: (&config.http).into(),
        remote_write: Some(Arc::new(receiver)),
        ..AppState::new(monitor)
    };
    let limits = state.limits;
    let listen = config.remote_write.gateway_listen.trim();
    let server = serve_app(listen, limits, gateway_router(state))
        .map_err(|e| anyhow::anyhow!("remote_write.gateway_listen: {e}"))?;
    tracing::info!(
        url = %format!("http://{}/api/v1/write", server.addr),
        topic = %topic,
        "bellwether gateway is running"
    );
    while !super::stopping(&stop) {
        std::thread::sleep(Duration::from_millis(200));
    }
    tracing::info!("stopping");
    Ok(())
}
