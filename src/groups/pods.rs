//! The node's pod names, read from the kubelet's log directories under `--path.rootfs`:
//! the link names in `/var/log/containers` (container id to namespace, pod and container)
//! and the directory names in `/var/log/pods` (pod UID to namespace and pod). Only names
//! are listed; no link is followed and no log is opened. Parsing is `groups::kubernetes`.
//!
//! Read lazily: only when a kubepods cgroup asks for a name that is not known yet, and at
//! most once per `REREAD_AFTER`, so hosts without Kubernetes never list anything and a
//! node's new containers are named from their first scan.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::kubernetes::{
    container_group, parse_container_log_name, parse_pod_log_dir, pod_group, KubeCgroup,
};
use crate::roots::Roots;

/// The shortest time between two listings of the directories.
const REREAD_AFTER: Duration = Duration::from_secs(2);

/// The kubelet's names of the node's containers and pods, shared by every namer.
#[derive(Debug)]
pub struct PodNames {
    containers_dir: PathBuf,
    pods_dir: PathBuf,
    known: Mutex<Known>,
}

#[derive(Debug, Default)]
struct Known {
    /// Container id to `namespace/pod/container`.
    containers: HashMap<String, String>,
    /// Pod UID to `namespace/pod`.
    pods: HashMap<String, String>,
    listed_at: Option<Instant>,
}

impl Known {
    fn name(&self, kube: &KubeCgroup<'_>) -> Option<String> {
        kube.container_id
            .and_then(|id| self.containers.get(id))
            .or_else(|| self.pods.get(&kube.pod_uid))
            .cloned()
    }
}

impl PodNames {
    /// The names under the host's root filesystem of `roots`.
    pub fn new(roots: &Roots) -> Self {
        Self {
            containers_dir: roots.root_file("/var/log/containers"),
            pods_dir: roots.root_file("/var/log/pods"),
            known: Mutex::default(),
        }
    }

    /// `namespace/pod/container` for a container the kubelet has a log link for,
    /// `namespace/pod` for another process of a known pod, else None.
    pub fn name(&self, kube: &KubeCgroup<'_>) -> Option<String> {
        let mut known = crate::sync::lock(&self.known);
        if let Some(name) = known.name(kube) {
            return Some(name);
        }
        if known
            .listed_at
            .is_some_and(|at| at.elapsed() < REREAD_AFTER)
        {
            return None;
        }
        *known = Known {
            containers: list_names(&self.containers_dir, |name| {
                let log = parse_container_log_name(name)?;
                Some((log.container_id.to_owned(), container_group(&log)))
            }),
            pods: list_names(&self.pods_dir, |name| {
                let log = parse_pod_log_dir(name)?;
                Some((log.pod_uid.to_owned(), pod_group(&log)))
            }),
            listed_at: Some(Instant::now()),
        };
        known.name(kube)
    }
}

/// The entries of `dir` that `parse` accepts; nothing when the directory cannot be listed
/// (not a Kubernetes node, or not mounted into the container).
fn list_names(
    dir: &Path,
    parse: impl Fn(&str) -> Option<(String, String)>,
) -> HashMap<String, String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return HashMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| parse(entry.file_name().to_str()?))
        .collect()
}
