//! The demo's curl story (`scripts/demo-check`, which CI runs against
//! `docker compose up`) passes against the real binary and services.

use crate::helpers::*;

#[tokio::test]
async fn the_demo_check_script_passes_against_a_running_app() {
    let app = TestApp::spawn("demo_check").await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo-check");
    let out = tokio::process::Command::new(script)
        .arg(&app.address)
        .env("READY_TIMEOUT", "30")
        .env("REPLAY_TIMEOUT", "30")
        .output()
        .await
        .expect("run scripts/demo-check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("demo-check passed"), "{stdout}");

    // It really went through the outage: region_2's record was queued,
    // then replayed into region_2 itself.
    let docs = app.docs("region_2", "customers").await;
    assert_eq!(docs.len(), 1, "{docs:?}");
    let (end, committed) = app.offsets("region_2").await;
    assert!(end >= 1 && committed == Some(end), "{end} {committed:?}");
}
