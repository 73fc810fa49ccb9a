//! Dense series slots: one per (VM, metric) pair.
//!
//! Operators keep their state in flat vectors indexed by series slot
//! (`vm_slot * metric_count + metric_slot`), so the hot path does array
//! arithmetic instead of hash lookups. A batch's dictionaries are mapped to
//! slots once per batch, not once per row.

use arrow::array::{Array, StringArray};
use std::collections::HashMap;
use std::sync::Arc;

/// Marks a metric the scorer does not score.
pub const UNSCORED: u16 = u16::MAX;

/// Maps VM ids and metric names to dense slots.
#[derive(Debug, Clone)]
pub struct SeriesIndex {
    metrics: Vec<String>,
    metric_slots: HashMap<String, u16>,
    vm_ids: Vec<Arc<str>>,
    vm_slots: HashMap<Arc<str>, u32>,
}

impl SeriesIndex {
    /// An index over the given scored metrics, with no VMs yet.
    pub fn new(metrics: &[String]) -> SeriesIndex {
        SeriesIndex {
            metrics: metrics.to_vec(),
            metric_slots: metrics
                .iter()
                .enumerate()
                .map(|(i, m)| (m.clone(), i as u16))
                .collect(),
            vm_ids: Vec::new(),
            vm_slots: HashMap::new(),
        }
    }

    /// The scored metrics, in slot order.
    pub fn metrics(&self) -> &[String] {
        &self.metrics
    }

    /// Number of scored metrics.
    pub fn metric_count(&self) -> usize {
        self.metrics.len()
    }

    /// Number of VMs seen so far.
    pub fn vm_count(&self) -> usize {
        self.vm_ids.len()
    }

    /// Number of series slots (VMs × metrics).
    pub fn series_count(&self) -> usize {
        self.vm_ids.len() * self.metrics.len()
    }

    /// VM ids in slot order.
    pub fn vm_ids(&self) -> &[Arc<str>] {
        &self.vm_ids
    }

    /// The slot of a VM, if it has been seen.
    pub fn vm_slot(&self, vm_id: &str) -> Option<u32> {
        self.vm_slots.get(vm_id).copied()
    }

    /// The slot of a VM, registering it if new.
    pub fn vm_slot_or_insert(&mut self, vm_id: &str) -> u32 {
        if let Some(slot) = self.vm_slots.get(vm_id) {
            return *slot;
        }
        let slot = self.vm_ids.len() as u32;
        let id: Arc<str> = Arc::from(vm_id);
        self.vm_ids.push(id.clone());
        self.vm_slots.insert(id, slot);
        slot
    }

    /// Maps every entry of a batch's VM dictionary to a VM slot (registering new VMs).
    pub fn map_vm_dictionary(&mut self, dictionary: &StringArray, out: &mut Vec<u32>) {
        out.clear();
        out.extend((0..dictionary.len()).map(|i| self.vm_slot_or_insert(dictionary.value(i))));
    }

    /// Maps every entry of a batch's metric dictionary to a metric slot, or [`UNSCORED`].
    pub fn map_metric_dictionary(&self, dictionary: &StringArray, out: &mut Vec<u16>) {
        out.clear();
        out.extend((0..dictionary.len()).map(|i| {
            self.metric_slots
                .get(dictionary.value(i))
                .copied()
                .unwrap_or(UNSCORED)
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionaries_map_to_stable_slots() {
        let mut index = SeriesIndex::new(&["cpu".to_string(), "mem".to_string()]);
        let mut vms = Vec::new();
        index.map_vm_dictionary(&StringArray::from(vec!["b", "a"]), &mut vms);
        assert_eq!(vms, vec![0, 1]);
        index.map_vm_dictionary(&StringArray::from(vec!["a", "c"]), &mut vms);
        assert_eq!(vms, vec![1, 2]);
        let mut metrics = Vec::new();
        index.map_metric_dictionary(&StringArray::from(vec!["mem", "disk"]), &mut metrics);
        assert_eq!(metrics, vec![1, UNSCORED]);
        assert_eq!(index.series_count(), 6);
    }
}
