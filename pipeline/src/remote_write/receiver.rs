//! `POST /api/v1/write`: a Prometheus remote-write request, decoded,
//! mapped to VM snapshots and produced onto the metrics topic, answered
//! only once Kafka holds it.
//!
//! As the Remote-Write 1.0 spec asks: 204 once every sample is stored; 400
//! (which senders do not retry) for a body that does not decode, with the
//! reason, the body kept on the dead-letter topic; 503 (retried) when
//! Kafka does not take the samples in `remote_write.produce_timeout_secs`.

use super::RemoteWriteConfig;
use super::mapping::SeriesMap;
use crate::config::KafkaConfig;
use crate::connector::ConnectorError;
use crate::kafka::dead_letter::DeadLetters;
use crate::kafka::{producer_config, transport};
use crate::monitor::Monitor;
use crate::monitor::content::REMOTE_WRITE_TYPE;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use bellwether_schemas::metric::VmSnapshot;
use bellwether_schemas::wire::remote_write;
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The `source.topic` header of a remote-write body dead-lettered.
pub const DEAD_LETTER_SOURCE: &str = "remote_write";

/// Snapshots of one VM in one Kafka message at most (a message stays far
/// below Kafka's 1 MB default limit).
const SNAPSHOTS_PER_MESSAGE: usize = 500;

/// Receives remote-write requests for one metrics topic.
pub struct Receiver {
    map: SeriesMap,
    /// Replaced when librdkafka declares it dead (a fatal error, such as
    /// the idempotent producer fenced after deliveries timed out).
    producer: Mutex<Arc<FutureProducer>>,
    producer_config: ClientConfig,
    topic: String,
    dead_letters: DeadLetters,
    token: String,
    max_body: usize,
    max_decoded: usize,
    timeout: Duration,
    monitor: Monitor,
}

impl Receiver {
    /// A receiver producing onto `remote_write.topic` with a producer of
    /// its own (whose deliveries time out, unlike the pipeline's).
    pub fn new(
        config: &RemoteWriteConfig,
        kafka: &KafkaConfig,
        dead_letters: DeadLetters,
        monitor: Monitor,
    ) -> Result<Receiver, ConnectorError> {
        let topic = config
            .target_topic(kafka)
            .map_err(|e| transport("remote_write.topic", e))?;
        let mut client = producer_config(kafka);
        client.set(
            "message.timeout.ms",
            (config.produce_timeout_secs * 1000).to_string(),
        );
        let producer = create(&client)?;
        for code in ["204", "400", "401", "413", "415", "503"] {
            monitor
                .telemetry()
                .remote_write_requests
                .with_label_values(&[code]);
        }
        Ok(Receiver {
            map: SeriesMap::new(config),
            producer: Mutex::new(Arc::new(producer)),
            producer_config: client,
            topic,
            dead_letters,
            token: config.token.clone(),
            max_body: (config.max_body_mb as usize) << 20,
            max_decoded: (config.max_decoded_mb as usize) << 20,
            timeout: Duration::from_secs(config.produce_timeout_secs),
            monitor,
        })
    }

    /// The largest body taken, compressed, in bytes.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body
    }

    /// The topic samples are produced onto.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Answers one request whose body is still to be read: a body past
    /// `max_body_mb` is refused from its Content-Length before a byte is
    /// read, or once it grows past it.
    pub async fn receive_body(&self, headers: &HeaderMap, body: axum::body::Body) -> Response {
        let too_large = || {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body is larger than remote_write.max_body_mb ({} MB)",
                    self.max_body >> 20
                ),
            )
        };
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body as u64) {
            return self.answer(Err(too_large()));
        }
        match axum::body::to_bytes(body, self.max_body).await {
            Ok(bytes) => self.receive(headers, &bytes).await,
            Err(e)
                if std::error::Error::source(&e)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>()) =>
            {
                self.answer(Err(too_large()))
            }
            Err(e) => self.answer(Err((
                StatusCode::BAD_REQUEST,
                format!("the body could not be read: {e}"),
            ))),
        }
    }

    /// Answers one request.
    pub async fn receive(&self, headers: &HeaderMap, body: &[u8]) -> Response {
        let outcome = self.accept(headers, body).await;
        self.answer(outcome)
    }

    /// The response to `outcome`, counted by status code.
    fn answer(&self, outcome: Result<(), (StatusCode, String)>) -> Response {
        let (status, message) = match outcome {
            Ok(()) => (StatusCode::NO_CONTENT, None),
            Err((status, message)) => (status, Some(message)),
        };
        self.monitor
            .telemetry()
            .remote_write_requests
            .with_label_values(&[status.as_str()])
            .inc();
        match message {
            None => status.into_response(),
            Some(m) => (status, Json(serde_json::json!({ "error": m }))).into_response(),
        }
    }

    async fn accept(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), (StatusCode, String)> {
        self.check_headers(headers)?;
        let request = match remote_write::decode(body, self.max_decoded) {
            Ok(r) => r,
            Err(e) => {
                let reason = e.to_string();
                // Kept for a look even when it cannot be: the 400 stands.
                let _ = self.dead_letters.send_handled(
                    DEAD_LETTER_SOURCE,
                    DEAD_LETTER_SOURCE,
                    body,
                    &reason,
                );
                return Err((StatusCode::BAD_REQUEST, reason));
            }
        };
        let mapped = self.map.map(&request);
        let telemetry = self.monitor.telemetry();
        for (reason, n) in &mapped.dropped {
            telemetry
                .remote_write_series_dropped
                .with_label_values(&[reason.as_str()])
                .inc_by(*n);
        }
        for (outcome, n) in [("stale", mapped.stale), ("not_finite", mapped.not_finite)] {
            telemetry
                .remote_write_samples
                .with_label_values(&[outcome])
                .inc_by(n);
        }
        self.produce(&mapped.vms).await?;
        telemetry
            .remote_write_samples
            .with_label_values(&["produced"])
            .inc_by(mapped.samples);
        Ok(())
    }

    fn check_headers(&self, headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
        if !self.token.is_empty() {
            use crate::monitor::outcomes::{bearer_token, same};
            match bearer_token(headers) {
                Some(t) if same(t, &self.token) => {}
                Some(_) => return Err((StatusCode::UNAUTHORIZED, "wrong bearer token".into())),
                None => {
                    return Err((
                        StatusCode::UNAUTHORIZED,
                        "remote_write.token is set: send `Authorization: Bearer <token>` (Prometheus: remote_write.authorization.credentials)".into(),
                    ));
                }
            }
        }
        let media_type = crate::monitor::content::media_type(headers);
        if media_type.as_deref() != Some(REMOTE_WRITE_TYPE) {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "Content-Type must be {REMOTE_WRITE_TYPE} (got {})",
                    media_type.map_or("none".to_string(), |t| format!("`{t}`"))
                ),
            ));
        }
        let encoding = headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none");
        if !encoding.trim().eq_ignore_ascii_case("snappy") {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Encoding must be snappy (got `{encoding}`)"),
            ));
        }
        // Remote-Write 2.0 names its message; 1.0 (Prometheus 2.x) does not.
        let proto = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .into_iter()
            .flat_map(|t| t.split(';').skip(1))
            .filter_map(|p| p.trim().strip_prefix("proto="))
            .next();
        if let Some(p) = proto.filter(|p| *p != "prometheus.WriteRequest") {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "only Remote-Write 1.0 (prometheus.WriteRequest) is taken, not `{p}`: set remote_write.protobuf_message to prometheus.WriteRequest"
                ),
            ));
        }
        Ok(())
    }

    /// Produces each VM's snapshots keyed by its id and waits for every
    /// delivery.
    async fn produce(
        &self,
        vms: &std::collections::BTreeMap<String, Vec<VmSnapshot>>,
    ) -> Result<(), (StatusCode, String)> {
        let unavailable = |e: String| {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Kafka did not take the samples ({e}); send them again"),
            )
        };
        let producer = self
            .producer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let result = Self::send_all(&producer, &self.topic, vms, self.timeout).await;
        let fatal = producer.client().fatal_error();
        let fenced = matches!(&result, Err(Failure::Fenced(_)));
        if fatal.is_some() || fenced {
            // librdkafka's idempotent producer is fenced for good once
            // deliveries timed out against a broker that came back.
            tracing::warn!(
                fatal = ?fatal,
                "remote write: the Kafka producer cannot produce any more; starting a new one"
            );
            match create(&self.producer_config) {
                Ok(fresh) => {
                    let old = std::mem::replace(
                        &mut *self.producer.lock().unwrap_or_else(|p| p.into_inner()),
                        Arc::new(fresh),
                    );
                    // Dropping a producer waits for its queue: not here.
                    std::thread::spawn(move || drop(old));
                }
                Err(e) => tracing::warn!("remote write: {e}"),
            }
        }
        result.map_err(|f| unavailable(f.to_string()))
    }

    async fn send_all(
        producer: &FutureProducer,
        topic: &str,
        vms: &std::collections::BTreeMap<String, Vec<VmSnapshot>>,
        timeout: Duration,
    ) -> Result<(), Failure> {
        let mut deliveries = Vec::new();
        for (vm, snapshots) in vms {
            for chunk in snapshots.chunks(SNAPSHOTS_PER_MESSAGE) {
                let payload = serde_json::to_vec(chunk).expect("snapshots always serialise");
                let record = FutureRecord::to(topic).key(vm).payload(&payload);
                match producer.send_result(record) {
                    Ok(delivery) => deliveries.push(delivery),
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        return Err(Failure::Other("the producer's queue is full".into()));
                    }
                    Err((e, _)) => return Err(Failure::of(&e)),
                }
            }
        }
        let all = futures_util::future::join_all(deliveries);
        let results = tokio::time::timeout(timeout + Duration::from_secs(1), all)
            .await
            .map_err(|_| Failure::Other(format!("no answer in {} s", timeout.as_secs())))?;
        for result in results {
            match result {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(Failure::of(&e)),
                Err(_) => return Err(Failure::Other("the producer went away".into())),
            }
        }
        Ok(())
    }
}

/// Why Kafka did not take a request's samples.
enum Failure {
    /// The producer was fenced: only a new one can produce.
    Fenced(String),
    /// Anything else (a broker away, a full queue): retried as it is.
    Other(String),
}

impl Failure {
    fn of(e: &KafkaError) -> Failure {
        match e.rdkafka_error_code() {
            Some(RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch) => {
                Failure::Fenced(e.to_string())
            }
            _ => Failure::Other(e.to_string()),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Fenced(m) | Failure::Other(m) => f.write_str(m),
        }
    }
}

fn create(config: &ClientConfig) -> Result<FutureProducer, ConnectorError> {
    config
        .create::<FutureProducer>()
        .map_err(|e| transport("creating the remote-write producer", e))
}
