//! What the benches without a broker share: their settings from the
//! environment, the process's CPU time, and a control topic that stays
//! quiet.

use bellwether::connector::{ConnectorError, MessageSource};
use bellwether_schemas::ControlMessage;

/// `name` from the environment as a number, else `default`.
pub fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn usage() -> libc::rusage {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage
}

/// CPU seconds this process has used (user and system, every thread).
pub fn cpu_seconds() -> f64 {
    let usage = usage();
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

/// Peak resident set size so far, in MB.
#[allow(dead_code)]
pub fn peak_rss_mb() -> f64 {
    usage().ru_maxrss as f64 / 1024.0
}

/// No operator commands, approvals or reports come in.
pub struct NoControl;

impl MessageSource<ControlMessage> for NoControl {
    fn poll(&mut self, _: usize) -> Result<Vec<ControlMessage>, ConnectorError> {
        Ok(Vec::new())
    }
    fn commit(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
}
