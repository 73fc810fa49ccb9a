//! Fleet-wide events: what the world does to patched and unpatched VMs alike.
//!
//! A traffic surge, a slow dependency, a regional incident or a late batch
//! job moves every VM it reaches, whether or not it runs the patch. They are
//! the events a canary judge must not blame on a patch.

use super::fault::Readings;
use bellwether_schemas::VmRecord;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Most fleet events one simulation takes.
pub const MAX_EVENTS: usize = 64;

/// What happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// The whole fleet: CPU +25 points, response time ×2.2, network latency ×1.8.
    Surge,
    /// One role (default `api`): a dependency slows, response time ×2 and
    /// +0.6 points of errors.
    Dependency,
    /// One region (default the fleet's first): network latency +6 ms, +2
    /// points of errors.
    Region,
    /// One role (default `worker`): a batch job runs late, CPU +30 points,
    /// disk I/O ×2.5.
    Batch,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 4] = [
        EventKind::Surge,
        EventKind::Dependency,
        EventKind::Region,
        EventKind::Batch,
    ];

    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Surge => "surge",
            EventKind::Dependency => "dependency",
            EventKind::Region => "region",
            EventKind::Batch => "batch",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown event `{s}`; known events: {}",
                    EventKind::ALL.map(EventKind::as_str).join(", ")
                )
            })
    }
}

/// One event of `[[simulation.events]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FleetEvent {
    /// What happens.
    pub kind: EventKind,
    /// Minutes after the patch is approved that it starts (negative: before).
    pub start_minutes: f64,
    /// How long it lasts, in minutes.
    #[serde(default = "default_duration")]
    pub duration_minutes: f64,
    /// How strong: 1 is the size each kind names, 0.5 half of it.
    #[serde(default = "default_size")]
    pub size: f64,
    /// The role (dependency, batch) or region (region) it hits; unset: the
    /// kind's default. The surge hits everyone.
    #[serde(default)]
    pub target: Option<String>,
}

fn default_duration() -> f64 {
    60.0
}

fn default_size() -> f64 {
    1.0
}

/// Minutes an event takes to build up, and to fade.
const RAMP_MINUTES: f64 = 3.0;

impl FleetEvent {
    /// An event of `kind` starting `start_minutes` after the patch, for an
    /// hour, at its named size.
    pub fn new(kind: EventKind, start_minutes: f64) -> FleetEvent {
        FleetEvent {
            kind,
            start_minutes,
            duration_minutes: default_duration(),
            size: default_size(),
            target: None,
        }
    }

    /// True when the event reaches `vm` (`first_region`: the fleet's first).
    pub fn reaches(&self, vm: &VmRecord, first_region: &str) -> bool {
        let role = vm.tags.get("role").map(String::as_str);
        match self.kind {
            EventKind::Surge => true,
            EventKind::Dependency => role == Some(self.target.as_deref().unwrap_or("api")),
            EventKind::Batch => role == Some(self.target.as_deref().unwrap_or("worker")),
            EventKind::Region => vm.region == self.target.as_deref().unwrap_or(first_region),
        }
    }

    /// How far the event has built up `minutes` after the patch (0 to 1).
    pub fn strength(&self, minutes: f64) -> f64 {
        let since = minutes - self.start_minutes;
        let until = self.start_minutes + self.duration_minutes - minutes;
        (since / RAMP_MINUTES)
            .min(until / RAMP_MINUTES)
            .clamp(0.0, 1.0)
    }

    /// Applies the event at `strength` (0 to 1) to a VM's readings.
    pub fn apply(&self, r: &mut Readings, strength: f64) {
        let k = strength * self.size;
        match self.kind {
            EventKind::Surge => {
                r.cpu += 25.0 * k;
                r.response *= 1.0 + 1.2 * k;
                r.latency *= 1.0 + 0.8 * k;
                r.disk *= 1.0 + 0.5 * k;
            }
            EventKind::Dependency => {
                r.response *= 1.0 + 1.0 * k;
                r.errors += 0.6 * k;
                r.success -= 0.7 * k;
            }
            EventKind::Region => {
                r.latency += 6.0 * k;
                r.response += 18.0 * k;
                r.errors += 2.0 * k;
                r.success -= 2.2 * k;
            }
            EventKind::Batch => {
                r.cpu += 30.0 * k;
                r.disk *= 1.0 + 1.5 * k;
                r.response *= 1.0 + 0.2 * k;
            }
        }
    }

    /// Checks the event's values, naming the key under `key`.
    pub fn problem(&self, key: &str) -> Option<(String, String)> {
        let bad = |field: &str, why: String| Some((format!("{key}.{field}"), why));
        if !self.start_minutes.is_finite() || self.start_minutes.abs() > 1e6 {
            return bad(
                "start_minutes",
                format!("{} is not a number of minutes", self.start_minutes),
            );
        }
        if !(self.duration_minutes > 0.0 && self.duration_minutes <= 1e6) {
            return bad(
                "duration_minutes",
                format!(
                    "{} is not a positive number of minutes",
                    self.duration_minutes
                ),
            );
        }
        if !(self.size > 0.0 && self.size <= 100.0) {
            return bad(
                "size",
                format!("{} is not a size between 0 and 100", self.size),
            );
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_ramps_up_holds_and_fades() {
        let e = FleetEvent::new(EventKind::Surge, 40.0);
        assert_eq!(e.strength(39.0), 0.0);
        assert!((e.strength(41.5) - 0.5).abs() < 1e-9);
        assert_eq!(e.strength(70.0), 1.0);
        assert_eq!(e.strength(100.0), 0.0);
        let mut r = Readings {
            cpu: 20.0,
            memory: 50.0,
            disk: 100.0,
            latency: 1.0,
            response: 100.0,
            errors: 0.5,
            success: 99.0,
        };
        e.apply(&mut r, 1.0);
        assert!((r.cpu - 45.0).abs() < 1e-9 && (r.response - 220.0).abs() < 1e-9);
    }

    #[test]
    fn kinds_parse_and_reach_their_targets() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>().unwrap(), kind);
        }
        assert!("meteor".parse::<EventKind>().unwrap_err().contains("surge"));
        let vm = VmRecord {
            id: "vm-1".into(),
            tags: [("role".to_string(), "api".to_string())].into(),
            instance_type: "m6i.large".into(),
            region: "eu-west-1".into(),
            criticality: bellwether_schemas::Criticality::Standard,
        };
        assert!(FleetEvent::new(EventKind::Dependency, 0.0).reaches(&vm, "us-east-1"));
        assert!(!FleetEvent::new(EventKind::Batch, 0.0).reaches(&vm, "us-east-1"));
        assert!(!FleetEvent::new(EventKind::Region, 0.0).reaches(&vm, "us-east-1"));
        assert!(FleetEvent::new(EventKind::Region, 0.0).reaches(&vm, "eu-west-1"));
    }
}
