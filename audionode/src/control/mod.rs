//! The node's control surface: a live web mixing desk, a JSON REST API, a
//! WebSocket that pushes every change and the meters, and Prometheus
//! metrics. See `docs/control-api.md`.

pub mod hub;
pub mod metrics;
pub mod server;
pub mod state;

pub use hub::{ControlCommand, Hub, Tick};
pub use server::HttpServer;
