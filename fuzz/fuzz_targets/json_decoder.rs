//! Any bytes as a JSON metrics message: decoding, the plausibility check
//! the Kafka source applies, and building the batch must never panic.
#![no_main]

use bellwether_schemas::wire::{SampleBuilder, StagedRows, json};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut staged = StagedRows::new();
    if json::decode(data, Some(1_793_577_600_000), &mut staged).is_ok()
        && staged.check_plausible(i64::MAX, 1_000).is_ok()
    {
        let mut builder = SampleBuilder::new();
        builder.append_staged(&staged);
        let batch = builder.finish();
        assert_eq!(batch.num_rows(), staged.len());
    }
});
