//! The Parley homeserver as a library, so tests and the binary build it alike.

pub mod accounts;
pub mod admin;
pub mod api;
pub mod config;
pub mod cpu_pool;
pub mod credentials;
pub mod db;
pub mod dev;
pub mod devcerts;
pub mod devices;
pub mod embedded_pg;
pub mod error;
pub mod federation;
pub mod follower;
pub mod gauges;
pub mod hub;
pub mod inbox;
pub mod key_backup;
pub mod key_packages;
pub mod metrics;
pub mod pg_tls;
pub mod rate_limit;
pub mod remote;
pub mod retention;
pub mod routes;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod token_file;

pub use config::Config;
pub use startup::Application;
