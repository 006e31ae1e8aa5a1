//! Group commit: writes that arrive for a node while a command for it is in
//! flight share the next command, and each is answered from its own copy.
//!
//! Each test holds region_1's committer deterministically: region_1's
//! MongoDB is frozen (with a long MongoDB timeout), a first write's command
//! is seen in flight (the batch-size histogram counts a command when it is
//! sent), the writes under test are sent and seen waiting
//! (`regiondb_group_commit_waiting`), and only then is the node thawed:
//! they go out together, as the next command.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

const REGION_1_COMMANDS: &str = "regiondb_group_commit_batch_size_count";
const WAITING: &str = "regiondb_group_commit_waiting";

fn options() -> Options {
    Options::default()
        .env("MONGO_TIMEOUT_MS", "20000")
        .env("PROBE_INTERVAL_MS", "0")
}

async fn region_1_commands(app: &TestApp) -> f64 {
    app.metric(REGION_1_COMMANDS, &["node=\"region_1\""]).await
}

/// Sends a holder write for region_1 with its node frozen, then `bodies`
/// once the holder's command is in flight; once they all wait, runs
/// `before_thaw` and thaws the node. Answers the holder's answer and
/// theirs, in order.
async fn held_batch<F, Fut>(
    app: &TestApp,
    bodies: &[Value],
    before_thaw: F,
) -> ((StatusCode, Value), Vec<(StatusCode, Value)>)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    let sent_before = region_1_commands(app).await;
    app.freeze_mongo("region_1");
    let holder_body = customer("holder", ZIP_1);
    let holder = app.create(&holder_body);
    let batch = async {
        wait_until("the holder's command to be in flight", DEADLINE, || async {
            region_1_commands(app).await == sent_before + 1.0
        })
        .await;
        let sent = futures::future::join_all(bodies.iter().map(|b| app.create(b)));
        let release = async {
            let n = bodies.len() as f64;
            wait_until(
                "the writes to wait for the next command",
                DEADLINE,
                || async { app.metric(WAITING, &[]).await == n },
            )
            .await;
            before_thaw().await;
            app.thaw_mongo("region_1");
        };
        tokio::join!(sent, release).0
    };
    tokio::join!(holder, batch)
}

#[tokio::test]
async fn writes_that_wait_share_one_command_and_each_is_answered_from_its_own_copy() {
    let Some(app) = TestApp::spawn_for_faults("group_commit_shared", options()).await else {
        return;
    };
    let bodies: Vec<Value> = (0..12)
        .map(|i| customer(&format!("g{i}"), ZIP_1 + i))
        .collect();
    let (holder, answers) = held_batch(&app, &bodies, || async {}).await;
    assert_eq!(holder.0, StatusCode::CREATED, "{}", holder.1);
    for (i, (code, body)) in answers.iter().enumerate() {
        assert_eq!(*code, StatusCode::CREATED, "{body}");
        let id = format!("g{i}");
        let version = body["version"].as_i64().expect("version");
        let home = app.doc("region_1", "customers", &id).await.expect("home");
        assert_eq!(home.get_i64("version"), Ok(version));
        assert_eq!(
            home.get_i64("customer_zip_code_prefix"),
            Ok(i64::from(ZIP_1) + i as i64)
        );
        let replica = app.doc("region_3", "replica_region_1", &id).await;
        assert_eq!(replica.expect("replica").get_i64("version"), Ok(version));
    }
    // The holder's command, then one command for all twelve.
    assert_eq!(region_1_commands(&app).await, 2.0);
    let twelve = app
        .metric(
            "regiondb_group_commit_batch_size_bucket",
            &["node=\"region_1\"", "le=\"16\""],
        )
        .await;
    let eight = app
        .metric(
            "regiondb_group_commit_batch_size_bucket",
            &["node=\"region_1\"", "le=\"8\""],
        )
        .await;
    assert_eq!(twelve - eight, 1.0, "one command of 9 to 16 copies");
}

#[tokio::test]
async fn of_two_versions_in_one_command_the_newest_wins_and_the_older_is_superseded() {
    let Some(app) = TestApp::spawn_for_faults("group_commit_lww", options()).await else {
        return;
    };
    let mut first = customer("same", ZIP_1);
    first["customer_city"] = json!("first city");
    let mut second = customer("same", ZIP_1);
    second["customer_city"] = json!("second city");
    let (_, answers) = held_batch(&app, &[first, second], || async {}).await;
    for (code, body) in &answers {
        assert_eq!(*code, StatusCode::CREATED, "{body}");
    }
    let newest = (answers.iter())
        .max_by_key(|(_, b)| b["version"].as_i64())
        .expect("answers");
    let city = if newest.1 == answers[0].1 {
        "first city"
    } else {
        "second city"
    };
    let version = newest.1["version"].as_i64().expect("version");
    for (node, collection) in [("region_1", "customers"), ("region_3", "replica_region_1")] {
        let doc = app.doc(node, collection, "same").await.expect("stored");
        assert_eq!(doc.get_i64("version"), Ok(version), "{node}");
        assert_eq!(doc.get_str("customer_city"), Ok(city), "{node}");
    }
}

#[tokio::test]
async fn a_copy_refused_for_good_fails_only_its_own_write() {
    let Some(app) = TestApp::spawn_for_faults("group_commit_refused", options()).await else {
        return;
    };
    unique_index(&app, "region_1").await;
    let mut taken = customer("owner", ZIP_1);
    taken["customer_unique_id"] = json!("taken");
    assert_eq!(app.create(&taken).await.0, StatusCode::CREATED);
    let mut clash = customer("clash", ZIP_1);
    clash["customer_unique_id"] = json!("taken");
    let bodies = [customer("ok1", ZIP_1), clash, customer("ok2", ZIP_1)];
    let (_, answers) = held_batch(&app, &bodies, || async {}).await;
    assert_eq!(answers[0].0, StatusCode::CREATED, "{}", answers[0].1);
    assert_eq!(answers[1].0, StatusCode::CONFLICT, "{}", answers[1].1);
    assert_eq!(answers[1].1["code"], "rejected");
    assert_eq!(answers[2].0, StatusCode::CREATED, "{}", answers[2].1);
    assert!(app.doc("region_1", "customers", "clash").await.is_none());
    assert!(
        app.doc("region_3", "replica_region_1", "clash")
            .await
            .is_none()
    );
    for id in ["ok1", "ok2"] {
        assert!(app.doc("region_1", "customers", id).await.is_some(), "{id}");
    }
    for node in NODES {
        assert_eq!(app.offsets(node).await.0, 0, "{node}: nothing queued");
    }
}

#[tokio::test]
async fn the_node_status_is_checked_when_the_command_is_due() {
    let Some(app) = TestApp::spawn_for_faults("group_commit_status", options()).await else {
        return;
    };
    let bodies: Vec<Value> = (0..3).map(|i| customer(&format!("s{i}"), ZIP_1)).collect();
    let (holder, answers) = held_batch(&app, &bodies, || async {
        app.set_status("region_1", "unavailable").await;
    })
    .await;
    // The holder's command was sent while the node was available.
    assert_eq!(holder.0, StatusCode::CREATED, "{}", holder.1);
    // Theirs was due after the switch: queued, never sent to the node.
    for (code, body) in &answers {
        assert_eq!(*code, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["status"], "queued");
        assert_eq!(body["replica"], "stored");
    }
    assert_eq!(region_1_commands(&app).await, 1.0);
    assert_eq!(app.offsets("region_1").await.0, 3);
}

#[tokio::test]
async fn a_command_that_fails_as_a_whole_queues_each_of_its_copies() {
    let options = Options::default()
        .env("MONGO_TIMEOUT_MS", "1500")
        .env("PROBE_INTERVAL_MS", "0");
    let Some(app) = TestApp::spawn_for_faults("group_commit_failed", options).await else {
        return;
    };
    app.freeze_mongo("region_1");
    let bodies: Vec<Value> = (0..6).map(|i| customer(&format!("f{i}"), ZIP_1)).collect();
    let answers = futures::future::join_all(bodies.iter().map(|b| app.create(b))).await;
    let mut versions = Vec::new();
    for (code, body) in &answers {
        // Timed out on the frozen node, then queued one by one.
        assert_eq!(*code, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["status"], "queued");
        versions.push(body["version"].as_i64().expect("version"));
    }
    app.thaw_mongo("region_1");
    for (i, version) in versions.iter().enumerate() {
        app.wait_for_doc("region_1", "customers", &format!("f{i}"), *version)
            .await;
    }
}

#[tokio::test]
async fn a_full_committer_queue_refuses_the_write_as_busy_and_writes_nothing() {
    let options = options().env("HTTP_MAX_REQUESTS_PER_CLASS", "400");
    let Some(app) = TestApp::spawn_for_faults("group_commit_busy", options).await else {
        return;
    };
    // One full batch (256) waits behind the holder; 20 more find no room.
    let bodies: Vec<Value> = (0..276)
        .map(|i| customer(&format!("b{i}"), ZIP_1))
        .collect();
    let sent_before = region_1_commands(&app).await;
    app.freeze_mongo("region_1");
    let holder_body = customer("holder", ZIP_1);
    let holder = app.create(&holder_body);
    let rest = async {
        wait_until("the holder's command to be in flight", DEADLINE, || async {
            region_1_commands(&app).await == sent_before + 1.0
        })
        .await;
        let sent = futures::future::join_all(bodies.iter().map(|b| app.create(b)));
        let release = async {
            wait_until("a full queue", DEADLINE, || async {
                app.metric(WAITING, &[]).await >= 256.0
            })
            .await;
            wait_until(
                "the writes without room to be refused",
                DEADLINE,
                || async {
                    app.metric("regiondb_writes_total", &["outcome=\"busy\""])
                        .await
                        >= 20.0
                },
            )
            .await;
            app.thaw_mongo("region_1");
        };
        tokio::join!(sent, release).0
    };
    let (holder, answers) = tokio::join!(holder, rest);
    assert_eq!(holder.0, StatusCode::CREATED);
    let busy: Vec<usize> = (answers.iter().enumerate())
        .filter(|(_, (code, _))| *code == StatusCode::SERVICE_UNAVAILABLE)
        .map(|(i, (_, body))| {
            assert_eq!(body["code"], "busy", "{body}");
            i
        })
        .collect();
    assert_eq!(busy.len(), 20, "exactly those without room");
    for (code, body) in &answers {
        assert!(
            *code == StatusCode::CREATED || *code == StatusCode::SERVICE_UNAVAILABLE,
            "{code} {body}"
        );
    }
    for i in busy {
        let id = format!("b{i}");
        assert!(app.doc("region_1", "customers", &id).await.is_none());
        assert!(app.doc("region_3", "replica_region_1", &id).await.is_none());
    }
    for node in NODES {
        assert_eq!(app.offsets(node).await.0, 0, "{node}: nothing queued");
    }
}

#[tokio::test]
async fn the_home_copy_is_stored_before_the_replica_is_written() {
    let Some(app) = TestApp::spawn_for_faults("group_commit_order", options()).await else {
        return;
    };
    app.freeze_mongo("region_3");
    let body = customer("ordered", ZIP_1);
    let write = app.create(&body);
    let check = async {
        // The home copy lands while the replica's node holds the write.
        wait_until("the home copy", DEADLINE, || async {
            app.doc("region_1", "customers", "ordered").await.is_some()
        })
        .await;
        app.thaw_mongo("region_3");
    };
    let ((code, body), ()) = tokio::join!(write, check);
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(body["replica"], "stored");
}

#[tokio::test]
async fn shutdown_answers_every_write_waiting_for_a_command() {
    let Some(mut app) = TestApp::spawn_for_faults("group_commit_drain", options()).await else {
        return;
    };
    let bodies: Vec<Value> = (0..5).map(|i| customer(&format!("d{i}"), ZIP_1)).collect();
    let (holder, answers) = held_batch(&app, &bodies, || async {
        // The stop is asked for while the writes wait.
        app.signal_app(nix::sys::signal::Signal::SIGTERM);
    })
    .await;
    assert_eq!(holder.0, StatusCode::CREATED, "{}", holder.1);
    for (code, body) in &answers {
        assert_eq!(*code, StatusCode::CREATED, "{body}");
    }
    let status = app.stop_app().await;
    assert!(status.success(), "exit status {status}");
    for i in 0..5 {
        let id = format!("d{i}");
        assert!(
            app.doc("region_1", "customers", &id).await.is_some(),
            "{id}"
        );
        assert!(app.doc("region_3", "replica_region_1", &id).await.is_some());
    }
}
