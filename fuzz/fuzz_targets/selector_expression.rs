//! Any text as a canary-group selector expression (`POST /api/groups/preview`
//! takes one unauthenticated): parsing must never panic or exhaust the
//! stack, an error names a column inside the text, and a parsed
//! expression evaluates. Runs the parser's own source file.
#![no_main]

#[path = "../../pipeline/control/src/inventory/expression.rs"]
#[allow(dead_code)]
mod expression;

use bellwether_schemas::{Criticality, VmRecord};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match expression::Expression::parse(text) {
        Ok(e) => {
            let vm = VmRecord {
                id: "web-1".into(),
                tags: [("role".to_string(), "web".to_string())].into(),
                instance_type: "m6i.large".into(),
                region: "eu-west-1".into(),
                criticality: Criticality::Critical,
            };
            let _ = e.matches(&vm);
        }
        Err(e) => assert!(
            e.column >= 1 && e.column <= text.chars().count() + 1,
            "column {} of a {}-character text",
            e.column,
            text.chars().count()
        ),
    }
});
