//! Bounded under connection floods: thousands of idle, slow and
//! event-stream connections do not starve writes, do not grow the process
//! without bound, and do not stop the replay; connections past the caps get
//! a clean 503.

use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

const IDLE: usize = 1500;
const SLOW: usize = 500;
const STREAMS: usize = 300;
const MAX_STREAMS: usize = 200;
const MAX_CONNECTIONS: usize = 2600;
/// Long enough for the flood to be set up before the first idle
/// connections are cut: well under a second alone, but over 10 s once
/// while the rest of the suite's instances were busy beside it.
const HEADER_TIMEOUT: Duration = Duration::from_secs(25);

async fn connect(address: &str) -> TcpStream {
    let host = address.trim_start_matches("http://");
    TcpStream::connect(host).await.expect("connect")
}

/// Reads until the server closes the connection (or `deadline`); the bytes
/// it sent.
async fn until_closed(mut s: TcpStream, deadline: Duration) -> Option<Vec<u8>> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(deadline, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return all,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()
}

/// Lets this process (and the app it starts, which inherits it) open the
/// flood's sockets: the soft file-descriptor limit up to the hard one.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");
    }
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    let needed = (MAX_CONNECTIONS + 512) as u64;
    assert!(
        soft >= needed,
        "the flood needs {needed} file descriptors; the limit is {soft}"
    );
}

#[tokio::test]
async fn floods_of_idle_slow_and_streaming_connections_are_bounded() {
    raise_fd_limit();
    let app = TestApp::spawn_with(
        "flood",
        Options::default()
            .env("HTTP_MAX_CONNECTIONS", &MAX_CONNECTIONS.to_string())
            .env("HTTP_MAX_EVENT_STREAMS", &MAX_STREAMS.to_string())
            .env(
                "HTTP_HEADER_TIMEOUT_MS",
                &HEADER_TIMEOUT.as_millis().to_string(),
            )
            .env("RUST_LOG", "info"),
    )
    .await;
    // A backlog to replay during the flood.
    app.set_status("region_2", "unavailable").await;
    for i in 0..20 {
        app.queued(&customer(&format!("q{i}"), ZIP_2)).await;
    }
    let rss_before = app.app_proc_status("VmRSS");

    let (mut idle, mut slow) = idle_and_slow(&app.address).await;
    let streams = streams_to_the_cap(&app).await;

    // Past the connection cap: a clean 503, then close.
    let mut extra = Vec::new();
    let open = IDLE + SLOW + MAX_STREAMS + 1;
    for _ in open..MAX_CONNECTIONS + 5 {
        extra.push(connect(&app.address).await);
    }
    let last = extra.pop().unwrap();
    let answer = until_closed(last, DEADLINE).await.expect("closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too many open connections"), "{answer}");
    drop(extra);

    // Writes are still answered, and quickly (the bound is only against
    // starvation; the measured time is printed).
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let slowest = slowest_of_20_writes(&app, &quick).await;
    println!("slowest write during the flood: {slowest:?}");

    // The replay still runs and commits.
    app.set_status("region_2", "available").await;
    app.wait_drained("region_2").await;

    // Memory and threads stay bounded: no per-connection backend work.
    let rss = app.app_proc_status("VmRSS");
    let threads = app.app_proc_status("Threads");
    println!(
        "RSS {rss_before} kB -> {rss} kB with {IDLE} idle, {SLOW} slow, {MAX_STREAMS} streams; {threads} threads"
    );
    assert!(
        rss < rss_before + 150 * 1024,
        "RSS grew from {rss_before} kB to {rss} kB"
    );
    assert!(threads < 100, "{threads} threads");

    // Clients that never finish their headers are disconnected.
    let sample = idle.pop().unwrap();
    assert!(
        until_closed(sample, DEADLINE).await.is_some(),
        "idle connection still open"
    );
    let sample = slow.pop().unwrap();
    let answer = until_closed(sample, DEADLINE)
        .await
        .expect("slow connection still open");
    assert!(
        !answer.starts_with(b"HTTP/1.1 200"),
        "a half-sent request was served"
    );
    // ...which frees their slots: new clients are served again.
    wait_until("idle slots to be reclaimed", DEADLINE, || async {
        let r = quick.get(app.url("/healthz")).send().await;
        matches!(r, Ok(r) if r.status() == StatusCode::OK)
    })
    .await;
    drop(streams);
}

/// Idle connections (never a byte) and slow ones (half a request head).
async fn idle_and_slow(address: &str) -> (Vec<TcpStream>, Vec<TcpStream>) {
    let mut idle = Vec::new();
    for _ in 0..IDLE {
        idle.push(connect(address).await);
    }
    let mut slow = Vec::new();
    for _ in 0..SLOW {
        let mut s = connect(address).await;
        s.write_all(b"GET /nodes HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    (idle, slow)
}

/// Event streams, past their cap: the ones over it are refused with 503.
async fn streams_to_the_cap(app: &TestApp) -> Vec<reqwest::Response> {
    let mut streams = Vec::new();
    let mut refused_streams = 0;
    for _ in 0..STREAMS {
        let r = app.get_response("/events").await;
        match r.status() {
            StatusCode::OK => streams.push(r),
            StatusCode::SERVICE_UNAVAILABLE => refused_streams += 1,
            other => panic!("/events answered {other}"),
        }
    }
    assert_eq!(
        streams.len(),
        MAX_STREAMS,
        "streams over the cap are refused"
    );
    assert_eq!(refused_streams, STREAMS - MAX_STREAMS);
    streams
}

/// Twenty writes, each of which must be stored in time; the slowest.
async fn slowest_of_20_writes(app: &TestApp, quick: &reqwest::Client) -> Duration {
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let started = std::time::Instant::now();
        let r = quick
            .post(app.url("/create-customer"))
            .json(&customer(&format!("w{i}"), ZIP_1))
            .send()
            .await
            .expect("a write during the flood");
        assert_eq!(r.status(), StatusCode::CREATED);
        slowest = slowest.max(started.elapsed());
    }
    slowest
}

#[tokio::test]
async fn past_the_class_limit_a_request_is_shed_with_503_not_queued() {
    let app = TestApp::spawn_with(
        "class_limit",
        Options::default().env("HTTP_MAX_REQUESTS_PER_CLASS", "1"),
    )
    .await;
    // One write held by a frozen home node (until its MongoDB timeout; it
    // retries while shed itself, as a client honouring retry-after would)...
    app.freeze_mongo("region_1");
    let held = {
        let http = app.http.clone();
        let url = app.url("/create-customer");
        tokio::spawn(async move {
            loop {
                let r = http.post(&url).json(&customer("held", ZIP_1)).send().await;
                match r.map(|r| r.status()) {
                    Ok(StatusCode::SERVICE_UNAVAILABLE) => {
                        tokio::time::sleep(Duration::from_millis(10)).await
                    }
                    other => return other,
                }
            }
        })
    };
    // ...so another write finds the class full: 503 at once, with
    // retry-after, and nothing written.
    let started = std::time::Instant::now();
    let mut attempt = 0;
    let (id, retry, body) = loop {
        attempt += 1;
        let id = format!("shed-{attempt}");
        let r = app
            .http
            .post(app.url("/create-customer"))
            .json(&customer(&id, ZIP_3))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            let retry = r.headers().get("retry-after").cloned();
            break (id, retry, r.json::<serde_json::Value>().await.unwrap());
        }
        assert!(started.elapsed() < DEADLINE, "no write was shed");
    };
    assert_eq!(retry.unwrap(), "1");
    assert!(
        body["error"].as_str().unwrap().contains("too many writes"),
        "{body}"
    );
    // Reads are another class: still served meanwhile.
    let (code, _) = app.get("/node-statuses").await;
    assert_eq!(code, StatusCode::OK);
    app.thaw_mongo("region_1");
    // (stored if the node thawed in time, else queued)
    let held = held.await.unwrap().unwrap();
    assert!(
        held == StatusCode::CREATED || held == StatusCode::ACCEPTED,
        "{held}"
    );
    // (region_3's records live on region_3 and its replica on region_2.)
    assert!(app.doc("region_3", "customers", &id).await.is_none());
    assert!(app.doc("region_2", "replica_region_3", &id).await.is_none());
}
