//! Dense series slots: one per (VM, metric) pair.
//!
//! Operators keep their state in flat vectors indexed by series slot
//! (`vm_slot * metric_count + metric_slot`), so the hot path does array
//! arithmetic instead of hash lookups. A batch's dictionaries are mapped to
//! slots once per batch, not once per row.

use arrow::array::{Array, StringArray};
use std::collections::HashMap;
use std::sync::Arc;

/// The id maps' hasher: foldhash, seeded per process, several times
/// cheaper than std's SipHash on short ids. The maps hold at most the
/// inventory plus `max_unlisted` VMs, whatever a stream sends.
type Hasher = foldhash::quality::RandomState;

/// Marks a metric the scorer does not score.
pub const UNSCORED: u16 = u16::MAX;

/// Marks a VM past the limit of unlisted VMs (see
/// [`SeriesIndex::set_max_unlisted`]): its rows are dropped.
pub const NO_VM: u32 = u32::MAX;

/// Maps VM ids and metric names to dense slots.
///
/// ```
/// use bellwether_operators::series::SeriesIndex;
///
/// let mut index = SeriesIndex::new(&["cpu_percent".to_string(), "error_rate".to_string()]);
/// let web = index.vm_slot_or_insert("web-1");
/// assert_eq!(index.vm_slot_or_insert("db-1"), web + 1);
/// assert_eq!(index.vm_slot("web-1"), Some(web), "a VM keeps its slot");
/// assert_eq!(index.series_count(), 2 * 2, "one series per VM and metric");
/// ```
#[derive(Debug, Clone)]
pub struct SeriesIndex {
    metrics: Vec<String>,
    metric_slots: HashMap<String, u16, Hasher>,
    vm_ids: Vec<Arc<str>>,
    vm_slots: HashMap<Arc<str>, u32, Hasher>,
    /// VMs first seen in data rather than registered.
    unlisted: usize,
    max_unlisted: usize,
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
            vm_slots: HashMap::default(),
            unlisted: 0,
            max_unlisted: usize::MAX,
        }
    }

    /// At most `max` VMs get slots by appearing in a batch; past that, a
    /// new VM id in a batch maps to [`NO_VM`]. VMs registered with
    /// [`SeriesIndex::vm_slot_or_insert`] (the inventory's) always do.
    /// Each slot holds a VM's state for as long as the scorer runs, so
    /// this bounds what a stream of made-up VM ids can take.
    pub fn set_max_unlisted(&mut self, max: usize) {
        self.max_unlisted = max;
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

    /// Maps every entry of a batch's VM dictionary to a VM slot,
    /// registering new VMs while fewer than the unlisted limit were, else
    /// to [`NO_VM`].
    pub fn map_vm_dictionary(&mut self, dictionary: &StringArray, out: &mut Vec<u32>) {
        out.clear();
        for i in 0..dictionary.len() {
            let id = dictionary.value(i);
            let slot = match self.vm_slots.get(id) {
                Some(&slot) => slot,
                None if self.unlisted < self.max_unlisted => {
                    self.unlisted += 1;
                    self.vm_slot_or_insert(id)
                }
                None => NO_VM,
            };
            out.push(slot);
        }
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
    fn vms_first_seen_in_data_are_bounded_and_registered_ones_are_not() {
        let mut index = SeriesIndex::new(&["cpu".to_string()]);
        index.set_max_unlisted(2);
        index.vm_slot_or_insert("listed-0");
        let mut vms = Vec::new();
        index.map_vm_dictionary(
            &StringArray::from(vec!["a", "listed-0", "b", "c"]),
            &mut vms,
        );
        assert_eq!(vms, vec![1, 0, 2, NO_VM]);
        // Known ones keep their slots; the inventory can still add VMs.
        index.map_vm_dictionary(&StringArray::from(vec!["d", "b"]), &mut vms);
        assert_eq!(vms, vec![NO_VM, 2]);
        assert_eq!(index.vm_slot_or_insert("listed-1"), 3);
        assert_eq!(index.vm_count(), 4);
    }

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
