//! Zero-config group names, from a process's cgroup path and comm.
//!
//! The deepest meaningful cgroup component decides: a container scope or id names the
//! container (`docker-<12 hex>`, `containerd-…`, `crio-…`, `podman-…`, `container-…`), a
//! `.service` names the systemd unit; a `.scope` or `.slice` that is neither (a login
//! session, a user slice) stops the search, and the process is grouped by its comm.
//! On a Kubernetes node a container of a pod is named `namespace/pod/container` instead,
//! when the caller knows those names for the pod UID and container id its kubepods path
//! shows (`groups::kubernetes`); such names are bounded by Kubernetes' own limits.
//! Anything under a user's service manager (`user@UID.service`, a subtree any user can
//! fill with units and cgroups of their own) is named apart: `user@1000/mysql.service`,
//! never the system's `mysql.service`, so a user cannot enter a system service's group.
//! Pure string work; every other name is at most 64 bytes.

use super::kubernetes::{parse_kubepods_cgroup, KubeCgroup};

/// Longest group name derived from a comm or a path component.
const MAX_NAME: usize = 64;

/// Where a group name came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameSource {
    /// A rule of `--config.file`.
    Rule,
    /// The cgroup path: a systemd unit or a container.
    Cgroup,
    /// A Kubernetes pod's container (`namespace/pod/container`), from the kubelet's names.
    Pod,
    /// The bare comm: any command, including every short-lived one a shell runs.
    Comm,
}

/// The automatic group of a process: from its cgroup path if that names a service or a
/// container, else its comm.
pub fn auto_group_name(cgroup_path: Option<&str>, comm: &str) -> String {
    auto_group(cgroup_path, comm).0
}

/// The automatic group of a process, and whether the cgroup or the comm named it.
pub fn auto_group(cgroup_path: Option<&str>, comm: &str) -> (String, NameSource) {
    auto_group_with(cgroup_path, comm, |_| None)
}

/// Like `auto_group`, with `kube_name` asked first for the names of a kubepods path's pod
/// and container (`namespace/pod/container`); the container id names it when that is None.
pub fn auto_group_with(
    cgroup_path: Option<&str>,
    comm: &str,
    kube_name: impl FnOnce(&KubeCgroup<'_>) -> Option<String>,
) -> (String, NameSource) {
    let user = cgroup_path.and_then(user_manager);
    let kube = cgroup_path
        .filter(|_| user.is_none())
        .and_then(parse_kubepods_cgroup)
        .and_then(|kube| kube_name(&kube));
    if let Some(name) = kube {
        return (name, NameSource::Pod);
    }
    match (cgroup_path.and_then(group_from_cgroup), user) {
        // The user's service manager itself keeps its own, unambiguous name.
        (Some(name), Some(uid)) if name != format!("user@{uid}.service") => {
            (bounded(&format!("user@{uid}/{name}")), NameSource::Cgroup)
        }
        (Some(name), _) => (name, NameSource::Cgroup),
        (None, _) => (bounded(comm), NameSource::Comm),
    }
}

/// A Kubernetes pod's names, as an automatic group name carries them
/// (`namespace/pod/container`, or `namespace/pod` for a pod's other processes); None for
/// any other name. Only automatic names are pod names: a configured name is the user's.
pub fn pod_names(group: &str) -> Option<PodNames<'_>> {
    if group.starts_with("user@") {
        return None;
    }
    let mut parts = group.splitn(3, '/');
    let namespace = parts.next().filter(|s| !s.is_empty())?;
    let pod = parts.next().filter(|s| !s.is_empty())?;
    let container = parts.next().filter(|s| !s.is_empty());
    Some(PodNames {
        namespace,
        pod,
        container,
    })
}

/// The names a pod-named group stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodNames<'a> {
    pub namespace: &'a str,
    pub pod: &'a str,
    pub container: Option<&'a str>,
}

/// The uid of the user service manager (`user@UID.service`) a cgroup path is under.
fn user_manager(path: &str) -> Option<&str> {
    path.split('/').find_map(|component| {
        let uid = component.strip_prefix("user@")?.strip_suffix(".service")?;
        (!uid.is_empty() && uid.bytes().all(|b| b.is_ascii_digit())).then_some(uid)
    })
}

fn group_from_cgroup(path: &str) -> Option<String> {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for (depth, component) in components.iter().enumerate().rev() {
        if let Some(name) = container_group(component, depth.checked_sub(1).map(|p| components[p]))
        {
            return Some(name);
        }
        if component.ends_with(".service") {
            return Some(bounded(component));
        }
        if component.ends_with(".scope") || component.ends_with(".slice") {
            return None;
        }
    }
    None
}

/// A container cgroup component: `<runtime>-<64 hex>.scope` (systemd driver) or a bare
/// 64-hex id (cgroupfs driver), named `<runtime>-<first 12 hex>`.
fn container_group(component: &str, parent: Option<&str>) -> Option<String> {
    let scoped = component.strip_suffix(".scope").and_then(|stem| {
        let (prefix, id) = stem.rsplit_once('-')?;
        let runtime = match prefix {
            "docker" => "docker",
            "cri-containerd" => "containerd",
            "crio" => "crio",
            "libpod" => "podman",
            _ => return None,
        };
        Some((runtime, id))
    });
    let (runtime, id) = match scoped {
        Some(found) => found,
        None => {
            // cgroupfs driver: `/docker/<id>`, `/kubepods/burstable/pod<uid>/<id>`,
            // containerd's `…:cri-containerd:<id>`.
            let id = component.rsplit(':').next().unwrap_or(component);
            let runtime = match parent {
                Some("docker") => "docker",
                _ if component.contains(":cri-containerd:") => "containerd",
                _ => "container",
            };
            (runtime, id)
        }
    };
    let is_id = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
    is_id.then(|| format!("{runtime}-{}", &id[..12]))
}

fn bounded(name: &str) -> String {
    let mut end = name.len().min(MAX_NAME);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f1c2e9b7a6d5c4b3a291807f6e5d4c3b2a1908f7e6d5c4b3a2918076f5e4d3c";

    fn name(path: &str) -> String {
        auto_group_name(Some(path), "comm")
    }

    #[test]
    fn systemd_units() {
        assert_eq!(name("/system.slice/nginx.service"), "nginx.service");
        assert_eq!(name("/system.slice/mysql.service/payload"), "mysql.service");
        assert_eq!(
            name("/user.slice/user-1000.slice/user@1000.service/app.slice/dbus.service"),
            "user@1000/dbus.service"
        );
        assert_eq!(name("/user.slice/user-1000.slice/session-2.scope"), "comm");
        assert_eq!(
            name("/user.slice/user-1000.slice/user@1000.service/init.scope"),
            "comm"
        );
        assert_eq!(name("/"), "comm");
        assert_eq!(
            name("/process_api/4373a56c73305f41b5209104e3baec60"),
            "comm"
        );
    }

    #[test]
    fn a_user_cannot_enter_a_system_units_group_by_naming() {
        // `systemd-run --user --unit=mysql` as uid 1000.
        let user = "/user.slice/user-1000.slice/user@1000.service/app.slice/mysql.service";
        assert_eq!(name(user), "user@1000/mysql.service");
        assert_eq!(name("/system.slice/mysql.service"), "mysql.service");
        // A cgroup the user made to look like a system container or a pod.
        let fake =
            format!("/user.slice/user-1000.slice/user@1000.service/user.slice/docker-{ID}.scope");
        assert_eq!(name(&fake), "user@1000/docker-3f1c2e9b7a6d");
        let pod = format!(
            "/user.slice/user-1000.slice/user@1000.service/kubepods/burstable/pod1234/{ID}"
        );
        let named = auto_group_with(Some(&pod), "x", |_| Some("default/web/nginx".into()));
        assert_eq!(
            named,
            (
                "user@1000/container-3f1c2e9b7a6d".into(),
                NameSource::Cgroup
            )
        );
        // The user's manager itself and its scopes.
        assert_eq!(
            name("/user.slice/user-1000.slice/user@1000.service"),
            "user@1000.service"
        );
    }

    #[test]
    fn pod_names_come_apart() {
        let names = pod_names("default/web-1/nginx").expect("pod");
        assert_eq!(
            (names.namespace, names.pod, names.container),
            ("default", "web-1", Some("nginx"))
        );
        assert_eq!(
            pod_names("kube-system/dns").map(|n| n.container),
            Some(None)
        );
        assert_eq!(pod_names("nginx.service"), None);
        assert_eq!(pod_names("user@1000/mysql.service"), None);
    }

    #[test]
    fn containers() {
        assert_eq!(name(&format!("/docker/{ID}")), "docker-3f1c2e9b7a6d");
        assert_eq!(
            name(&format!("/system.slice/docker-{ID}.scope")),
            "docker-3f1c2e9b7a6d"
        );
        assert_eq!(
            name(&format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice/cri-containerd-{ID}.scope"
            )),
            "containerd-3f1c2e9b7a6d"
        );
        assert_eq!(
            name(&format!("/kubepods/burstable/pod1234/{ID}")),
            "container-3f1c2e9b7a6d"
        );
        assert_eq!(
            name(&format!("/machine.slice/libpod-{ID}.scope/container")),
            "podman-3f1c2e9b7a6d"
        );
        assert_eq!(name(&format!("/crio-{ID}.scope")), "crio-3f1c2e9b7a6d");
        assert_eq!(
            name(&format!("/system.slice/containerd.service/kubepods-burstable-pod1.slice:cri-containerd:{ID}")),
            "containerd-3f1c2e9b7a6d"
        );
        assert_eq!(name("/system.slice/docker-short.scope"), "comm");
    }

    #[test]
    fn kubepods_containers_take_their_kubernetes_names_when_known() {
        let uid = "0b7632a2-a56e-4278-987a-22de18008dbe";
        let path = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{ID}.scope",
            uid.replace('-', "_")
        );
        let named = auto_group_with(Some(&path), "nginx", |kube| {
            assert_eq!((kube.pod_uid.as_str(), kube.container_id), (uid, Some(ID)));
            Some("default/web-1/nginx".to_owned())
        });
        assert_eq!(named, ("default/web-1/nginx".to_owned(), NameSource::Pod));
        // Unknown to the kubelet's directories: the container id names it, as before.
        let unknown = auto_group_with(Some(&path), "nginx", |_| None);
        assert_eq!(
            unknown,
            ("containerd-3f1c2e9b7a6d".to_owned(), NameSource::Cgroup)
        );
        // Not a kubepods path: never asked.
        let docker = format!("/system.slice/docker-{ID}.scope");
        let named = auto_group_with(Some(&docker), "x", |_| panic!("asked for {docker}"));
        assert_eq!(named.0, "docker-3f1c2e9b7a6d");
    }

    #[test]
    fn long_names_are_cut_on_a_char_boundary() {
        let comm = "é".repeat(40);
        let named = auto_group_name(None, &comm);
        assert!(named.len() <= MAX_NAME);
        assert!(comm.starts_with(&named));
    }
}
