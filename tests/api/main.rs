//! Integration tests against real Redis, Kafka (tansu) and MongoDB-wire
//! (jongodb) servers; see `helpers.rs`.

mod browser;
mod config;
mod errors;
mod faults;
mod helpers;
mod nodes;
mod pages;
mod reads;
mod repair;
mod replay;
mod writes;
