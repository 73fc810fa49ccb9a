//! Any bytes as a remote-write body: snappy and protobuf decoding must
//! never panic nor allocate past its limit, and what decodes encodes back
//! to a request that decodes the same.
#![no_main]

use bellwether_schemas::wire::remote_write;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = remote_write::decode(data, 1 << 20) {
        let again = remote_write::decode(&remote_write::encode(&request), usize::MAX).unwrap();
        // NaN values (stale markers among them) compare unequal: compare bits.
        // Protobuf 3 leaves out a field equal to its default and prost
        // takes -0.0 for the default 0.0, so a -0.0 comes back as 0.0.
        let bits_of = |v: f64| if v == 0.0 { 0 } else { v.to_bits() };
        let bits = |r: &remote_write::WriteRequest| -> Vec<(usize, Vec<(u64, i64)>)> {
            r.timeseries
                .iter()
                .map(|s| {
                    (
                        s.labels.len(),
                        s.samples
                            .iter()
                            .map(|x| (bits_of(x.value), x.timestamp))
                            .collect(),
                    )
                })
                .collect()
        };
        assert_eq!(bits(&request), bits(&again));
    }
});
