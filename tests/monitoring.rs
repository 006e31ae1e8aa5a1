//! What operators install next to regiondb, checked with the real tools:
//! the alert rules (`promtool check rules`, and `promtool test rules` with
//! a unit test per alert), the Prometheus configuration (`promtool check
//! config`, and the image's flags against `prometheus --help`), the
//! Grafana provisioning and dashboard (against Grafana's documented
//! provisioning format), and the compose profile that runs them. That
//! every metric they use is one regiondb really exports is checked against
//! a live scrape in `tests/api/monitoring.rs`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_slice(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    yaml.apply_merge().expect("merge keys");
    serde_json::to_value(yaml).expect("as JSON")
}

fn dashboard() -> Value {
    let text = std::fs::read(root().join("deploy/grafana/regiondb.json")).expect("dashboard");
    serde_json::from_slice(&text).expect("the dashboard is JSON")
}

/// Runs a Debian `prometheus` package tool (scripts/install-tools).
fn tool(name: &str, args: &[&str]) -> String {
    let out = Command::new(name)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("{name} (Debian package prometheus): {e}"));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{name} {args:?}:\n{said}");
    said
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    tool(
        "promtool",
        &["check", "rules", "deploy/prometheus/alerts.yml"],
    );
    let said = tool(
        "promtool",
        &["test", "rules", "deploy/prometheus/alerts_test.yml"],
    );
    assert!(said.contains("SUCCESS"), "{said}");
    tool(
        "promtool",
        &["check", "config", "deploy/prometheus/prometheus.yml"],
    );
}

fn alerts() -> Vec<Value> {
    let rules = yaml("deploy/prometheus/alerts.yml");
    rules["groups"][0]["rules"]
        .as_array()
        .expect("rules")
        .clone()
}

#[test]
fn every_alert_is_unit_tested_both_ways_and_says_what_to_do() {
    let tests = yaml("deploy/prometheus/alerts_test.yml");
    let monitoring = std::fs::read_to_string(root().join("docs/monitoring.md")).expect("doc");
    let anchors: BTreeSet<String> = (monitoring.lines())
        .filter_map(|l| l.strip_prefix("### "))
        .map(|h| h.trim().to_lowercase())
        .collect();
    for rule in alerts() {
        let name = rule["alert"].as_str().expect("alert name");
        let cases: Vec<&Value> = (tests["tests"].as_array().expect("tests").iter())
            .flat_map(|t| t["alert_rule_test"].as_array().into_iter().flatten())
            .filter(|c| c["alertname"] == name)
            .collect();
        let fires = cases
            .iter()
            .any(|c| c["exp_alerts"].as_array().is_some_and(|a| !a.is_empty()));
        let quiet = cases
            .iter()
            .any(|c| c["exp_alerts"].as_array().is_some_and(Vec::is_empty));
        assert!(
            fires && quiet,
            "{name}: a case that fires and one that does not"
        );
        for key in ["summary", "description", "runbook"] {
            assert!(rule["annotations"][key].is_string(), "{name} has a {key}");
        }
        let runbook = rule["annotations"]["runbook"].as_str().unwrap_or_default();
        let anchor = runbook
            .strip_prefix("docs/monitoring.md#")
            .expect("a monitoring.md anchor");
        assert!(
            anchors.contains(anchor),
            "{name}: docs/monitoring.md has no `### {anchor}`"
        );
    }
}

#[test]
fn the_dashboard_uses_the_provisioned_prometheus() {
    let sources = yaml("deploy/grafana/provisioning/datasources/prometheus.yml");
    // Grafana's provisioning format: apiVersion 1, datasources with a name,
    // type, access (proxy or direct), url and uid.
    assert_eq!(sources["apiVersion"], 1);
    let source = &sources["datasources"][0];
    assert_eq!(source["type"], "prometheus");
    assert!(["proxy", "direct"].contains(&source["access"].as_str().unwrap_or_default()));
    let uid = source["uid"]
        .as_str()
        .expect("a fixed uid the dashboard names");
    // The Prometheus service of the compose profile, on its default port.
    assert_eq!(source["url"], "http://prometheus:9090");
    let dash = dashboard();
    assert!(dash["uid"].is_string() && dash["title"].is_string());
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10);
    for panel in panels {
        assert_eq!(panel["datasource"]["uid"], uid, "{}", panel["title"]);
        for target in panel["targets"].as_array().expect("targets") {
            assert_eq!(target["datasource"]["uid"], uid);
            assert!(
                target["expr"]
                    .as_str()
                    .is_some_and(|e| e.contains("regiondb_"))
            );
        }
    }
    let providers = yaml("deploy/grafana/provisioning/dashboards/regiondb.yml");
    assert_eq!(providers["apiVersion"], 1);
    assert_eq!(providers["providers"][0]["type"], "file");
    assert_eq!(
        providers["providers"][0]["options"]["path"],
        "/etc/grafana/dashboards"
    );
}

fn compose_service(name: &str) -> Value {
    yaml("docker-compose.yml")["services"][name].clone()
}

/// `host:container` mounts of a service, with the host side relative to
/// the repository.
fn mounts(service: &Value) -> Vec<(String, String)> {
    (service["volumes"].as_array().expect("volumes").iter())
        .filter_map(Value::as_str)
        .filter(|v| v.starts_with("./"))
        .map(|v| {
            let mut parts = v.split(':');
            let host = parts.next().unwrap_or_default().trim_start_matches("./");
            (host.to_owned(), parts.next().unwrap_or_default().to_owned())
        })
        .collect()
}

#[test]
fn the_monitoring_profile_runs_them_only_when_asked_with_what_they_need() {
    for name in ["prometheus", "grafana"] {
        let service = compose_service(name);
        assert_eq!(
            service["profiles"],
            serde_json::json!(["monitoring"]),
            "{name}"
        );
        let image = service["image"].as_str().expect("image");
        assert!(
            image
                .rsplit_once(':')
                .is_some_and(|(_, tag)| tag != "latest"),
            "{image} pinned"
        );
        for (host, _) in mounts(&service) {
            assert!(
                root().join(&host).exists(),
                "{name} mounts {host}, which is missing"
            );
        }
    }
    for name in ["mongo-region-1", "redis", "kafka", "app"] {
        assert!(
            compose_service(name).get("profiles").is_none(),
            "{name} runs by default"
        );
    }
    prometheus_runs_the_rules_against_the_app();
    grafana_shows_the_dashboard();
}

/// Every flag is one the binary knows; the rule file sits next to the
/// configuration that names it; the target is the app.
fn prometheus_runs_the_rules_against_the_app() {
    let prometheus = compose_service("prometheus");
    let help = tool("prometheus", &["--help"]);
    for flag in prometheus["command"].as_array().expect("command") {
        let name = flag
            .as_str()
            .unwrap_or_default()
            .split('=')
            .next()
            .unwrap_or_default();
        assert!(
            help.contains(&format!("{name}=")),
            "prometheus does not know {name}"
        );
    }
    let mounted: Vec<String> = mounts(&prometheus).into_iter().map(|(_, c)| c).collect();
    assert!(mounted.contains(&"/etc/prometheus/prometheus.yml".to_owned()));
    let config = yaml("deploy/prometheus/prometheus.yml");
    for file in config["rule_files"].as_array().expect("rule files") {
        let at = format!("/etc/prometheus/{}", file.as_str().unwrap_or_default());
        assert!(mounted.contains(&at), "{at} is not mounted");
    }
    let target = &config["scrape_configs"][0]["static_configs"][0]["targets"][0];
    assert_eq!(target, "app:8000", "the app service on its PORT default");
}

/// Provisioning and the dashboard where the provider reads it;
/// `GF_<SECTION>_<KEY>` settings that exist ([auth.anonymous] enabled and
/// org_role, [dashboards] default_home_dashboard_path).
fn grafana_shows_the_dashboard() {
    let grafana = compose_service("grafana");
    let g_mounts = mounts(&grafana);
    assert!(g_mounts.contains(&(
        "deploy/grafana/provisioning".into(),
        "/etc/grafana/provisioning".into()
    )));
    assert!(g_mounts.contains(&(
        "deploy/grafana/regiondb.json".into(),
        "/etc/grafana/dashboards/regiondb.json".into()
    )));
    let env = grafana["environment"].as_object().expect("environment");
    let known = [
        "GF_AUTH_ANONYMOUS_ENABLED",
        "GF_AUTH_ANONYMOUS_ORG_ROLE",
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH",
    ];
    for key in env.keys() {
        assert!(
            known.contains(&key.as_str()),
            "{key}: not a documented setting used here"
        );
    }
    assert!(
        ["Viewer", "Editor", "Admin"].contains(
            &env["GF_AUTH_ANONYMOUS_ORG_ROLE"]
                .as_str()
                .unwrap_or_default()
        )
    );
    assert_eq!(
        env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"],
        "/etc/grafana/dashboards/regiondb.json"
    );
}
