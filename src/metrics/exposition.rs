//! The exposition: a snapshot rendered as OpenMetrics text through prometheus-client, one
//! family after another in catalogue order (docs/metrics.md). Every series is drawn from
//! the snapshot handed in (one scan), so nothing accumulates between scrapes, and the
//! whole exposition is encoded into one buffer before anything is sent: a scrape never
//! sees half of it.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

use super::exporter::BuildInfo;
use super::family::Family;
use super::{exporter, groups, host, kills};
use crate::snapshot::Snapshot;

/// The Content-Type of the OpenMetrics exposition, served to clients that accept it.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The Content-Type of the Prometheus text format 0.0.4, served to every other client.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Encodes the snapshot as a complete OpenMetrics exposition (ending in `# EOF`).
pub fn render(snapshot: Arc<Snapshot>, build: BuildInfo) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotMetrics { snapshot, build }));
    let mut text = String::with_capacity(16 * 1024);
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

#[derive(Debug)]
struct SnapshotMetrics {
    snapshot: Arc<Snapshot>,
    build: BuildInfo,
}

impl Collector for SnapshotMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &*self.snapshot;
        let f = &mut Family {
            encoder: &mut encoder,
        };
        host::host(f, s)?;
        host::boot(f, s)?;
        if let Some(p) = &s.processes {
            groups::processes(f, p)?;
        }
        groups::group_memory(f, &s.group_memory)?;
        if let Some(k) = &s.kmsg {
            kills::kills(f, k, s.vmstat_oom_kills)?;
        }
        kills::userspace(f, s.kmsg.as_ref(), s.oomd.as_ref(), s.oomd_forged_signals)?;
        kills::units(f, &s.units)?;
        if let Some(e) = &s.exits {
            exporter::exit_events(f, e)?;
        }
        exporter::exporter(f, s, &self.build)
    }
}
