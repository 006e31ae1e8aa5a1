//! Integration tests against real Redis, Kafka (tansu) and MongoDB-wire
//! (jongodb) servers; see `helpers.rs`.

mod admin;
mod behind;
mod bounds;
mod browser;
mod config;
mod deletes;
mod demo;
mod detection;
mod errors;
mod failover;
mod faults;
mod flood;
mod fuzz;
mod helpers;
mod image;
mod import;
mod lifecycle;
mod lost_data;
mod metrics;
mod moves;
mod nodes;
mod openapi;
mod pages;
mod purge;
mod reads;
mod repair;
mod replay;
mod restarts;
mod scale;
mod secured;
mod security;
mod sessions;
mod skew;
mod stalls;
mod writes;
