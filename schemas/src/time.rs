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
    }
}
