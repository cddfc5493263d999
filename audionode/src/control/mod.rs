//! The node's control surface: a live web mixing desk, a JSON REST API, a
//! WebSocket that pushes every change and the meters, and Prometheus
//! metrics. See `docs/control-api.md`.

mod connections;
pub mod health;
pub mod hub;
pub mod limits;
pub mod listen;
pub mod metrics;
pub mod outputs;
mod security;
mod send;
pub mod server;
mod settings_log;
pub mod state;

pub use hub::{ControlCommand, Hub, Tick};
pub use limits::{raise_open_file_limit, HttpLimits};
pub(crate) use security::check_allow_host;
pub use server::HttpServer;
pub use state::SourceInfo;
