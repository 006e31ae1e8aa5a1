//! `scripts/bench-import --tls`: the API write load at 8 connections with
//! plaintext against TLS to the backing services, on the same kinds of fresh
//! servers: every node up (each write: two MongoDB commands, through a
//! `stunnel` TLS front to each jongodb node with TLS), and every node
//! switched off (each write: two hints to Kafka, through a TLS front to the
//! broker). Three rounds of 5 s each; the median round is reported.

use std::sync::Arc;
use std::time::Duration;

use crate::helpers::tls::{TestCa, tls_kafka};
use crate::helpers::{Options, Proc, TestApp, free_port, fresh_output_dir, start_server, tool};

/// Writes per second and p99 (ms), median of three rounds.
async fn rounds(tls: bool, all_off: bool) -> (f64, f64) {
    let mut results = Vec::new();
    for round in 0..3 {
        let name = format!("bench-tls-{tls}-{all_off}-{round}");
        let dir = fresh_output_dir(&format!("{name}-servers"));
        let (_servers, options) = if tls {
            secured(&dir).await
        } else {
            (Vec::new(), Options::default())
        };
        let app = Arc::new(TestApp::spawn_with(&name, options).await);
        if all_off {
            for node in ["region_1", "region_2", "region_3"] {
                app.set_status(node, "unavailable").await;
            }
        }
        results.push(super::write_load(&app, 8, Duration::from_secs(5)).await);
    }
    results.sort_by(|a, b| a.0.total_cmp(&b.0));
    results[1]
}

/// A TLS broker and three jongodb nodes behind TLS fronts: the processes to
/// keep, and the app's settings for them.
async fn secured(dir: &std::path::Path) -> (Vec<Proc>, Options) {
    let ca = TestCa::make(dir);
    let (broker, front, bootstrap) = tls_kafka(dir, &ca).await;
    let ca_file = ca.ca.display().to_string();
    let mut keep = vec![broker, front];
    let mut options = Options::default()
        .env("KAFKA_BOOTSTRAP_SERVER", &bootstrap)
        .env("KAFKA_SECURITY_PROTOCOL", "SSL")
        .env("KAFKA_SSL_CA_FILE", &ca_file);
    for node in ["REGION_1", "REGION_2", "REGION_3"] {
        let (mongo, port) = start_server(&format!("jongodb-{node}"), dir, |port| {
            let mut c = std::process::Command::new(tool("jongodb"));
            c.args(["--host=127.0.0.1", &format!("--port={port}")]);
            c
        })
        .await;
        let tls_port = free_port();
        keep.push(
            ca.front(dir, &format!("mongo-{node}"), tls_port, port)
                .await,
        );
        keep.push(mongo);
        let uri = format!("mongodb://127.0.0.1:{tls_port}/?tls=true&tlsCAFile={ca_file}");
        options = options.env(&format!("MONGO_URI_{node}"), &uri);
    }
    (keep, options)
}

pub async fn report() {
    println!("## API writes, plaintext against TLS (8 connections, median of 3 rounds of 5 s)\n");
    println!(
        "| path | plaintext writes/s | TLS writes/s | ratio | plaintext p99 ms | TLS p99 ms |"
    );
    println!("|---|---|---|---|---|---|");
    for (label, all_off) in [
        ("every node up: home and replica to MongoDB", false),
        ("every node off: home and replica hints to Kafka", true),
    ] {
        let (plain, plain_p99) = rounds(false, all_off).await;
        let (tls, tls_p99) = rounds(true, all_off).await;
        println!(
            "| {label} | {plain:.0} | {tls:.0} | {:.2} | {plain_p99:.1} | {tls_p99:.1} |",
            tls / plain
        );
    }
}
