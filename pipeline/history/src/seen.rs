//! How far each VM's and metric's raw samples are taken in: one flat array
//! indexed by VM slot and metric column, with each name stored once (about
//! 150 bytes a VM of 7 metrics, where maps of strings took 600).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// No sample taken in yet.
const NONE: i64 = i64::MIN;

/// Per VM and metric, samples before this time (ms) were taken in.
#[derive(Debug, Default)]
pub(crate) struct SeenSamples {
    vm_slots: HashMap<Arc<str>, u32>,
    vms: Vec<Arc<str>>,
    metric_columns: HashMap<Arc<str>, u32>,
    metrics: Vec<Arc<str>>,
    /// `slot * stride + column`; `stride` grows (rarely) with the metrics.
    through: Vec<i64>,
    stride: usize,
}

impl SeenSamples {
    /// The progress a checkpoint saved.
    pub(crate) fn from_checkpoint(saved: BTreeMap<String, BTreeMap<String, i64>>) -> SeenSamples {
        let mut seen = SeenSamples::default();
        for (vm, metrics) in saved {
            let slot = seen.vm_slot(&vm);
            for (metric, t) in metrics {
                let column = seen.metric_column(&metric);
                seen.set(slot, column, t);
            }
        }
        seen
    }

    /// The slot of `vm`, given one if it has none.
    pub(crate) fn vm_slot(&mut self, vm: &str) -> u32 {
        if let Some(&slot) = self.vm_slots.get(vm) {
            return slot;
        }
        let slot = self.vms.len() as u32;
        let name: Arc<str> = Arc::from(vm);
        self.vm_slots.insert(name.clone(), slot);
        self.vms.push(name);
        self.through.resize(self.vms.len() * self.stride, NONE);
        slot
    }

    /// The column of `metric`, given one if it has none.
    pub(crate) fn metric_column(&mut self, metric: &str) -> u32 {
        if let Some(&column) = self.metric_columns.get(metric) {
            return column;
        }
        let column = self.metrics.len() as u32;
        let name: Arc<str> = Arc::from(metric);
        self.metric_columns.insert(name.clone(), column);
        self.metrics.push(name);
        if self.metrics.len() > self.stride {
            self.widen((self.stride * 2).max(8));
        }
        column
    }

    fn widen(&mut self, stride: usize) {
        let mut through = vec![NONE; self.vms.len() * stride];
        if self.stride > 0 {
            for (slot, row) in self.through.chunks(self.stride).enumerate() {
                through[slot * stride..slot * stride + self.stride].copy_from_slice(row);
            }
        }
        self.through = through;
        self.stride = stride;
    }

    /// The VM in `slot`.
    pub(crate) fn vm_name(&self, slot: u32) -> &Arc<str> {
        &self.vms[slot as usize]
    }

    /// The metric in `column`.
    pub(crate) fn metric_name(&self, column: u32) -> &Arc<str> {
        &self.metrics[column as usize]
    }

    /// Where `slot`'s samples of `column` are taken in up to (`i64::MIN`:
    /// none yet).
    pub(crate) fn get(&self, slot: u32, column: u32) -> i64 {
        self.through[slot as usize * self.stride + column as usize]
    }

    /// Records that `slot`'s samples of `column` before `t` are taken in.
    pub(crate) fn set(&mut self, slot: u32, column: u32, t: i64) {
        self.through[slot as usize * self.stride + column as usize] = t;
    }

    /// Every (VM, metric, through) with samples taken in, for a checkpoint.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str, i64)> + '_ {
        self.vms.iter().enumerate().flat_map(move |(slot, vm)| {
            self.metrics
                .iter()
                .enumerate()
                .filter_map(move |(column, metric)| {
                    let t = self.through[slot * self.stride + column];
                    (t != NONE).then_some((vm.as_ref(), metric.as_ref(), t))
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_each_vms_progress_per_metric_as_metrics_are_added() {
        let mut seen = SeenSamples::default();
        let a = seen.vm_slot("vm-a");
        let cpu = seen.metric_column("cpu");
        seen.set(a, cpu, 10);
        // Nine more metrics: the array widens, keeping what it held.
        let columns: Vec<u32> = (0..9)
            .map(|i| seen.metric_column(&format!("m{i}")))
            .collect();
        let b = seen.vm_slot("vm-b");
        seen.set(b, columns[8], 7);
        assert_eq!((seen.get(a, cpu), seen.get(b, cpu)), (10, NONE));
        assert_eq!(seen.vm_slot("vm-a"), a);
        let saved: Vec<(&str, &str, i64)> = seen.iter().collect();
        assert_eq!(saved, [("vm-a", "cpu", 10), ("vm-b", "m8", 7)]);
        let map = saved
            .iter()
            .fold(BTreeMap::new(), |mut m, (vm, metric, t)| {
                m.entry(vm.to_string())
                    .or_insert_with(BTreeMap::new)
                    .insert(metric.to_string(), *t);
                m
            });
        let again = SeenSamples::from_checkpoint(map);
        assert_eq!(again.iter().collect::<Vec<_>>(), saved);
    }
}
