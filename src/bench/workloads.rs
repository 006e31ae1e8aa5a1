//! Each workload's run: what it switches, what its workers send, which
//! baseline runs beside it.

use std::time::{Duration, Instant};

use hyper::Method;

use super::baseline::{self, BrokerOp, BrokerTopics, NaiveOp, NaivePair};
use super::calls::{create_call, filter_call, lookup_call};
use super::http::{self, Call, Connection, HttpOp, Target};
use super::load::{Load, drive};
use super::records::{BenchRecord, run_tag};
use super::report::{Replay, Report, Row};
use super::{BenchError, Settings, TargetKind, Workload};
use crate::config::Config;
use crate::domain::Region;

/// Connections that write the records the read workloads read.
const SEED_CONNECTIONS: usize = 32;
/// How long a replay of a backlog may take before the run gives up.
const REPLAY_LIMIT: Duration = Duration::from_secs(600);

pub struct Bench<'a> {
    config: &'a Config,
    settings: &'a Settings,
    target: Target,
    run: String,
    /// The ids the read workloads look up.
    ids: std::sync::Arc<Vec<String>>,
    report: Report,
    naive: Vec<mongodb::Collection<mongodb::bson::Document>>,
    topics: Option<BrokerTopics>,
}

impl<'a> Bench<'a> {
    pub fn new(config: &'a Config, settings: &'a Settings, target: Target) -> Bench<'a> {
        Bench {
            config,
            settings,
            target,
            run: run_tag(),
            ids: std::sync::Arc::new(Vec::new()),
            report: Report::default(),
            naive: Vec::new(),
            topics: None,
        }
    }

    fn regions(&self) -> Vec<Region> {
        self.config.regions.regions().to_vec()
    }

    /// Runs one workload at one connection count, with its baseline.
    pub async fn workload(
        &mut self,
        workload: Workload,
        connections: usize,
    ) -> Result<(), BenchError> {
        match workload {
            Workload::CreateAllUp => self.create_all_up(connections).await,
            Workload::CreateQueued => self.create_queued(connections).await,
            reads => {
                let load = self.reads(reads, connections).await;
                self.push(reads.name(), load).await;
                Ok(())
            }
        }
    }

    async fn push(&mut self, workload: &str, load: Load) {
        let client = match self.settings.target {
            TargetKind::Regiondb => "regiondb",
            TargetKind::Original => "original",
        };
        let mut row = Row::new(workload, client, &load);
        if self.settings.target == TargetKind::Regiondb {
            row.resident_mib = self.resident_mib().await;
        }
        eprintln!(
            "{workload} at {} connections, {client}: {:.0} req/s",
            row.connections, row.requests_per_second
        );
        self.report.rows.push(row);
    }

    /// Creates across every region, every node available.
    async fn create_all_up(&mut self, connections: usize) -> Result<(), BenchError> {
        let regions = self.regions();
        let nodes = node_ids(&regions);
        self.set_statuses(&nodes, "available").await?;
        let tag = format!("{}a{connections}", self.run);
        let load = self.creates(connections, &tag, regions.clone()).await;
        self.push(Workload::CreateAllUp.name(), load).await;
        if self.baselines() {
            let load = self.naive(connections, &tag, &regions).await?;
            (self.report.rows).push(Row::new(Workload::CreateAllUp.name(), "naive", &load));
        }
        Ok(())
    }

    /// Creates across every region with every node switched off (so each
    /// record's home and replica copies are queued); then the broker
    /// baseline; then the nodes back on, and the replay of what was queued
    /// timed. (Spread over every region, each node's backlog stays within
    /// what the test stand-in for MongoDB takes in good time.)
    async fn create_queued(&mut self, connections: usize) -> Result<(), BenchError> {
        let regions = self.regions();
        let nodes = node_ids(&regions);
        self.set_statuses(&nodes, "unavailable").await?;
        let tag = format!("{}q{connections}", self.run);
        let load = self.creates(connections, &tag, regions.clone()).await;
        self.push(Workload::CreateQueued.name(), load).await;
        if self.baselines() {
            let load = self.broker(connections, &tag, &regions[0]).await?;
            self.report
                .rows
                .push(Row::new(Workload::CreateQueued.name(), "broker", &load));
        }
        if self.settings.target == TargetKind::Regiondb {
            let mut conn = Connection::new(&self.target);
            let counts = http::queued(&mut conn).await?;
            let hints: u64 = (counts.iter())
                .filter(|(id, _)| nodes.contains(id))
                .filter_map(|(_, q)| *q)
                .sum();
            self.set_statuses(&nodes, "available").await?;
            let took = http::drained(&mut conn, &nodes, REPLAY_LIMIT).await?;
            self.report.replays.push(Replay {
                nodes: nodes.clone(),
                hints,
                seconds: took.as_secs_f64(),
                hints_per_second: hints as f64 / took.as_secs_f64().max(1e-3),
            });
        } else {
            self.set_statuses(&nodes, "available").await?;
        }
        Ok(())
    }

    fn baselines(&self) -> bool {
        self.settings.baselines && self.settings.target == TargetKind::Regiondb
    }

    /// `POST /create-customer` of fresh records homed in `regions`, in turn.
    async fn creates(&self, connections: usize, tag: &str, regions: Vec<Region>) -> Load {
        let workers = (0..connections)
            .map(|w| {
                let regions = regions.clone();
                let tag = tag.to_owned();
                HttpOp {
                    conn: Connection::new(&self.target),
                    next: move |n: u64| create_call(&tag, w, n, &regions),
                }
            })
            .collect();
        drive(workers, self.settings.warmup, self.settings.duration).await
    }

    /// The naive client writing the same kind of records.
    async fn naive(
        &mut self,
        connections: usize,
        tag: &str,
        regions: &[Region],
    ) -> Result<Load, BenchError> {
        let mut pairs = Vec::new();
        for region in regions {
            let home = self.naive_collection(region.id.as_str()).await?;
            let replica = self.naive_collection(region.replica.as_str()).await?;
            pairs.push((region.clone(), NaivePair { home, replica }));
        }
        let workers = (0..connections)
            .map(|w| {
                let pairs = pairs.clone();
                let tag = format!("{tag}n");
                NaiveOp {
                    next: move |n: u64| {
                        let (region, pair) = &pairs[(w + n as usize) % pairs.len()];
                        (BenchRecord::new(&tag, w, n, region), pair.clone())
                    },
                }
            })
            .collect();
        Ok(drive(workers, self.settings.warmup, self.settings.duration).await)
    }

    async fn naive_collection(
        &mut self,
        node: &str,
    ) -> Result<mongodb::Collection<mongodb::bson::Document>, BenchError> {
        let uri = (self.config.mongo.uris.iter())
            .find(|(n, _)| n.as_str() == node)
            .map_or("mongodb://localhost:27017", |(_, u)| u.as_str());
        let coll = baseline::naive_collection(uri, node).await?;
        self.naive.push(coll.clone());
        Ok(coll)
    }

    /// Two acknowledged produces per record, straight to the broker.
    async fn broker(
        &mut self,
        connections: usize,
        tag: &str,
        region: &Region,
    ) -> Result<Load, BenchError> {
        if self.topics.is_none() {
            self.topics = Some(BrokerTopics::create(&self.config.kafka).await?);
        }
        let topics = self
            .topics
            .as_ref()
            .map(|t| t.names.clone())
            .unwrap_or_default();
        let producer = baseline::raw_producer(&self.config.kafka)?;
        let workers = (0..connections)
            .map(|w| {
                let region = region.clone();
                let tag = format!("{tag}b");
                BrokerOp {
                    producer: producer.clone(),
                    topics: topics.clone(),
                    next: move |n: u64| BenchRecord::new(&tag, w, n, &region),
                }
            })
            .collect();
        Ok(drive(workers, self.settings.warmup, self.settings.duration).await)
    }

    /// Switches `nodes`: through the API, or (the original app) by writing
    /// the status hash it reads.
    async fn set_statuses(&self, nodes: &[String], status: &str) -> Result<(), BenchError> {
        if self.settings.target == TargetKind::Original {
            return self.set_statuses_in_redis(nodes, status).await;
        }
        if self.target.token.is_none() && status == "unavailable" {
            return Err(BenchError::NoToken("create-queued"));
        }
        let mut conn = Connection::new(&self.target);
        for node in nodes {
            if self.target.token.is_none() {
                continue;
            }
            http::switch(&mut conn, node, status).await?;
        }
        Ok(())
    }

    async fn set_statuses_in_redis(
        &self,
        nodes: &[String],
        status: &str,
    ) -> Result<(), BenchError> {
        let redis = |e: redis::RedisError| BenchError::Deployment(format!("redis: {e}"));
        let client = redis::Client::open(self.config.redis.url.as_str()).map_err(redis)?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(redis)?;
        for node in nodes {
            let () = redis::cmd("HSET")
                .arg("node_statuses")
                .arg(node)
                .arg(status)
                .query_async(&mut conn)
                .await
                .map_err(redis)?;
        }
        Ok(())
    }

    /// The deployment's resident memory, from its metrics.
    async fn resident_mib(&self) -> Option<f64> {
        let mut conn = Connection::new(&self.target);
        let call = Call {
            method: Method::GET,
            path: "/metrics".into(),
            body: None,
        };
        let (_, body) = conn.send(&call).await.ok()?;
        let text = String::from_utf8_lossy(&body);
        let line = text
            .lines()
            .find(|l| l.starts_with("process_resident_memory_bytes "))?;
        let bytes: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(bytes / (1024.0 * 1024.0))
    }

    /// Empties what the naive client wrote; the report.
    pub async fn finish(self) -> Report {
        baseline::clean_naive(&self.naive).await;
        self.report
    }

    /// Writes `records` records per region through the API for the read
    /// workloads, and remembers their ids.
    pub async fn seed(&mut self) -> Result<(), BenchError> {
        let regions = self.regions();
        let total = self.settings.records * regions.len() as u64;
        let started = Instant::now();
        let tag = format!("{}s", self.run);
        let tasks: Vec<_> = (0..SEED_CONNECTIONS)
            .map(|w| {
                let (regions, tag) = (regions.clone(), tag.clone());
                let mut conn = Connection::new(&self.target);
                tokio::spawn(async move {
                    let mut ids = Vec::new();
                    let mut n = 0;
                    while (n * SEED_CONNECTIONS as u64 + w as u64) < total {
                        let call = create_call(&tag, w, n, &regions);
                        match conn.send(&call).await {
                            Ok((201 | 202, _)) => ids.push(format!("bench-{tag}-{w}-{n}")),
                            Ok((status, body)) => {
                                let text = String::from_utf8_lossy(&body).into_owned();
                                return Err(BenchError::Deployment(format!(
                                    "seeding: {status} {text}"
                                )));
                            }
                            Err(e) => return Err(BenchError::Deployment(format!("seeding: {e}"))),
                        }
                        n += 1;
                    }
                    Ok(ids)
                })
            })
            .collect();
        let mut ids = Vec::new();
        for task in tasks {
            let seeded = task
                .await
                .map_err(|e| BenchError::Deployment(e.to_string()))?;
            ids.extend(seeded?);
        }
        let rate = ids.len() as f64 / started.elapsed().as_secs_f64().max(1e-3);
        eprintln!("seeded {} records ({rate:.0} records/s)", ids.len());
        self.report.seeded = Some((self.settings.records, rate));
        self.ids = std::sync::Arc::new(ids);
        Ok(())
    }

    /// The read workloads look up the records of a seed CSV imported
    /// already (see `records::write_seed`).
    pub fn use_seed(&mut self, path: &std::path::Path) -> Result<(), BenchError> {
        let ids = super::records::read_ids(path)
            .map_err(|e| BenchError::Deployment(format!("{}: {e}", path.display())))?;
        let per_region = ids.len() as u64 / self.regions().len().max(1) as u64;
        eprintln!("reading {} imported records", ids.len());
        self.report.seeded = Some((per_region, 0.0));
        self.ids = std::sync::Arc::new(ids);
        Ok(())
    }

    /// Filters, lookups, or a mix with creates.
    async fn reads(&self, workload: Workload, connections: usize) -> Load {
        let regions = self.regions();
        let workers = (0..connections)
            .map(|w| {
                let (regions, ids) = (regions.clone(), self.ids.clone());
                let tag = format!("{}m{connections}", self.run);
                HttpOp {
                    conn: Connection::new(&self.target),
                    next: move |n: u64| match (workload, n % 10) {
                        (Workload::Filter, _) | (Workload::Mixed, 0) => filter_call(w, n, &regions),
                        (Workload::Mixed, 1 | 2) => create_call(&tag, w, n, &regions),
                        _ => lookup_call(w, n, &ids),
                    },
                }
            })
            .collect();
        drive(workers, self.settings.warmup, self.settings.duration).await
    }
}

/// The home node of each region: every node.
fn node_ids(regions: &[Region]) -> Vec<String> {
    regions.iter().map(|r| r.id.to_string()).collect()
}
