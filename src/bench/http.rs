//! Talking to the deployment under test over HTTP/1.1: one kept-alive
//! connection per worker (as `wrk` does), and the few API calls the
//! workloads need around their load (switching nodes, reading queues).

use std::time::{Duration, Instant};

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{SendRequest, handshake};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::BenchError;
use super::load::{Op, Outcome};

/// Where the deployment answers, and how to authenticate admin calls.
#[derive(Clone)]
pub struct Target {
    /// `host:port`.
    pub authority: String,
    pub token: Option<String>,
}

/// What a worker sends: method, path and query, JSON body.
pub struct Call {
    pub method: Method,
    pub path: String,
    pub body: Option<Vec<u8>>,
}

/// One connection, re-opened if it breaks.
pub struct Connection {
    target: Target,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    pub fn new(target: &Target) -> Connection {
        Connection {
            target: target.clone(),
            sender: None,
        }
    }

    async fn sender(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(&self.target.authority)
                .await
                .map_err(|e| format!("connect {}: {e}", self.target.authority))?;
            let _ = stream.set_nodelay(true);
            let (sender, conn) = handshake(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        self.sender
            .as_mut()
            .ok_or_else(|| "no connection".to_owned())
    }

    /// Sends `call` and reads the whole answer: its status and body.
    pub async fn send(&mut self, call: &Call) -> Result<(u16, Bytes), String> {
        let mut request = Request::builder()
            .method(call.method.clone())
            .uri(&call.path)
            .header("host", &self.target.authority);
        if let Some(token) = &self.target.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = match &call.body {
            Some(b) => {
                request = request.header("content-type", "application/json");
                Full::new(Bytes::from(b.clone()))
            }
            None => Full::new(Bytes::new()),
        };
        let request = request.body(body).map_err(|e| e.to_string())?;
        let sender = self.sender().await?;
        let answered = sender.send_request(request).await;
        let response = match answered {
            Ok(r) => r,
            Err(e) => {
                self.sender = None;
                return Err(e.to_string());
            }
        };
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    }

    /// A JSON API call that must answer 2xx (idempotent: tried up to three
    /// times on a fresh connection if the connection breaks under it).
    pub async fn json(&mut self, call: Call) -> Result<Value, BenchError> {
        let what = format!("{} {}", call.method, call.path);
        let mut sent = self.send(&call).await;
        for _ in 0..2 {
            if sent.is_ok() {
                break;
            }
            self.sender = None;
            sent = self.send(&call).await;
        }
        let (status, body) = sent.map_err(|e| BenchError::Deployment(format!("{what}: {e}")))?;
        if !(200..300).contains(&status) {
            let text = String::from_utf8_lossy(&body);
            return Err(BenchError::Deployment(format!("{what}: {status} {text}")));
        }
        serde_json::from_slice(&body).map_err(|e| BenchError::Deployment(format!("{what}: {e}")))
    }
}

/// A worker of an HTTP workload: `next` makes its calls.
pub struct HttpOp<F> {
    pub conn: Connection,
    pub next: F,
}

impl<F: FnMut(u64) -> Call + Send + 'static> Op for HttpOp<F> {
    async fn call(&mut self, seq: u64) -> Outcome {
        let call = (self.next)(seq);
        match self.conn.send(&call).await {
            Ok((status, _)) => Outcome::Status(status),
            Err(e) => Outcome::Failed(e),
        }
    }
}

/// Switches `node` to `status` through the API (the admin token needed).
pub async fn switch(conn: &mut Connection, node: &str, status: &str) -> Result<(), BenchError> {
    let body = serde_json::json!({"node_id": node, "status": status});
    conn.json(Call {
        method: Method::POST,
        path: "/node-status".into(),
        body: Some(body.to_string().into_bytes()),
    })
    .await
    .map(|_| ())
}

/// Each node's queued hints as `GET /nodes` reports them (`None`: unknown).
pub async fn queued(conn: &mut Connection) -> Result<Vec<(String, Option<u64>)>, BenchError> {
    let nodes = conn
        .json(Call {
            method: Method::GET,
            path: "/nodes".into(),
            body: None,
        })
        .await?;
    let list = nodes.as_array().cloned().unwrap_or_default();
    Ok(list
        .iter()
        .map(|n| {
            let id = n["node_id"].as_str().unwrap_or_default().to_owned();
            (id, n["queued"].as_u64())
        })
        .collect())
}

/// Waits until `nodes` have nothing queued; answers how long that took.
pub async fn drained(
    conn: &mut Connection,
    nodes: &[String],
    limit: Duration,
) -> Result<Duration, BenchError> {
    let started = Instant::now();
    loop {
        let counts = queued(conn).await?;
        let left: u64 = (counts.iter())
            .filter(|(id, _)| nodes.contains(id))
            .map(|(_, q)| q.unwrap_or(u64::MAX))
            .fold(0, u64::saturating_add);
        if left == 0 {
            return Ok(started.elapsed());
        }
        if started.elapsed() > limit {
            return Err(BenchError::Deployment(format!(
                "the queues of {nodes:?} still hold {left} hints after {limit:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
