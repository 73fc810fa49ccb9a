//! `bellwether approve` and `bellwether mark`: publish a patch approval or
//! a VM's outcome on the control topic.

use crate::config::Config;
use crate::connector::MessageSink;
use crate::kafka::sink::{KafkaSink, SharedProducer};
use anyhow::Result;
use bellwether_schemas::{Approval, ControlMessage};

/// Publishes `approval` and waits until Kafka has it.
pub fn publish_approval(config: &Config, approval: Approval) -> Result<()> {
    publish(config, ControlMessage::Approval(approval))
}

/// Publishes `message` on the control topic and waits until Kafka has it.
pub fn publish(config: &Config, message: ControlMessage) -> Result<()> {
    crate::kafka::admin::wait_for_broker(
        &config.kafka,
        Some(std::time::Duration::from_secs(60)),
        None,
    )?;
    let producer = SharedProducer::new(&config.kafka)?;
    let mut sink = KafkaSink::new(producer, &config.kafka.control_topic);
    sink.send(message)?;
    sink.flush()?;
    Ok(())
}
