//! What a node lost survives Redis losing its data: a node found empty and
//! not yet refilled stays flagged (and read from its replica) when Redis is
//! flushed, restored by the running instance and derived again from the
//! node's own marker by an instance that starts afterwards.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::*;

const N: u64 = 20;

/// Every read of region_2 that does not say it is catching up has all N
/// records, until `done` says to stop.
async fn trusted_reads_are_whole_until<F, Fut>(app: &TestApp, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        let read = get_json_at(&app.http, &app.address, "/filter-records?region=region_2").await;
        if read["sources"][0]["catching_up"] == false {
            assert_eq!(
                read["total"], N,
                "a trusted read of region_2 has holes: {read}"
            );
        }
        if done().await {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn flagged_in_redis(app: &TestApp) -> Option<String> {
    app.redis(&["HGET", "regiondb:data_loss", "region_2"]).await
}

/// N records in region_2, once region_2 carries its identity marker.
async fn stored_with_marker(app: &TestApp) {
    for i in 0..N {
        let (code, body) = app
            .create(&customer(&format!("r{i}"), ZIP_2 + i as u32))
            .await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
    }
    wait_until(
        "region_2 to carry its identity marker",
        DEADLINE,
        || async { !app.docs("region_2", "regiondb_identity").await.is_empty() },
    )
    .await;
}

#[tokio::test]
async fn a_node_being_refilled_stays_untrusted_when_redis_loses_everything() {
    let Some(mut app) = TestApp::spawn_for_faults("lost_data_flush", Options::default()).await
    else {
        return;
    };
    stored_with_marker(&app).await;
    // The node keeping region_2's replica is off: the refill must wait.
    app.set_status("region_1", "unavailable").await;
    app.kill_mongo("region_2");
    app.restart_mongo("region_2").await;
    wait_until("region_2 to be flagged", DEADLINE, || async {
        node_at(&app.http, &app.address, "region_2").await["lost_data"] == true
    })
    .await;

    // Redis loses everything: the running instance writes the flag back.
    let () = app.redis(&["FLUSHALL"]).await;
    trusted_reads_are_whole_until(&app, "the flag to be restored", || async {
        flagged_in_redis(&app).await.is_some()
    })
    .await;
    assert_eq!(
        node_at(&app.http, &app.address, "region_2").await["lost_data"],
        true
    );

    // Again, with no instance left to remember: the marker says it.
    app.stop_app().await;
    let () = app.redis(&["FLUSHALL"]).await;
    app.redis_set_status("region_1", "unavailable").await;
    app.start_app().await;
    trusted_reads_are_whole_until(&app, "the flag to be derived again", || async {
        flagged_in_redis(&app)
            .await
            .is_some_and(|f| f.contains("refilling"))
    })
    .await;

    // The replica's node comes back: the refill completes, and only then
    // does region_2 serve its region again.
    app.set_status("region_1", "available").await;
    trusted_reads_are_whole_until(&app, "region_2 to be repaired and trusted", || async {
        let read = get_json_at(&app.http, &app.address, "/filter-records?region=region_2").await;
        read["sources"][0]["served_by"] == "region_2" && read["sources"][0]["catching_up"] == false
    })
    .await;
    assert_eq!(app.docs("region_2", "customers").await.len() as u64, N);
    let marker = app.docs("region_2", "regiondb_identity").await;
    assert_eq!(marker[0].get_bool("refilling"), Ok(false), "{marker:?}");
    assert!(flagged_in_redis(&app).await.is_none());
}
