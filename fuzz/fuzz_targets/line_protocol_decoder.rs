//! Any bytes as an InfluxDB line-protocol message (Telegraf's): decoding,
//! the plausibility check the Kafka source applies, and building the batch
//! must never panic.
#![no_main]

use bellwether_schemas::wire::line_protocol::LineProtocolDecoder;
use bellwether_schemas::wire::{SampleBuilder, StagedRows};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut decoder = LineProtocolDecoder::new(Default::default());
    let mut staged = StagedRows::new();
    if decoder
        .decode(data, Some(1_793_577_600_000), &mut staged)
        .is_ok()
        && staged.check_plausible(i64::MAX, 1_000).is_ok()
    {
        let mut builder = SampleBuilder::new();
        builder.append_staged(&staged);
        let batch = builder.finish();
        assert_eq!(batch.num_rows(), staged.len());
    }
});
