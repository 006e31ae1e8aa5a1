//! regiondb: customer records kept in the MongoDB node of their home region,
//! with Cassandra-style hinted handoff through Kafka while a node is down.
//!
//! Layout, bottom to top (docs/architecture.md has the whole map):
//! `domain` (types, no I/O) and `config` · one adapter per backing service
//! (`nodes` and `access` = Redis, `store` = MongoDB, `hints` = Kafka) · the paths that
//! compose them (`writes`, `reads`, `replay`, `repair`, `recovery`,
//! `prober`, `import`, ...) · the edges (`http`, `cli`, and `bench`, a
//! client of a running deployment) · `startup`, which connects the services
//! and wires a serving instance.

pub mod access;
pub mod backlog;
pub mod bench;
pub mod cli;
pub mod clock_lease;
pub mod config;
pub mod domain;
pub mod generate;
pub mod hints;
pub mod http;
pub mod import;
pub mod locate;
pub mod lookup;
pub mod metrics;
pub mod monitor;
pub mod nodes;
pub mod prober;
pub mod reads;
pub mod recovery;
pub mod repair;
pub mod replay;
pub mod retry;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod writes;
