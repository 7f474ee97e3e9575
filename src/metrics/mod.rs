//! Metrics: a snapshot rendered as an OpenMetrics exposition (`exposition`), family by
//! family (`host`, `groups`, `kills`, `exporter`) through one encoder helper (`family`),
//! and the Prometheus text format for older clients (`text_format`). Metric names are
//! written as in the catalogue (docs/metrics.md). This file only declares and re-exports.

pub mod exporter;
pub mod exposition;
mod family;
mod groups;
mod host;
mod kills;
pub mod text_format;

pub use exporter::BuildInfo;
pub use exposition::{render, CONTENT_TYPE, TEXT_CONTENT_TYPE};
pub use text_format::openmetrics_to_text;
