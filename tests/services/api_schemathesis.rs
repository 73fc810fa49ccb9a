//! Schemathesis (PyPI), a property-based API tester nobody here wrote,
//! against the server's own OpenAPI document: generated requests to every
//! operation, bounded, and not one may get a 5xx or an answer the document
//! does not describe.

use crate::common;

use common::{Bellwether, eventually};
use std::process::Command;
use std::time::Duration;

#[test]
fn schemathesis_finds_no_server_error_and_no_undocumented_answer() {
    let Some(python) = common::python("schemathesis") else {
        return;
    };
    let schemathesis = std::path::Path::new(&python).with_file_name("schemathesis");
    let dir = tempfile::tempdir().unwrap();
    let mut serve = Bellwether::serving_demo(dir.path(), "100000");
    let url = serve.dashboard_url();
    eventually(Duration::from_secs(60), "the OpenAPI document", || {
        ureq::get(&format!("{url}api/openapi.json"))
            .call()
            .ok()
            .map(|_| ())
    });
    let out = Command::new(&schemathesis)
        .args(["run", &format!("{url}api/openapi.json")])
        .args(["--max-examples", "20", "--seed", "20261201"])
        .args(["--checks", "not_a_server_error,response_schema_conformance"])
        .env("NO_COLOR", "1")
        .env(
            "SCHEMATHESIS_HOOKS",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/interop/schemathesis_hooks.py"
            ),
        )
        // Its cache goes to the test's folder, not the work tree.
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The summary line: `1047 generated, 1047 passed` and nothing else.
    let summary = text
        .lines()
        .find(|l| l.contains(" generated, "))
        .unwrap_or_else(|| panic!("no summary: {text}"));
    let counts: Vec<&str> = summary.split(',').map(str::trim).collect();
    assert_eq!(counts.len(), 2, "{summary}");
    assert!(counts[1].ends_with("passed"), "{summary}");
    serve.kill();
}
