//! Event-time watermarks: the minimum over inputs, ignoring idle ones.

use crate::operator::InputId;

/// Tracks the highest event time seen on each input. The watermark is the
/// minimum over active inputs, so a lagging partition holds event time back,
/// while an input marked idle does not stall it.
///
/// ```
/// use bellwether_operators::watermark::WatermarkTracker;
///
/// let mut clock = WatermarkTracker::default();
/// clock.observe(0, 1_000);
/// clock.observe(1, 400);
/// assert_eq!(clock.watermark(), Some(400), "partition 1 lags");
/// clock.set_idle(1, true);
/// assert_eq!(clock.watermark(), Some(1_000), "an idle partition holds nothing back");
/// ```
#[derive(Debug, Default, Clone)]
pub struct WatermarkTracker {
    inputs: Vec<InputClock>,
}

#[derive(Debug, Default, Clone, Copy)]
struct InputClock {
    max_event_ms: Option<i64>,
    idle: bool,
}

impl WatermarkTracker {
    /// Records that `input` has seen events up to `event_ms`. Seeing data makes an idle input active.
    pub fn observe(&mut self, input: InputId, event_ms: i64) {
        let clock = self.clock(input);
        clock.max_event_ms = Some(clock.max_event_ms.map_or(event_ms, |m| m.max(event_ms)));
        clock.idle = false;
    }

    /// Marks an input idle (it no longer holds the watermark back) or active.
    pub fn set_idle(&mut self, input: InputId, idle: bool) {
        self.clock(input).idle = idle;
    }

    /// The watermark: the least max event time over active inputs that have
    /// seen data. `None` until some input has seen data; when every input is
    /// idle, the highest time seen (nothing more is coming from anyone).
    pub fn watermark(&self) -> Option<i64> {
        let mut least: Option<i64> = None;
        for clock in self.inputs.iter().filter(|c| !c.idle) {
            // An active input that has seen nothing yet: we cannot know where it is.
            let seen = clock.max_event_ms?;
            least = Some(least.map_or(seen, |l| l.min(seen)));
        }
        least.or_else(|| self.inputs.iter().filter_map(|c| c.max_event_ms).max())
    }

    fn clock(&mut self, input: InputId) -> &mut InputClock {
        if self.inputs.len() <= input {
            self.inputs.resize(input + 1, InputClock::default());
        }
        &mut self.inputs[input]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_is_the_slowest_active_input() {
        let mut w = WatermarkTracker::default();
        assert_eq!(w.watermark(), None);
        w.observe(0, 100);
        w.observe(1, 40);
        assert_eq!(w.watermark(), Some(40));
        w.observe(1, 30); // out of order: max stays
        assert_eq!(w.watermark(), Some(40));
    }

    #[test]
    fn an_idle_input_does_not_stall_event_time() {
        let mut w = WatermarkTracker::default();
        w.observe(0, 100);
        w.observe(1, 40);
        w.set_idle(1, true);
        assert_eq!(w.watermark(), Some(100));
        w.observe(1, 50); // data wakes it up
        assert_eq!(w.watermark(), Some(50));
    }

    #[test]
    fn an_active_input_with_no_data_holds_the_watermark() {
        let mut w = WatermarkTracker::default();
        w.set_idle(1, false);
        w.observe(0, 100);
        assert_eq!(w.watermark(), None);
        w.set_idle(1, true);
        assert_eq!(w.watermark(), Some(100));
    }
}
