//! Black-box integration tests: the real `ccgate` binary against the project's mock upstream on 127.0.0.1.
//! One test binary (modules below) keeps link time down.

mod common;

mod admin_api;
mod admin_session;
mod admin_usage;
mod alerts;
mod anthropic;
mod browser;
mod config_reload;
mod dashboard;
mod durability;
mod first_hour;
mod hostile;
mod import_usage;
mod limits;
mod listener;
mod metering;
mod migration;
mod openai_api;
mod operations;
mod outliers;
mod postgres;
mod resilience;
mod responses;
mod scale_out;
mod throttle;
mod transport;
mod trust;
mod upstream_pool;
mod usage_compat;
