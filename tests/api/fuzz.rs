//! schemathesis (from PyPI, installed by scripts/install-tools) fuzzes every
//! operation of `/openapi.json` against the running binary: no 5xx, every
//! response conforming to its documented status, content type, headers and
//! schema, and no request the schema forbids accepted.
//!
//! Left out: `GET /events` (an endless stream: schemathesis would wait for
//! its end) and the `positive_data_acceptance` check, since some rules
//! cannot be said in a schema: a zip range whose minimum is above its
//! maximum, or a zip that falls between configured regions, is a 422.

use std::path::Path;

use crate::helpers::*;

/// Examples per operation and phase: with thirteen operations, over a
/// thousand requests.
const MAX_EXAMPLES: &str = "100";

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let app = TestApp::spawn("schemathesis").await;
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/venv/bin/schemathesis");
    assert!(
        tool.exists(),
        "{} is missing: run scripts/install-tools",
        tool.display()
    );
    let out = tokio::process::Command::new(tool)
        .args(["run", &app.url("/openapi.json")])
        .args(["--url", &app.address])
        .args(["--exclude-path", "/events"])
        .args(["--checks", "all"])
        .args(["--exclude-checks", "positive_data_acceptance"])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--seed", "20261128"])
        .arg("--no-color")
        .current_dir(&app.dir)
        .output()
        .await
        .expect("run schemathesis");
    let report = String::from_utf8_lossy(&out.stdout);
    std::fs::write(app.dir.join("schemathesis.txt"), report.as_bytes()).expect("report");
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It really ran: every operation but the stream, hundreds of requests.
    assert!(report.contains("Tested: 14"), "{report}");
    // "903 generated, 903 passed"
    let generated: usize = report
        .lines()
        .find_map(|l| l.trim().split_once(" generated, "))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_default();
    assert!(generated >= 300, "only {generated} requests:\n{report}");
}
