//! Every metric the shipped alert rules and dashboard use is one a live
//! `/metrics` really has (`deploy/`; the files themselves are checked with
//! promtool in `tests/monitoring.rs`).

use std::collections::BTreeSet;

use crate::helpers::*;

/// The `regiondb_*` names in `text`, histogram series reduced to their
/// family.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in text.match_indices("regiondb_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        names.insert(family.to_owned());
    }
    names
}

#[tokio::test]
async fn every_metric_the_alerts_and_the_dashboard_use_is_exported() {
    let app = TestApp::spawn("monitoring_names").await;
    app.stored(&customer("m1", ZIP_1)).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| std::fs::read_to_string(root.join(p)).expect("deploy file");
    let mut used = names_in(&read("deploy/prometheus/alerts.yml"));
    used.extend(names_in(&read("deploy/grafana/regiondb.json")));
    assert!(used.len() >= 12, "{used:?}");
    let missing = std::cell::RefCell::new(Vec::new());
    wait_until("every family in a scrape", DEADLINE, || async {
        let scrape = get_text_at(&app.http, &app.address, "/metrics").await;
        let exported: BTreeSet<&str> = (scrape.lines())
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        let absent: Vec<String> = (used.iter())
            .filter(|n| !exported.contains(n.as_str()))
            .cloned()
            .collect();
        let done = absent.is_empty();
        eprintln!("not exported yet: {absent:?}");
        *missing.borrow_mut() = absent;
        done
    })
    .await;
    assert!(missing.borrow().is_empty());
}
