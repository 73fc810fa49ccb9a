//! Event time: milliseconds since the Unix epoch, UTC.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An instant in event time (when a metric was measured or a command was
/// decided), in milliseconds since the Unix epoch, UTC.
///
/// Bellwether never reads the wall clock in its decisions: rollouts bake and
/// windows close on event time, so the same input gives the same decisions,
/// whether it streams live or replays a simulated day in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventTime(pub i64);

impl EventTime {
    /// Milliseconds in one minute.
    pub const MINUTE_MS: i64 = 60_000;
    /// Milliseconds in one hour.
    pub const HOUR_MS: i64 = 3_600_000;
    /// Milliseconds in one day.
    pub const DAY_MS: i64 = 86_400_000;

    /// Milliseconds since the epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// This instant plus a number of milliseconds.
    pub fn plus_ms(self, ms: i64) -> EventTime {
        EventTime(self.0 + ms)
    }

    /// The wall clock now: for what an operator asks or reports, never
    /// for decisions.
    pub fn now() -> EventTime {
        EventTime(chrono::Utc::now().timestamp_millis())
    }

    /// An RFC 3339 time (`2026-11-30T12:00:00Z`), or `None` for now.
    pub fn parse_or_now(text: Option<&str>) -> Result<EventTime, String> {
        match text {
            Some(t) => chrono::DateTime::parse_from_rfc3339(t)
                .map(|t| EventTime(t.timestamp_millis()))
                .map_err(|e| format!("`{t}`: {e} (use RFC 3339)")),
            None => Ok(EventTime::now()),
        }
    }

    /// RFC 3339 in UTC, to the millisecond when it has one
    /// (`2026-11-03T06:00:00Z`, `2026-11-03T06:00:00.250Z`).
    pub fn rfc3339(self) -> String {
        match chrono::DateTime::from_timestamp_millis(self.0) {
            Some(t) if self.0 % 1000 == 0 => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            None => format!("{}ms", self.0),
        }
    }

    /// Whole minutes from `earlier` to this instant.
    pub fn minutes_since(self, earlier: EventTime) -> i64 {
        (self.0 - earlier.0) / Self::MINUTE_MS
    }
}

impl fmt::Display for EventTime {
    /// Formats as `YYYY-MM-DD HH:MM` UTC (civil-from-days, no time zone data needed).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02} {:02}:{:02}",
            rem / 3600,
            (rem % 3600) / 60
        )
    }
}

/// Serde for an [`EventTime`] a person reads (API answers, `--format
/// json`, the demo's summary): written as RFC 3339, read as RFC 3339 or
/// as milliseconds since the epoch. The topics' messages keep milliseconds.
///
/// ```
/// use bellwether_schemas::EventTime;
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct T {
///     #[serde(with = "bellwether_schemas::time::rfc3339")]
///     at: EventTime,
/// }
/// let json = serde_json::to_string(&T { at: EventTime(1_793_685_600_000) }).unwrap();
/// assert_eq!(json, r#"{"at":"2026-11-03T06:00:00Z"}"#);
/// assert_eq!(serde_json::from_str::<T>(&json).unwrap().at, EventTime(1_793_685_600_000));
/// assert_eq!(serde_json::from_str::<T>(r#"{"at":1793685600000}"#).unwrap().at.0, 1_793_685_600_000);
/// ```
pub mod rfc3339 {
    use super::EventTime;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes RFC 3339.
    pub fn serialize<S: Serializer>(t: &EventTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.rfc3339())
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Millis(i64),
        Text(String),
    }

    fn read(e: Either) -> Result<EventTime, String> {
        match e {
            Either::Millis(ms) => Ok(EventTime(ms)),
            Either::Text(t) => EventTime::parse_or_now(Some(&t)),
        }
    }

    /// Reads RFC 3339 or milliseconds since the epoch.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<EventTime, D::Error> {
        read(Either::deserialize(d)?).map_err(D::Error::custom)
    }

    /// The same for an optional time (`null` when absent).
    pub mod option {
        use super::{Either, EventTime, read};
        use serde::{Deserialize, Deserializer, Serializer, de::Error};

        /// Writes RFC 3339 or `null`.
        pub fn serialize<S: Serializer>(t: &Option<EventTime>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&t.rfc3339()),
                None => s.serialize_none(),
            }
        }

        /// Reads RFC 3339, milliseconds or `null`.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<EventTime>, D::Error> {
            Option::<Either>::deserialize(d)?
                .map(read)
                .transpose()
                .map_err(D::Error::custom)
        }
    }
}

/// Howard Hinnant's days-to-civil conversion.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_civil_time() {
        // 2026-11-26 15:41:00 UTC
        assert_eq!(EventTime(1_795_707_660_000).to_string(), "2026-11-26 15:41");
        assert_eq!(EventTime(0).to_string(), "1970-01-01 00:00");
        assert_eq!(
            EventTime(1_795_707_660_000).rfc3339(),
            "2026-11-26T15:41:00Z"
        );
        assert_eq!(
            EventTime(1_795_707_660_250).rfc3339(),
            "2026-11-26T15:41:00.250Z"
        );
    }
}
