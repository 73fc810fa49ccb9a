//! Bellwether's JSON metric messages.
//!
//! One message holds one object or an array of objects. An object is either
//! a wide snapshot of one VM at one instant:
//!
//! ```json
//! {"vm_id": "web-0042", "time": "2026-11-02T10:15:00Z",
//!  "metrics": {"cpu_percent": 41.5, "response_time_ms": 182.0}}
//! ```
//!
//! or one metric:
//!
//! ```json
//! {"vm_id": "web-0042", "time": 1793614500000, "metric": "cpu_percent", "value": 41.5}
//! ```
//!
//! `time` (or `timestamp`) is milliseconds since the epoch or an RFC 3339
//! string; without it the Kafka record's timestamp is used. A `null` metric
//! value is skipped (not measured); other fields are ignored.

use super::{DecodeError, InputFormat, StagedRows};
use crate::metric::VmSnapshot;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// Decodes one JSON message into `out` (appending; on error `out` may hold
/// part of the message, so callers clear it). `fallback_ms` is the time of
/// objects that carry none (the Kafka record's timestamp).
pub fn decode(
    payload: &[u8],
    fallback_ms: Option<i64>,
    out: &mut StagedRows,
) -> Result<(), DecodeError> {
    let mut de = serde_json::Deserializer::from_slice(payload);
    MessageSeed { out, fallback_ms }
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| DecodeError::new(InputFormat::Json, e.to_string()))
}

/// Encodes a wide snapshot as bellwether's JSON (what `bellwether simulate`
/// publishes).
pub fn encode_snapshot(snapshot: &VmSnapshot) -> Vec<u8> {
    serde_json::to_vec(snapshot).expect("a snapshot always serialises")
}

struct MessageSeed<'o> {
    out: &'o mut StagedRows,
    fallback_ms: Option<i64>,
}

impl<'de> DeserializeSeed<'de> for MessageSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MessageSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a metric object or an array of metric objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(ObjectSeed {
                out: &mut *self.out,
                fallback_ms: self.fallback_ms,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        ObjectSeed {
            out: self.out,
            fallback_ms: self.fallback_ms,
        }
        .visit_map(map)
    }
}

struct ObjectSeed<'o> {
    out: &'o mut StagedRows,
    fallback_ms: Option<i64>,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a metric object with vm_id, time and metrics (or metric and value)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let out = self.out;
        let first = out.len();
        let mut vm = None;
        let mut time = None;
        let mut metric = None;
        let mut value: Option<Option<f64>> = None;
        let mut wide = false;
        while let Some(key) = map.next_key::<Str<'de>>()? {
            match key.0.as_ref() {
                "vm_id" => vm = Some(out.intern(&map.next_value::<Str<'de>>()?.0)),
                "time" | "timestamp" => time = Some(map.next_value::<Time>()?.0),
                "metrics" => {
                    map.next_value_seed(MetricsSeed { out: &mut *out })?;
                    wide = true;
                }
                "metric" => metric = Some(out.intern(&map.next_value::<Str<'de>>()?.0)),
                "value" => value = Some(map.next_value::<Option<f64>>()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let vm = vm.ok_or_else(|| de::Error::missing_field("vm_id"))?;
        let time_ms = time
            .or(self.fallback_ms)
            .ok_or_else(|| de::Error::missing_field("time"))?;
        match (wide, metric, value) {
            (true, None, None) => {}
            (false, Some(metric), Some(value)) => {
                if let Some(value) = value {
                    out.push(vm.clone(), metric, time_ms, value);
                }
            }
            (false, Some(_), None) => return Err(de::Error::missing_field("value")),
            (false, None, _) => {
                return Err(de::Error::custom(
                    "missing field `metrics` (or `metric` and `value`)",
                ));
            }
            (true, _, _) => {
                return Err(de::Error::custom(
                    "an object has either `metrics` or `metric` and `value`, not both",
                ));
            }
        }
        for row in out.rows_from(first) {
            row.vm = vm.clone();
            row.time_ms = time_ms;
        }
        Ok(())
    }
}

/// The `metrics` object: name → number (or null), staged as rows whose VM
/// and time are filled in once the whole object is read.
struct MetricsSeed<'o> {
    out: &'o mut StagedRows,
}

impl<'de> DeserializeSeed<'de> for MetricsSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MetricsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of metric name to number")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(name) = map.next_key::<Str<'de>>()? {
            let value: Option<f64> = map
                .next_value()
                .map_err(|e: A::Error| de::Error::custom(format!("metric `{}`: {e}", name.0)))?;
            if let Some(value) = value {
                let metric = self.out.intern(&name.0);
                self.out.push(0..0, metric, 0, value);
            }
        }
        Ok(())
    }
}

/// A string borrowed from the message when it has no escapes.
struct Str<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Str<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Milliseconds since the epoch, or an RFC 3339 string.
struct Time(i64);

impl<'de> de::Deserialize<'de> for Time {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Time;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("milliseconds since the epoch or an RFC 3339 time")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Time, E> {
                Ok(Time(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Time, E> {
                i64::try_from(v)
                    .map(Time)
                    .map_err(|_| E::custom(format!("time {v} is out of range")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Time, E> {
                if v.is_finite() {
                    Ok(Time(v as i64))
                } else {
                    Err(E::custom("time is not a finite number"))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Time, E> {
                chrono::DateTime::parse_from_rfc3339(v)
                    .map(|t| Time(t.timestamp_millis()))
                    .map_err(|e| E::custom(format!("time `{v}` is not RFC 3339: {e}")))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(
        payload: &str,
        fallback: Option<i64>,
    ) -> Result<Vec<(String, i64, String, f64)>, DecodeError> {
        let mut out = StagedRows::new();
        decode(payload.as_bytes(), fallback, &mut out)?;
        Ok(out.to_owned_rows())
    }

    fn row(vm: &str, t: i64, m: &str, x: f64) -> (String, i64, String, f64) {
        (vm.into(), t, m.into(), x)
    }

    #[test]
    fn a_wide_snapshot_becomes_one_row_per_metric_even_when_vm_id_comes_last() {
        let got = rows(
            r#"{"time": 5000, "metrics": {"cpu_percent": 41.5, "memory_percent": null, "response_time_ms": 182}, "vm_id": "web-1", "region": "eu"}"#,
            None,
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                row("web-1", 5000, "cpu_percent", 41.5),
                row("web-1", 5000, "response_time_ms", 182.0)
            ]
        );
    }

    #[test]
    fn single_metrics_rfc3339_times_and_arrays() {
        let got = rows(
            r#"[{"vm_id":"a","time":"2026-11-02T00:00:01Z","metric":"cpu_percent","value":1.5},
                {"vm_id":"b\u0031","metric":"error_rate_percent","value":0.25}]"#,
            Some(42),
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                row("a", 1_793_577_601_000, "cpu_percent", 1.5),
                row("b1", 42, "error_rate_percent", 0.25)
            ]
        );
    }

    #[test]
    fn errors_say_what_and_where() {
        let err = |p: &str| rows(p, None).unwrap_err().reason;
        assert!(
            err(r#"{"vm_id":"a","time":1,"metrics":{"cpu_percent":"high"}}"#)
                .contains("metric `cpu_percent`")
        );
        assert!(
            err(r#"{"time":1,"metric":"cpu_percent","value":1}"#).contains("missing field `vm_id`")
        );
        assert!(
            err(r#"{"vm_id":"a","metric":"cpu_percent","value":1}"#)
                .contains("missing field `time`")
        );
        assert!(
            err(r#"{"vm_id":"a","time":"yesterday","metric":"x","value":1}"#).contains("RFC 3339")
        );
        assert!(err(r#"{"vm_id":"a","time":1}"#).contains("metrics"));
        assert!(err(r#"{"vm_id":"a","time":1,"metric":"x","value":1"#).contains("line 1 column"));
        assert!(
            err(r#"{"vm_id":"a","time":1,"metric":"x","value":1} trailing"#).contains("trailing")
        );
    }

    #[test]
    fn encoded_snapshots_decode_back() {
        let snap = VmSnapshot {
            vm_id: "vm-7".into(),
            time: crate::EventTime(99),
            metrics: [("cpu_percent".to_string(), 3.0)].into(),
        };
        let got = rows(std::str::from_utf8(&encode_snapshot(&snap)).unwrap(), None).unwrap();
        assert_eq!(got, vec![row("vm-7", 99, "cpu_percent", 3.0)]);
    }
}
