//! Prometheus Remote-Write 1.0: a snappy-compressed protobuf `WriteRequest`.
//!
//! Only what bellwether reads is declared: series' labels and float
//! samples. Exemplars, native histograms and metadata are skipped as
//! unknown fields.

use thiserror::Error;

/// The protobuf `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series, each with its labels and samples.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// The protobuf `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Its labels, `__name__` among them.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Its samples, oldest first.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// The protobuf `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// The label's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// The protobuf `prometheus.Sample`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Sample {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

impl TimeSeries {
    /// The value of label `name`, if the series has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.as_str())
    }
}

/// The bit pattern Prometheus writes as a series' end (a stale marker).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// True when `value` is Prometheus's stale marker.
pub fn is_stale_marker(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

/// A body that is not a remote-write request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("remote write: {0}")]
pub struct RemoteWriteError(pub String);

/// Decodes a request body: snappy block format (not framed), then
/// protobuf. A body that would decompress past `max_decoded_bytes` is
/// refused before anything is allocated for it.
pub fn decode(body: &[u8], max_decoded_bytes: usize) -> Result<WriteRequest, RemoteWriteError> {
    let length = snap::raw::decompress_len(body)
        .map_err(|e| RemoteWriteError(format!("the body is not snappy-compressed: {e}")))?;
    if length > max_decoded_bytes {
        return Err(RemoteWriteError(format!(
            "the body decompresses to {length} bytes, more than the {max_decoded_bytes} allowed"
        )));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| RemoteWriteError(format!("the body is not snappy-compressed: {e}")))?;
    <WriteRequest as prost::Message>::decode(raw.as_slice())
        .map_err(|e| RemoteWriteError(format!("the body is not a protobuf WriteRequest: {e}")))
}

/// Encodes `request` as a sender does (protobuf, then snappy). As in any
/// protobuf 3 encoder, a value of -0.0 is left out as the default and
/// decodes as 0.0.
pub fn encode(request: &WriteRequest) -> Vec<u8> {
    let raw = prost::Message::encode_to_vec(request);
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy compresses any input shorter than 4 GiB")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request Prometheus 2.42 sent (scraping node_exporter with the
    /// shipped recording rules), saved as it arrived.
    const FROM_PROMETHEUS: &[u8] = include_bytes!("../../../tests/fixtures/remote_write/node.bin");
    /// One with the stale markers Prometheus sent once node_exporter stopped.
    const STALE: &[u8] = include_bytes!("../../../tests/fixtures/remote_write/stale.bin");

    #[test]
    fn a_request_from_prometheus_decodes() {
        let request = decode(FROM_PROMETHEUS, 1 << 20).unwrap();
        let names: Vec<_> = request
            .timeseries
            .iter()
            .filter_map(|s| s.label("__name__"))
            .collect();
        assert!(names.contains(&"bellwether:cpu_percent"), "{names:?}");
        assert!(names.contains(&"bellwether:memory_percent"), "{names:?}");
        let cpu = request
            .timeseries
            .iter()
            .find(|s| s.label("__name__") == Some("bellwether:cpu_percent"))
            .unwrap();
        assert_eq!(cpu.label("instance"), Some("127.0.0.1:19100"));
        let sample = cpu.samples[0];
        assert!((0.0..=100.0).contains(&sample.value), "{sample:?}");
        // December 2026, in milliseconds.
        assert!(sample.timestamp > 1_795_000_000_000, "{sample:?}");
    }

    #[test]
    fn stale_markers_are_told_from_other_nans() {
        let request = decode(STALE, 1 << 20).unwrap();
        let stale = request
            .timeseries
            .iter()
            .flat_map(|s| &s.samples)
            .filter(|s| is_stale_marker(s.value))
            .count();
        assert!(stale > 0, "{request:?}");
        assert!(!is_stale_marker(f64::NAN));
    }

    #[test]
    fn what_is_not_a_request_is_refused_with_the_reason() {
        let e = decode(b"{\"not\": \"snappy\"}", 1 << 20).unwrap_err();
        assert!(e.0.contains("not snappy"), "{e}");
        // Valid snappy around bytes that are not protobuf.
        let junk = snap::raw::Encoder::new().compress_vec(&[0xff; 64]).unwrap();
        let e = decode(&junk, 1 << 20).unwrap_err();
        assert!(e.0.contains("not a protobuf WriteRequest"), "{e}");
        // A body claiming to decompress to 4 GB is refused before decompressing.
        let e = decode(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0x00], 1 << 20).unwrap_err();
        assert!(e.0.contains("more than the 1048576 allowed"), "{e}");
    }

    #[test]
    fn encoding_round_trips() {
        let request = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label {
                    name: "__name__".into(),
                    value: "up".into(),
                }],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 1_795_000_000_000,
                }],
            }],
        };
        assert_eq!(decode(&encode(&request), 1 << 20).unwrap(), request);
    }
}
