//! Maintenance windows: when a wave may start.
//!
//! A window opens at each time its cron expression names, read in its time
//! zone (daylight saving included), and stays open `duration_minutes`. The
//! rollout actor asks it with event time, as it asks everything else, so a
//! simulated week and a real one follow the same windows.

use super::config::MaintenanceWindowConfig;
use bellwether_schemas::EventTime;
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use std::str::FromStr;

/// A maintenance window, ready to ask: its cron expression and time zone
/// were parsed once, when the config was read.
#[derive(Debug, Clone)]
pub struct MaintenanceWindow {
    cron: Cron,
    timezone: Tz,
    duration_ms: i64,
    text: String,
}

/// A cron expression of five fields (minute hour day-of-month month
/// day-of-week), parsed when the config is read: a bad one is refused
/// there, naming its key.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct CronSchedule {
    cron: Cron,
    text: String,
}

impl TryFrom<String> for CronSchedule {
    type Error = String;

    fn try_from(text: String) -> Result<CronSchedule, String> {
        let fields = text.split_whitespace().count();
        if fields != 5 {
            return Err(format!(
                "`{text}` has {fields} fields; give five: minute hour day-of-month month day-of-week"
            ));
        }
        let cron = Cron::from_str(&text).map_err(|e| format!("`{text}`: {e}"))?;
        Ok(CronSchedule { cron, text })
    }
}

impl From<CronSchedule> for String {
    fn from(c: CronSchedule) -> String {
        c.text
    }
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &CronSchedule) -> bool {
        self.text == other.text
    }
}

impl std::fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// An IANA time zone (`Europe/Berlin`), parsed when the config is read.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZoneName(Tz);

impl TimeZoneName {
    /// Coordinated Universal Time.
    pub const UTC: TimeZoneName = TimeZoneName(Tz::UTC);
}

impl TryFrom<String> for TimeZoneName {
    type Error = String;

    fn try_from(text: String) -> Result<TimeZoneName, String> {
        Tz::from_str(&text).map(TimeZoneName).map_err(|_| {
            format!("`{text}` is not an IANA time zone (e.g. UTC, Europe/Berlin, America/New_York)")
        })
    }
}

impl From<TimeZoneName> for String {
    fn from(t: TimeZoneName) -> String {
        t.0.name().to_string()
    }
}

impl std::fmt::Display for TimeZoneName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name())
    }
}

impl MaintenanceWindow {
    /// The configured window (its parts were parsed with the config).
    pub fn new(config: &MaintenanceWindowConfig) -> MaintenanceWindow {
        MaintenanceWindow {
            cron: config.cron.cron.clone(),
            timezone: config.timezone.0,
            duration_ms: config.duration_minutes as i64 * EventTime::MINUTE_MS,
            text: format!(
                "`{}` {} for {} min",
                config.cron, config.timezone, config.duration_minutes
            ),
        }
    }

    fn local(&self, t: EventTime) -> Option<DateTime<Tz>> {
        let utc: DateTime<Utc> = Utc.timestamp_millis_opt(t.0).single()?;
        Some(utc.with_timezone(&self.timezone))
    }

    /// When the window that holds `t` opened, if one does.
    pub fn opened_at(&self, t: EventTime) -> Option<EventTime> {
        let local = self.local(t)?;
        let start = self.cron.find_previous_occurrence(&local, true).ok()?;
        let start = EventTime(start.timestamp_millis());
        (t.0 < start.0 + self.duration_ms).then_some(start)
    }

    /// True when `t` falls inside a window.
    pub fn is_open(&self, t: EventTime) -> bool {
        self.opened_at(t).is_some()
    }

    /// `t` itself when the window is open, else when it opens next.
    pub fn next_open(&self, t: EventTime) -> Option<EventTime> {
        if self.is_open(t) {
            return Some(t);
        }
        let local = self.local(t)?;
        let next = self.cron.find_next_occurrence(&local, false).ok()?;
        Some(EventTime(next.timestamp_millis()))
    }
}

impl std::fmt::Display for MaintenanceWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(cron: &str, tz: &str, minutes: u32) -> Result<MaintenanceWindow, String> {
        Ok(MaintenanceWindow::new(&MaintenanceWindowConfig {
            cron: CronSchedule::try_from(cron.to_string())?,
            timezone: TimeZoneName::try_from(tz.to_string())?,
            duration_minutes: minutes,
        }))
    }

    fn at(text: &str) -> EventTime {
        EventTime(
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .timestamp_millis(),
        )
    }

    #[test]
    fn a_saturday_night_window_in_berlin_opens_at_local_two() {
        let w = window("0 2 * * SAT", "Europe/Berlin", 240).unwrap();
        // 2026-12-05 is a Saturday; Berlin is UTC+1 in winter.
        assert!(!w.is_open(at("2026-12-05T00:59:00Z")));
        assert!(w.is_open(at("2026-12-05T01:00:00Z")));
        assert!(w.is_open(at("2026-12-05T04:59:00Z")));
        assert!(!w.is_open(at("2026-12-05T05:00:00Z")));
        assert_eq!(
            w.next_open(at("2026-12-02T12:00:00Z")),
            Some(at("2026-12-05T01:00:00Z"))
        );
        // In summer Berlin is UTC+2: the same local time is an hour earlier in UTC.
        assert_eq!(
            w.next_open(at("2026-07-01T00:00:00Z")),
            Some(at("2026-07-04T00:00:00Z"))
        );
        let inside = at("2026-12-05T03:00:00Z");
        assert_eq!(w.next_open(inside), Some(inside));
        assert_eq!(w.opened_at(inside), Some(at("2026-12-05T01:00:00Z")));
    }

    #[test]
    fn a_bad_cron_or_time_zone_is_refused_saying_why() {
        assert!(window("0 2 * *", "UTC", 60).unwrap_err().contains("five"));
        assert!(window("0 25 * * *", "UTC", 60).is_err());
        assert!(
            window("0 2 * * *", "Mars/Olympus", 60)
                .unwrap_err()
                .contains("IANA")
        );
        let w = window("30 1 * * SUN", "America/New_York", 180).unwrap();
        assert_eq!(w.to_string(), "`30 1 * * SUN` America/New_York for 180 min");
    }
}
