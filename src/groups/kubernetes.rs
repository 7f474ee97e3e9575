//! Kubernetes names for container groups, from what a node shows without the API server.
//!
//! A kubelet puts each container's processes in a cgroup whose path holds the pod's UID and
//! the container's id: `/kubepods/burstable/pod<uid>/<id>` (cgroupfs driver) or
//! `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid, _ for ->.slice/
//! cri-containerd-<id>.scope` (systemd driver). The namespace, pod and container names are
//! not in the path, but the kubelet spells them in the names of its log links,
//! `/var/log/containers/<pod>_<namespace>_<container>-<id>.log`, and of its pod log
//! directories, `/var/log/pods/<namespace>_<pod>_<uid>`. Kubernetes names never hold `_`
//! (they are DNS labels and subdomains), so these names split without ambiguity.
//! Pure string work: the directories are listed by `groups::pods`.

/// A container as its cgroup path shows it: the pod's UID (with `-`, as the API spells it)
/// and the container's 64-hex id when the path reaches the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeCgroup<'a> {
    pub pod_uid: String,
    pub container_id: Option<&'a str>,
}

/// A container's names from a `/var/log/containers` link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLog<'a> {
    pub namespace: &'a str,
    pub pod: &'a str,
    pub container: &'a str,
    pub container_id: &'a str,
}

/// A pod's names from a `/var/log/pods` directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLog<'a> {
    pub namespace: &'a str,
    pub pod: &'a str,
    pub pod_uid: &'a str,
}

/// The pod UID and container id of a kubepods cgroup path; None for any other path.
pub fn parse_kubepods_cgroup(path: &str) -> Option<KubeCgroup<'_>> {
    let mut components = path.split('/').filter(|c| !c.is_empty());
    components.find(|c| c.starts_with("kubepods"))?;
    // The pod's component is under the kubepods root (and its QoS level, if any).
    let mut rest = path.split('/').filter(|c| !c.is_empty());
    let (pod_component, pod_uid) = rest.find_map(|c| Some((c, pod_uid_of(c)?)))?;
    // containerd with the systemd driver but a cgroupfs layout appends `:cri-containerd:<id>`
    // to the pod's component itself.
    let container_id = match pod_component.split_once(':') {
        Some((_, tail)) => container_id_of(tail),
        None => rest.next().and_then(container_id_of),
    };
    Some(KubeCgroup {
        pod_uid,
        container_id,
    })
}

/// `pod<uid>` (cgroupfs) or `kubepods[-<qos>]-pod<uid with _>.slice` (systemd).
fn pod_uid_of(component: &str) -> Option<String> {
    let component = component.split(':').next().unwrap_or(component);
    let raw = match component.strip_suffix(".slice") {
        Some(stem) => {
            stem.strip_prefix("kubepods")
                .and_then(|s| s.rsplit_once("-pod"))?
                .1
        }
        None => component.strip_prefix("pod")?,
    };
    let valid = !raw.is_empty()
        && raw
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'_');
    valid.then(|| raw.replace('_', "-"))
}

/// `<id>`, `<runtime>-<id>.scope` or `…:<id>` where `<id>` is 64 hex digits.
/// CRI-O's `crio-conmon-<id>.scope` holds the container's monitor, not the container: None.
fn container_id_of(component: &str) -> Option<&str> {
    let stem = component.strip_suffix(".scope").unwrap_or(component);
    if stem.starts_with("crio-conmon-") {
        return None;
    }
    let id = stem.rsplit(['-', ':']).next().unwrap_or(stem);
    is_container_id(id).then_some(id)
}

fn is_container_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `<pod>_<namespace>_<container>-<64 hex>.log`, as the kubelet names its links.
pub fn parse_container_log_name(file_name: &str) -> Option<ContainerLog<'_>> {
    let stem = file_name.strip_suffix(".log")?;
    let (names, container_id) = stem.rsplit_once('-')?;
    if !is_container_id(container_id) {
        return None;
    }
    let (pod, namespace, container) = three_names(names)?;
    Some(ContainerLog {
        namespace,
        pod,
        container,
        container_id,
    })
}

/// `<namespace>_<pod>_<uid>`, as the kubelet names a pod's log directory.
pub fn parse_pod_log_dir(dir_name: &str) -> Option<PodLog<'_>> {
    let (namespace, pod, pod_uid) = three_names(dir_name)?;
    Some(PodLog {
        namespace,
        pod,
        pod_uid,
    })
}

fn three_names(text: &str) -> Option<(&str, &str, &str)> {
    let mut parts = text.split('_');
    let names = (parts.next()?, parts.next()?, parts.next()?);
    let whole = parts.next().is_none() && ![names.0, names.1, names.2].contains(&"");
    whole.then_some(names)
}

/// The group of a container: `namespace/pod/container`.
pub fn container_group(log: &ContainerLog<'_>) -> String {
    format!("{}/{}/{}", log.namespace, log.pod, log.container)
}

/// The group of a pod's process in no known container (the sandbox's pause process, or a
/// container whose log link is already gone): `namespace/pod`.
pub fn pod_group(log: &PodLog<'_>) -> String {
    format!("{}/{}", log.namespace, log.pod)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shapes as kubelets write them (containerd, CRI-O and Docker; both cgroup drivers).
    const ID: &str = "1ba81788e9d8a48998fea25d5fe511c774f9de76eaaca81c50ff44b5960223b2";
    const UID: &str = "0b7632a2-a56e-4278-987a-22de18008dbe";

    fn parsed(path: &str) -> Option<(String, Option<String>)> {
        parse_kubepods_cgroup(path).map(|k| (k.pod_uid, k.container_id.map(str::to_owned)))
    }

    #[test]
    fn cgroup_paths_of_both_drivers_give_pod_uid_and_container_id() {
        let both = Some((UID.to_owned(), Some(ID.to_owned())));
        assert_eq!(parsed(&format!("/kubepods/burstable/pod{UID}/{ID}")), both);
        assert_eq!(parsed(&format!("/kubepods/pod{UID}/{ID}")), both);
        assert_eq!(parsed(&format!("/kubepods/besteffort/pod{UID}/{ID}")), both);
        let underscored = UID.replace('-', "_");
        for runtime in ["cri-containerd", "crio", "docker"] {
            assert_eq!(
                parsed(&format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{underscored}.slice/{runtime}-{ID}.scope"
                )),
                both,
                "{runtime}"
            );
        }
        assert_eq!(
            parsed(&format!(
                "/kubepods.slice/kubepods-pod{underscored}.slice/cri-containerd-{ID}.scope"
            )),
            both
        );
        assert_eq!(
            parsed(&format!(
                "/system.slice/containerd.service/kubepods-besteffort-pod{underscored}.slice:cri-containerd:{ID}"
            )),
            both
        );
        // Static pods' UIDs are a hash without dashes.
        assert_eq!(
            parsed(&format!(
                "/kubepods/burstable/pod8b1e9057c80f383869339e73f7286d7b/{ID}"
            )),
            Some((
                "8b1e9057c80f383869339e73f7286d7b".to_owned(),
                Some(ID.to_owned())
            ))
        );
    }

    #[test]
    fn pod_level_and_foreign_paths() {
        assert_eq!(
            parsed(&format!("/kubepods/burstable/pod{UID}")),
            Some((UID.to_owned(), None))
        );
        // CRI-O's conmon runs beside the container, not in it: a pod-level process.
        let underscored = UID.replace('-', "_");
        assert_eq!(
            parsed(&format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{underscored}.slice/crio-conmon-{ID}.scope"
            )),
            Some((UID.to_owned(), None))
        );
        assert_eq!(parsed("/kubepods/burstable"), None);
        assert_eq!(parsed("/kubepods.slice/kubepods-burstable.slice"), None);
        assert_eq!(parsed(&format!("/system.slice/docker-{ID}.scope")), None);
        assert_eq!(parsed(&format!("/docker/{ID}")), None);
        assert_eq!(parsed("/system.slice/podman.service"), None);
        assert_eq!(parsed("/"), None);
    }

    #[test]
    fn kubelet_log_names() {
        let link = format!("kube-apiserver-pa-drs-cluster_kube-system_kube-apiserver-{ID}.log");
        let log = parse_container_log_name(&link).expect("a container log link");
        assert_eq!(
            log,
            ContainerLog {
                namespace: "kube-system",
                pod: "kube-apiserver-pa-drs-cluster",
                container: "kube-apiserver",
                container_id: ID,
            }
        );
        assert_eq!(
            container_group(&log),
            "kube-system/kube-apiserver-pa-drs-cluster/kube-apiserver"
        );
        assert_eq!(
            parse_container_log_name(&format!("a_b_c-{}.log", &ID[..60])),
            None
        );
        assert_eq!(parse_container_log_name(&format!("a_b-{ID}.log")), None);
        assert_eq!(parse_container_log_name(&format!("a_b_c_d-{ID}.log")), None);
        assert_eq!(parse_container_log_name(&format!("a_b_c-{ID}.txt")), None);

        let dir_name = format!("default_web-7d9f8b6c5-x2k4p_{UID}");
        let dir = parse_pod_log_dir(&dir_name).expect("dir");
        assert_eq!(
            dir,
            PodLog {
                namespace: "default",
                pod: "web-7d9f8b6c5-x2k4p",
                pod_uid: UID,
            }
        );
        assert_eq!(pod_group(&dir), "default/web-7d9f8b6c5-x2k4p");
        assert_eq!(parse_pod_log_dir("default_web"), None);
        assert_eq!(parse_pod_log_dir("__"), None);
    }
}
