//! Redis Sentinel: a primary, a replica and a sentinel on loopback; the
//! primary is killed, the sentinel promotes the replica, and regiondb
//! follows it: writes go on, versions keep increasing and stay distinct
//! across instances, and statuses and sessions are still there.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

const MASTER: &str = "mymaster";

async fn query<T: redis::FromRedisValue>(port: u16, cmd: &mut redis::Cmd) -> Option<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    let mut conn = client.get_multiplexed_async_connection().await.ok()?;
    cmd.query_async(&mut conn).await.ok()
}

/// A primary, its replica and one sentinel watching them.
struct Servers {
    primary: Proc,
    _replica: Proc,
    _sentinel: Proc,
    primary_port: u16,
    replica_port: u16,
    sentinel_port: u16,
}

/// Starts [`Servers`]; waits until the replica is in sync and the sentinel
/// knows it (it can only promote one it knows).
async fn sentinel_setup(dir: &std::path::Path) -> Servers {
    let (primary, primary_port) = start_server("redis-primary", dir, |p| {
        let mut c = redis_command(p, false);
        c.args(["--repl-diskless-sync-delay", "0"]);
        c
    })
    .await;
    let (replica, replica_port) = start_server("redis-replica", dir, |p| {
        let mut c = redis_command(p, false);
        c.args(["--replicaof", "127.0.0.1", &primary_port.to_string()]);
        c
    })
    .await;
    let (sentinel, sentinel_port) = start_server("redis-sentinel", dir, |p| {
        let conf = dir.join(format!("sentinel-{p}.conf"));
        std::fs::write(
            &conf,
            format!(
                "port {p}\nbind 127.0.0.1\nsentinel monitor {MASTER} 127.0.0.1 {primary_port} 1\n\
                 sentinel down-after-milliseconds {MASTER} 1000\n\
                 sentinel failover-timeout {MASTER} 10000\n"
            ),
        )
        .expect("sentinel config");
        let mut c = std::process::Command::new(tool("redis-sentinel"));
        c.arg(conf);
        c
    })
    .await;
    wait_until("the replica to be in sync", DEADLINE, || async {
        let info: Option<String> = query(replica_port, redis::cmd("INFO").arg("replication")).await;
        info.is_some_and(|i| i.contains("master_link_status:up"))
    })
    .await;
    wait_until("the sentinel to know the replica", DEADLINE, || async {
        let found: Option<Vec<redis::Value>> = query(
            sentinel_port,
            redis::cmd("SENTINEL").arg("replicas").arg(MASTER),
        )
        .await;
        found.is_some_and(|r| !r.is_empty())
    })
    .await;
    Servers {
        primary,
        _replica: replica,
        _sentinel: sentinel,
        primary_port,
        replica_port,
        sentinel_port,
    }
}

const TOKEN: &str = "failover-admin-token-0123456789";

/// Switches `node` with the admin token: the status code.
async fn switch(app: &TestApp, node: &str, status: &str) -> StatusCode {
    let body = serde_json::json!({"node_id": node, "status": status});
    let request = app
        .http
        .post(app.url("/node-status"))
        .bearer_auth(TOKEN)
        .json(&body);
    json_answer(request).await.0
}

/// Whether the page session `cookie` is still signed in at `address`.
async fn signed_in(app: &TestApp, address: &str, cookie: &str) -> bool {
    let page = app
        .http
        .get(format!("{address}/create-records"))
        .header("cookie", cookie);
    let (status, html) = text_answer(page).await;
    status == StatusCode::OK && !html.contains("Switching nodes needs the admin token")
}

async fn create_at(app: &TestApp, address: &str, id: &str, zip: u32) -> (StatusCode, Value) {
    let url = format!("{address}/create-customer");
    json_answer(app.http.post(url).json(&customer(id, zip))).await
}

/// What writes through a failover got.
struct Through {
    versions: Vec<i64>,
    refused: usize,
    /// First and last refusal, counted from the start.
    refusing: Option<(Duration, Duration)>,
}

/// Writes through both instances until the sentinel has promoted the
/// replica and both have followed it (a status switch needs the primary).
async fn write_through_failover(
    app: &TestApp,
    second: &str,
    sentinel_port: u16,
    replica_port: u16,
) -> Through {
    let started = Instant::now();
    let mut through = Through {
        versions: Vec::new(),
        refused: 0,
        refusing: None,
    };
    for i in 0.. {
        for address in [app.address.as_str(), second] {
            let (status, body) = create_at(app, address, &format!("f{i}"), ZIP_1).await;
            if status == StatusCode::CREATED {
                through.versions.push(body["version"].as_i64().unwrap());
                continue;
            }
            if through.refused == 0 {
                eprintln!("first refusal: {status} {body}");
            }
            through.refused += 1;
            let at = started.elapsed();
            through.refusing = Some(through.refusing.map_or((at, at), |(first, _)| (first, at)));
        }
        let asked = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(MASTER)
            .clone();
        let promoted: Option<Vec<String>> = query(sentinel_port, &mut asked.clone()).await;
        let moved = promoted.is_some_and(|a| a.get(1) == Some(&replica_port.to_string()));
        if moved && switch(app, "region_3", "available").await == StatusCode::OK {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no failover within 60 s"
        );
    }
    through
}

/// region_2 switched off and a page session opened, both on the replica
/// before the primary dies (replication is asynchronous:
/// docs/losing-nothing.md says what a failover can lose): the session.
async fn status_and_session_replicated(app: &TestApp, servers: &Servers) -> String {
    assert_eq!(switch(app, "region_2", "unavailable").await, StatusCode::OK);
    let session = app.session_at(&app.address, TOKEN).await;
    let _: Option<i64> = query(servers.primary_port, redis::cmd("WAIT").arg(1).arg(2000)).await;
    let on_replica: Option<String> = query(
        servers.replica_port,
        redis::cmd("HGET").arg("node_statuses").arg("region_2"),
    )
    .await;
    assert_eq!(on_replica.as_deref(), Some("unavailable"));
    session
}

/// After the failover: the status set before it is still there, queued
/// writes go on, the page session holds on both instances, a switch
/// reaches the new primary, and the two instances hold two slots there.
async fn still_there_after(app: &TestApp, second: &str, session: &str, replica_port: u16) {
    // The status set before the failover is still there; queued writes too.
    let (_, nodes) = app.get("/nodes").await;
    assert_eq!(nodes[1]["status"], "unavailable", "{nodes}");
    app.queued(&customer("f-queued", ZIP_2)).await;
    // The page session opened before the failover still holds, on both.
    assert!(signed_in(app, &app.address, session).await);
    assert!(signed_in(app, second, session).await);
    // Both instances now talk to the new primary.
    assert!(
        app.metric("regiondb_redis_primary_changes_total", &[])
            .await
            >= 1.0
    );
    let status: Option<String> = query(
        replica_port,
        redis::cmd("HGET").arg("node_statuses").arg("region_3"),
    )
    .await;
    assert_eq!(status.as_deref(), Some("available"));
    let mut slots = Vec::new();
    for slot in 0..64 {
        let key = format!("regiondb:version_slot:{slot}");
        let holder: Option<String> = query(replica_port, redis::cmd("GET").arg(&key)).await;
        slots.extend(holder);
    }
    slots.sort();
    slots.dedup();
    assert_eq!(
        slots.len(),
        2,
        "one slot each on the new primary: {slots:?}"
    );
}

#[tokio::test]
async fn writes_go_on_through_a_redis_sentinel_failover() {
    if external_mode() {
        return eprintln!("skipped: this test kills a Redis primary");
    }
    let dir = fresh_output_dir("sentinel-servers");
    let mut servers = sentinel_setup(&dir).await;
    let app = TestApp::spawn_with(
        "sentinel",
        Options::default()
            .env("REDIS_URL", "redis://ignored-with-sentinels:6379/0")
            .env(
                "REDIS_SENTINELS",
                &format!("127.0.0.1:{}", servers.sentinel_port),
            )
            .env("REDIS_SENTINEL_MASTER", MASTER)
            .env("ADMIN_TOKEN", TOKEN),
    )
    .await;
    let second = app.spawn_instance("second").await;
    let before = app.stored(&customer("f1", ZIP_1)).await["version"]
        .as_i64()
        .unwrap();
    let session = status_and_session_replicated(&app, &servers).await;
    let (replica_port, sentinel_port) = (servers.replica_port, servers.sentinel_port);
    servers.primary.kill();
    let killed = Instant::now();
    let through = write_through_failover(&app, &second.address, sentinel_port, replica_port).await;
    let failover = killed.elapsed();
    let versions: Vec<i64> = [before].into_iter().chain(through.versions).collect();
    eprintln!(
        "failover: {failover:?}; {} writes stored, {} refused \
         (first and last refusal after the kill: {:?})",
        versions.len() - 1,
        through.refused,
        through.refusing
    );
    assert!(
        versions.len() > 2,
        "no write was stored through the failover"
    );

    // Versions: every one distinct, the later ones above the first.
    let mut sorted = versions.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), versions.len(), "two writes shared a version");
    assert!(versions[1..].iter().all(|v| *v > before));
    still_there_after(&app, &second.address, &session, replica_port).await;
}

/// A switchover (`SENTINEL FAILOVER`): the old primary stays up as a
/// replica, closing its clients' connections or answering them `READONLY`
/// (either happens, by timing); the instance asks the sentinels and moves
/// to the new primary.
#[tokio::test]
async fn after_a_switchover_the_demoted_primary_sends_the_instance_to_the_new_one() {
    if external_mode() {
        return eprintln!("skipped: this test reconfigures a Redis primary");
    }
    let dir = fresh_output_dir("switchover-servers");
    let servers = sentinel_setup(&dir).await;
    let sentinels = format!("127.0.0.1:{}", servers.sentinel_port);
    let app = TestApp::spawn_with(
        "switchover",
        Options::default()
            .env("REDIS_URL", "redis://ignored-with-sentinels:6379/0")
            .env("REDIS_SENTINELS", &sentinels)
            .env("REDIS_SENTINEL_MASTER", MASTER)
            .env("ADMIN_TOKEN", TOKEN),
    )
    .await;
    assert_eq!(
        switch(&app, "region_2", "unavailable").await,
        StatusCode::OK
    );
    let started: Option<String> = query(
        servers.sentinel_port,
        redis::cmd("SENTINEL").arg("FAILOVER").arg(MASTER),
    )
    .await;
    assert_eq!(started.as_deref(), Some("OK"));
    wait_until("the old primary to be a replica", DEADLINE, || async {
        let role: Option<Vec<redis::Value>> =
            query(servers.primary_port, &mut redis::cmd("ROLE")).await;
        role.and_then(|r| r.first().cloned())
            .is_some_and(|r| r == redis::Value::BulkString(b"slave".to_vec()))
    })
    .await;
    // The demoted primary answers the instance's open connections READONLY
    // (or closes them): the instance moves to the new primary. A switch in
    // that moment may get one 503 ("redis could not be reached"), as any
    // Redis call cut off mid-way; a retry goes through.
    let mut tries = 0;
    wait_until("a switch through the new primary", DEADLINE, || {
        tries += 1;
        async { switch(&app, "region_2", "available").await == StatusCode::OK }
    })
    .await;
    assert!(tries <= 3, "{tries} tries");
    let status: Option<String> = query(
        servers.replica_port,
        redis::cmd("HGET").arg("node_statuses").arg("region_2"),
    )
    .await;
    assert_eq!(status.as_deref(), Some("available"));
    assert!(
        app.metric("regiondb_redis_primary_changes_total", &[])
            .await
            >= 1.0
    );
}
