//! Secured backing services, as managed offerings run them: Kafka, Redis
//! and MongoDB behind real TLS (a CA made by the test, `stunnel` or Redis's
//! own TLS port), writes queued and replayed through them, and a wrong CA
//! stopping the start at once with one line naming the setting.

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::tls::{TestCa, tls_kafka};
use crate::helpers::*;

/// Runs the binary with the app's settings plus `extra` until it exits
/// (or `limit` passes: a hang, which fails the test with its log): its
/// exit status and stderr.
async fn start_and_exit(app: &TestApp, extra: &[(&str, &str)], limit: Duration) -> (bool, String) {
    let log_path = app.dir.join("start-and-exit.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let mut cmd = tokio::process::Command::new(app_binary());
    cmd.env_clear().env("PORT", free_port().to_string());
    for (k, v) in app.app_settings() {
        cmd.env(k, v);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null()).stderr(log).kill_on_drop(true);
    let mut child = cmd.spawn().expect("run regiondb");
    let status = tokio::time::timeout(limit, child.wait()).await;
    let stderr = std::fs::read_to_string(&log_path).unwrap_or_default();
    match status {
        Ok(status) => {
            assert!(
                !stderr.contains("panicked"),
                "a panic on the way out:\n{stderr}"
            );
            (status.expect("wait").success(), stderr)
        }
        Err(_) => panic!("with {extra:?} the binary neither failed nor stopped: a hang\n{stderr}"),
    }
}

/// The last line of a failed start: the one an operator reads.
fn last_line(stderr: &str) -> &str {
    stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
}

/// A region_2 write queued while it is off; region_2 is on again when this
/// answers the write's version (the replay then brings it).
async fn queue(app: &TestApp, id: &str) -> i64 {
    app.set_status("region_2", "unavailable").await;
    let queued = app.queued(&customer(id, ZIP_2)).await;
    let version = queued["version"].as_i64().expect("version");
    app.set_status("region_2", "available").await;
    version
}

/// [`queue`], then waits for the replay to store it.
async fn queue_and_replay(app: &TestApp, id: &str) {
    let version = queue(app, id).await;
    app.wait_for_doc("region_2", "customers", id, version).await;
}

#[tokio::test]
async fn kafka_over_tls_queues_and_replays_and_a_wrong_ca_stops_the_start() {
    if external_mode() {
        return eprintln!("skipped: the TLS broker is a local tansu");
    }
    let dir = fresh_output_dir("kafka_tls-servers");
    let ca = TestCa::make(&dir);
    let (_broker, _front, bootstrap) = tls_kafka(&dir, &ca).await;
    let ca_file = ca.ca.display().to_string();
    let app = TestApp::spawn_with(
        "kafka_tls",
        Options::default()
            .env("KAFKA_BOOTSTRAP_SERVER", &bootstrap)
            .env("KAFKA_SECURITY_PROTOCOL", "SSL")
            .env("KAFKA_SSL_CA_FILE", &ca_file),
    )
    .await;
    let (_, ready) = app.get("/readyz").await;
    assert_eq!(ready["kafka"], "ok", "{ready}");
    queue_and_replay(&app, "tls1").await;

    // The wrong CA: a clear start-up error, fast, naming the setting.
    let wrong = ca.other_ca.display().to_string();
    let started = std::time::Instant::now();
    let (ok, stderr) = start_and_exit(
        &app,
        &[("KAFKA_SSL_CA_FILE", &wrong)],
        Duration::from_secs(30),
    )
    .await;
    assert!(!ok, "started with a CA that signed nothing: {stderr}");
    let line = last_line(&stderr);
    assert!(line.contains("KAFKA_SSL_CA_FILE"), "{line}");
    assert!(line.contains("certificate verify failed"), "{line}");
    let took = started.elapsed();
    eprintln!("a wrong CA stopped the start after {took:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");

    // An unknown client property is a start-up error naming its variable.
    let (ok, stderr) = start_and_exit(
        &app,
        &[("KAFKA_PROPERTY_NO_SUCH_THING", "1")],
        Duration::from_secs(30),
    )
    .await;
    assert!(!ok);
    let line = last_line(&stderr);
    assert!(line.contains("KAFKA_PROPERTY_NO_SUCH_THING"), "{line}");
    assert!(line.contains("No such configuration property"), "{line}");
}

#[tokio::test]
async fn redis_over_tls_carries_statuses_sessions_and_versions() {
    if external_mode() {
        return eprintln!("skipped: the TLS Redis is a local redis-server");
    }
    let dir = fresh_output_dir("redis_tls-servers");
    let ca = TestCa::make(&dir);
    let (_redis, port) = start_server("redis-tls", &dir, |port| {
        let mut c = std::process::Command::new(tool("redis-server"));
        c.args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--tls-port", &port.to_string()])
        .arg("--tls-cert-file")
        .arg(&ca.cert)
        .arg("--tls-key-file")
        .arg(&ca.key)
        .arg("--tls-ca-cert-file")
        .arg(&ca.ca)
        .args(["--tls-auth-clients", "no", "--requirepass", "redis-secret"]);
        c
    })
    .await;
    let url = format!("rediss://default:redis-secret@127.0.0.1:{port}/0");
    let ca_file = ca.ca.display().to_string();
    let app = TestApp::spawn_with(
        "redis_tls",
        Options::default()
            .env("REDIS_URL", &url)
            .env("REDIS_CA_FILE", &ca_file),
    )
    .await;
    let (_, ready) = app.get("/readyz").await;
    assert_eq!(ready["redis"], "ok", "{ready}");
    let first = app.stored(&customer("r1", ZIP_1)).await;
    queue_and_replay(&app, "r2").await;
    let second = app.stored(&customer("r1", ZIP_1)).await;
    assert!(second["version"].as_i64() > first["version"].as_i64());

    // The wrong CA: the start stops at once (no waiting for Redis, which
    // would not help) with the variable named.
    let wrong = ca.other_ca.display().to_string();
    let (ok, stderr) =
        start_and_exit(&app, &[("REDIS_CA_FILE", &wrong)], Duration::from_secs(10)).await;
    assert!(!ok);
    let line = last_line(&stderr);
    assert!(
        line.contains("REDIS_CA_FILE: redis refused the connection"),
        "{line}"
    );
    assert!(line.contains("certificate"), "{line}");

    // A wrong password, likewise; and it is never printed.
    let wrong = format!("rediss://default:not-the-secret@127.0.0.1:{port}/0");
    let (ok, stderr) =
        start_and_exit(&app, &[("REDIS_URL", &wrong)], Duration::from_secs(10)).await;
    assert!(!ok);
    let line = last_line(&stderr);
    assert!(line.contains("REDIS_URL (its user and password)"), "{line}");
    assert!(!stderr.contains("not-the-secret"), "{stderr}");
}

#[tokio::test]
async fn mongodb_over_tls_writes_reads_replays_and_repairs() {
    if external_mode() {
        return eprintln!("skipped: the TLS front is for a local jongodb");
    }
    let dir = fresh_output_dir("mongo_tls-servers");
    let ca = TestCa::make(&dir);
    // region_2's node, behind TLS; the test reads it directly in plaintext.
    let (_mongo, mongo_port) = start_server("mongo-tls-node", &dir, |port| {
        let mut c = std::process::Command::new(tool("jongodb"));
        c.args(["--host=127.0.0.1", &format!("--port={port}")]);
        c
    })
    .await;
    let tls_port = free_port();
    let _front = ca.front(&dir, "mongo-tls", tls_port, mongo_port).await;
    let uri = format!(
        "mongodb://127.0.0.1:{tls_port}/?tls=true&tlsCAFile={}&directConnection=true",
        ca.ca.display()
    );
    let app = TestApp::spawn_with(
        "mongo_tls",
        Options::default().env("MONGO_URI_REGION_2", &uri),
    )
    .await;
    let (_, ready) = app.get("/readyz").await;
    assert_eq!(ready["nodes"]["region_2"]["mongo"], "ok", "{ready}");
    let stored = app.stored(&customer("m1", ZIP_2)).await;
    let (status, found) = app.get("/customers/m1").await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["version"], stored["version"], "{found}");
    let version = queue(&app, "m2").await;
    let node = mongodb::Client::with_uri_str(format!("mongodb://127.0.0.1:{mongo_port}"))
        .await
        .expect("client");
    let customers = node
        .database("region_2")
        .collection::<mongodb::bson::Document>("customers");
    wait_until("m2 replayed through TLS", DEADLINE, || async {
        let doc = customers.find_one(mongodb::bson::doc! {"_id": "m2"}).await;
        doc.ok()
            .flatten()
            .is_some_and(|d| d.get_i64("version") == Ok(version))
    })
    .await;
    let (status, repair) = app.post("/admin/repair", &serde_json::json!({})).await;
    assert_eq!(status, StatusCode::OK, "{repair}");

    // A CA that signed nothing: the start stops naming the node's URI.
    let wrong = uri.replace(
        &ca.ca.display().to_string(),
        &ca.other_ca.display().to_string(),
    );
    let extra = [("MONGO_URI_REGION_2", wrong.as_str())];
    let (ok, stderr) = start_and_exit(&app, &extra, Duration::from_secs(20)).await;
    assert!(!ok, "started with a CA that signed nothing");
    let line = last_line(&stderr);
    assert!(line.contains("MONGO_URI_REGION_2"), "{line}");
    assert!(line.contains("certificate"), "{line}");
}

/// tansu requiring SASL, with users `alice` (SCRAM-SHA-512) and `bob`
/// (SCRAM-SHA-256) created before
/// authentication was switched on (the user command is a Kafka client
/// itself): answers the broker and its bootstrap.
async fn sasl_kafka(dir: &std::path::Path) -> (Proc, String) {
    let broker = |port: u16, authentication: bool| {
        let mut c = tansu_command(port);
        if authentication {
            c.arg("--authentication");
        }
        c
    };
    let (mut open, port) = start_server("tansu-sasl-setup", dir, |p| broker(p, false)).await;
    for (mechanism, user) in [("scram512", "alice"), ("scram256", "bob")] {
        let created = std::process::Command::new(tool("tansu"))
            .args([
                "user",
                "create",
                "--broker",
                &format!("tcp://127.0.0.1:{port}"),
            ])
            .args(["--mechanism", mechanism, user, &format!("{user}-secret")])
            .output()
            .expect("tansu user create");
        let said = String::from_utf8_lossy(&created.stderr);
        assert!(created.status.success(), "{said}");
    }
    open.kill();
    let (secured, port) = start_server("tansu-sasl", dir, |p| broker(p, true)).await;
    (secured, format!("127.0.0.1:{port}"))
}

#[tokio::test]
async fn kafka_with_sasl_scram_queues_and_replays_and_a_wrong_password_stops_the_start() {
    if external_mode() {
        return eprintln!("skipped: the SASL broker is a local tansu");
    }
    let dir = fresh_output_dir("kafka_sasl-servers");
    let (_broker, bootstrap) = sasl_kafka(&dir).await;
    let app = TestApp::spawn_with(
        "kafka_sasl",
        Options::default()
            .env("KAFKA_BOOTSTRAP_SERVER", &bootstrap)
            .env("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
            .env("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
            .env("KAFKA_SASL_USERNAME", "alice")
            .env("KAFKA_SASL_PASSWORD", "alice-secret"),
    )
    .await;
    let (_, ready) = app.get("/readyz").await;
    assert_eq!(ready["kafka"], "ok", "{ready}");
    queue_and_replay(&app, "s1").await;

    let wrong = [("KAFKA_SASL_PASSWORD", "not-her-password")];
    let (ok, stderr) = start_and_exit(&app, &wrong, Duration::from_secs(30)).await;
    assert!(!ok, "started with a wrong password");
    let line = last_line(&stderr);
    assert!(
        line.contains("KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD"),
        "{line}"
    );
    assert!(
        !stderr.contains("not-her-password"),
        "the password was printed"
    );

    // SCRAM-SHA-256 works too; PLAIN, which this broker does not offer, is
    // refused at start naming the mechanism.
    let bob = [
        ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-256"),
        ("KAFKA_SASL_USERNAME", "bob"),
        ("KAFKA_SASL_PASSWORD", "bob-secret"),
    ];
    let second = app.spawn_instance_with("bob", &bob).await;
    let ready = get_json_at(&app.http, &second.address, "/readyz").await;
    assert_eq!(ready["kafka"], "ok", "{ready}");
    let plain = [("KAFKA_SASL_MECHANISM", "PLAIN")];
    let (ok, stderr) = start_and_exit(&app, &plain, Duration::from_secs(30)).await;
    assert!(!ok, "started with a mechanism the broker does not offer");
    assert!(
        last_line(&stderr).contains("KAFKA_SASL_MECHANISM"),
        "{stderr}"
    );
}
