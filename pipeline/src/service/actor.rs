//! The rollout actor on Kafka (`bellwether actor`, or inside `bellwether run`).

use crate::config::Config;
use crate::connector::{MessageSink, MessageSource};
use crate::inventory::Inventory;
use crate::kafka::control::KafkaMessageSource;
use crate::kafka::dead_letter::DeadLetters;
use crate::kafka::sink::{KafkaSink, SharedProducer};
use crate::rollout::RolloutActor;
use crate::rollout::actuator::Actuator;
use crate::rollout::ledger::Ledger;
use anyhow::{Context, Result};
use bellwether_schemas::ControlMessage;
use std::sync::Arc;

/// The actor with its control-topic reader and writer and its ledger.
pub struct ActorService {
    actor: RolloutActor<Box<dyn Actuator + Send>>,
    source: KafkaMessageSource<ControlMessage>,
    sink: KafkaSink<ControlMessage>,
    ledger: Ledger,
    dead_letters: DeadLetters,
    control_topic: String,
}

impl ActorService {
    /// Opens the ledger, then replays the control topic from its start to
    /// rebuild the rollout's state: commands in the ledger update the state
    /// without being carried out again.
    pub fn start(
        config: &Config,
        inventory: Arc<Inventory>,
        producer: SharedProducer,
        dead_letters: DeadLetters,
    ) -> Result<ActorService> {
        let ledger = Ledger::open(&config.actor.state_dir).context("actor.state_dir")?;
        let actor = RolloutActor::new(
            &config.control(),
            inventory,
            crate::rollout::actuator::from_config(&config.actor),
        )
        .with_executed_before(ledger.ids().iter().cloned());
        let source = KafkaMessageSource::from_beginning(
            &config.kafka,
            &config.kafka.control_topic,
            &config.actor.group_id,
            dead_letters.clone(),
        )?;
        let sink = KafkaSink::new(producer, &config.kafka.control_topic);
        let mut service = ActorService {
            actor,
            source,
            sink,
            ledger,
            dead_letters,
            control_topic: config.kafka.control_topic.clone(),
        };
        let backlog = service.source.catch_up()?;
        let replayed = backlog.len();
        let before = service.ledger.ids().len();
        service.handle(backlog)?;
        tracing::info!(
            replayed,
            executed_before_restart = before,
            state = service.actor.state().as_str(),
            "rollout actor ready"
        );
        Ok(service)
    }

    /// The actor.
    pub fn actor(&self) -> &RolloutActor<Box<dyn Actuator + Send>> {
        &self.actor
    }

    /// One turn: handle what arrived, publish what the actor decided and the
    /// execution records, record executed ids, then commit.
    pub fn step(&mut self) -> Result<usize> {
        let messages = self.source.poll(usize::MAX)?;
        let n = messages.len();
        self.handle(messages)?;
        Ok(n)
    }

    fn handle(&mut self, messages: Vec<ControlMessage>) -> Result<()> {
        for message in messages {
            // A message the actor fails on (a bug, not bad input: the JSON
            // was read already) is dead-lettered with the panic's message,
            // never replayed into a crash loop on every restart.
            let kept = message.clone();
            let actor = &mut self.actor;
            if let Err(panic) =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| actor.receive(message)))
            {
                let reason = format!(
                    "the rollout actor failed on this message ({}); please report it",
                    crate::panic_message(panic.as_ref())
                );
                tracing::error!(key = kept.key(), "{reason}");
                let payload = serde_json::to_vec(&kept).unwrap_or_default();
                self.dead_letters.send_handled(
                    &self.control_topic,
                    kept.key(),
                    &payload,
                    &reason,
                )?;
            }
        }
        // What the messages decided, carried out together: the rollbacks
        // of a window at once, critical first, through the actuator's pool.
        let actor = &mut self.actor;
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| actor.act())) {
            tracing::error!(
                "the rollout actor failed carrying out commands ({}); please report it",
                crate::panic_message(panic.as_ref())
            );
        }
        for message in self.actor.take_outbox() {
            self.sink.send(message)?;
        }
        self.sink.flush()?;
        self.ledger.record(&self.actor.take_newly_executed())?;
        self.source.commit()?;
        Ok(())
    }
}

/// `bellwether actor`: runs until SIGINT/SIGTERM.
pub fn run_actor(config: &Config) -> Result<()> {
    let stop = super::shutdown_flag()?;
    if !super::connect(&config.kafka, &stop)? {
        return Ok(());
    }
    let inventory = super::load_inventory(config)?;
    let producer = SharedProducer::new(&config.kafka)?;
    let dead_letters = DeadLetters::new(producer.clone(), &config.kafka.dead_letter_topic);
    let mut service = ActorService::start(config, inventory, producer, dead_letters)?;
    while !super::stopping(&stop) {
        if service.step()? == 0 {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    tracing::info!("rollout actor stopped");
    Ok(())
}
