//! Integration tests against real Redis, Kafka (tansu) and MongoDB-wire
//! (jongodb) servers; see `helpers.rs`.

mod config;
mod errors;
mod helpers;
mod nodes;
mod reads;
mod replay;
mod writes;
