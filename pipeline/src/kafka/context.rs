//! Client contexts: librdkafka's logs and errors go to `tracing`; delivery
//! failures are counted so a flush can tell whether everything arrived.

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::ProducerContext;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Logs librdkafka's messages; repeats of a broker error are logged at most
/// every 10 s, so a broker that is down does not flood the log.
#[derive(Default)]
pub struct Logging {
    last_error: Mutex<Option<(String, Instant)>>,
}

impl Logging {
    fn log_error(&self, error: &KafkaError, reason: &str) {
        let text = format!("{error}: {reason}");
        let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        let repeat = last
            .as_ref()
            .is_some_and(|(t, at)| *t == text && at.elapsed() < Duration::from_secs(10));
        if !repeat {
            tracing::warn!("kafka: {text} (retrying)");
            *last = Some((text, Instant::now()));
        }
    }
}

impl ClientContext for Logging {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", "{fac}: {message}"),
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "{fac}: {message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "{fac}: {message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "{fac}: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log_error(&error, reason);
    }
}

impl rdkafka::consumer::ConsumerContext for Logging {}

/// A producer context that counts failed deliveries.
#[derive(Default)]
pub struct Delivery {
    logging: Logging,
    failed: AtomicU64,
    last_failure: Mutex<Option<String>>,
}

impl Delivery {
    /// Deliveries that failed so far, and the last reason.
    pub fn failures(&self) -> (u64, Option<String>) {
        (
            self.failed.load(Ordering::Acquire),
            self.last_failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

impl ClientContext for Delivery {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.logging.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.logging.log_error(&error, reason);
    }
}

impl ProducerContext for Delivery {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, message)) = result {
            use rdkafka::Message;
            let reason = format!("to {}: {e}", message.topic());
            tracing::error!("kafka delivery failed {reason}");
            *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
            self.failed.fetch_add(1, Ordering::AcqRel);
        }
    }
}
