//! The container image (deploy/container/): build.sh makes it FROM scratch with podman from
//! this run's binary and the libraries it links, nothing pulled; the binary in it runs, and
//! it serves the real host's metrics when run as the DaemonSet runs it: privileged, the
//! DaemonSet's args, host PID and network namespaces, /proc, /sys and / read-only under
//! /host, the host's /dev/kmsg mounted, a read-only root. And why privileged: run as the
//! DaemonSet's comment says it may be run instead (unprivileged, CAP_SYSLOG and
//! CAP_NET_ADMIN, /dev/kmsg mounted as a hostPath volume mounts it), the kernel log cannot be
//! opened (the device cgroup), while every other source works.
//!
//! Two things differ from a cluster, both forced by this machine, not by the image: the
//! runtime is runc (crun refuses the host's hybrid cgroup v1/v2 layout), and the rlimits are
//! set below the host's (podman's defaults are above them, and the machine withholds
//! CAP_SYS_RESOURCE from the runtime).

mod common;

use std::process::Command;

use common::deploy::{on_path, printed, repo_file, scrape_with_every_source};
use common::{require, sample, Exporter};

/// `podman run` as this machine allows it (see the top of the file).
const RUN: [&str; 5] = [
    "run",
    "--rm",
    "--runtime=runc",
    "--ulimit=nofile=4096:4096",
    "--ulimit=nproc=4096:4096",
];

/// Removes the test's container and image when dropped.
struct Image {
    tag: String,
    container: String,
    unprivileged: String,
}

impl Drop for Image {
    fn drop(&mut self) {
        for container in [&self.container, &self.unprivileged] {
            let _ = Command::new("podman")
                .args(["rm", "--force", "--ignore", container])
                .output();
        }
        let _ = Command::new("podman")
            .args(["rmi", "--force", &self.tag])
            .output();
    }
}

fn daemonset_container() -> serde_json::Value {
    let text =
        std::fs::read_to_string(repo_file("deploy/kubernetes/daemonset.yaml")).expect("daemonset");
    let daemonset: serde_json::Value = serde_norway::from_str(&text).expect("yaml");
    daemonset["spec"]["template"]["spec"]["containers"][0].clone()
}

#[test]
fn image_builds_from_scratch_and_serves_the_host_as_the_daemonset_runs_it() {
    require(
        rustix::process::geteuid().is_root(),
        "running as root (rootful podman)",
    );
    for tool in ["podman", "runc"] {
        require(
            on_path(tool),
            &format!("{tool} on PATH (scripts/test.sh installs it)"),
        );
    }
    let image = Image {
        tag: format!("localhost/oomwatch:test-{}", std::process::id()),
        container: format!("oomwatch-test-{}", std::process::id()),
        unprivileged: format!("oomwatch-test-unprivileged-{}", std::process::id()),
    };
    let binary = env!("CARGO_BIN_EXE_oomwatch");
    let built = Command::new(repo_file("deploy/container/build.sh"))
        .args([binary, &image.tag])
        .output()
        .expect("build.sh runs");
    assert!(built.status.success(), "build.sh:\n{}", printed(&built));

    let version = Command::new("podman")
        .args(RUN)
        .args([&image.tag, "--version"])
        .output()
        .expect("podman runs");
    let expected = Command::new(binary)
        .arg("--version")
        .output()
        .expect("binary runs");
    assert!(version.status.success(), "{}", printed(&version));
    assert_eq!(printed(&version), printed(&expected));

    // As the DaemonSet runs it.
    let container = daemonset_container();
    assert_eq!(
        container["securityContext"]["privileged"], true,
        "the DaemonSet runs privileged, to open /dev/kmsg"
    );
    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("an arg"))
        // The test harness gives its own loopback address to listen on.
        .filter(|a| !a.starts_with("--web.listen-address"))
        .collect();
    // podman's flags for the DaemonSet's namespaces and hostPath volumes (/dev/kmsg mounted
    // as a hostPath volume mounts it: a bind mount, not a device grant), then `security`.
    let wrapper_for = |container: &str, security: &[&'static str]| -> Vec<String> {
        let mut wrapper: Vec<String> = ["podman"]
            .iter()
            .chain(RUN.iter())
            .map(|a| a.to_string())
            .collect();
        wrapper.push(format!("--name={container}"));
        wrapper.extend(
            [
                "--pid=host",
                "--network=host",
                "--read-only",
                "--volume=/dev/kmsg:/dev/kmsg:ro",
                "--volume=/proc:/host/proc:ro",
                "--volume=/sys:/host/sys:ro",
                "--volume=/:/host/root:ro",
                "--tmpfs=/var/lib/oomwatch",
            ]
            .map(String::from),
        );
        wrapper.extend(security.iter().map(|a| a.to_string()));
        wrapper
    };
    let wrapper = wrapper_for(&image.container, &["--privileged"]);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let exporter = Exporter::start_binary_via(&image.tag, &wrapper, &args);
    let body = scrape_with_every_source(
        &exporter,
        &[
            "processes",
            "vmstat",
            "meminfo",
            "boot",
            "kmsg",
            "exits",
            "cgroups",
        ],
    );
    assert_eq!(
        sample(&body, "oomwatch_exit_events_up", &[]),
        Some(1.0),
        "{}",
        exporter.log()
    );
    assert!(
        body.contains("oomwatch_process_oom_score{"),
        "the host's processes are seen"
    );
    assert_eq!(exporter.request("GET", "/-/ready").status, 200);
    // SIGTERM reaches the exporter through podman's signal proxy: a clean stop.
    assert!(exporter.stop().success());

    // Unprivileged, with the capabilities the README names and the same mounts: the device
    // cgroup keeps /dev/kmsg closed (EPERM), so victims would go unnamed; the rest works.
    let unprivileged = wrapper_for(
        &image.unprivileged,
        &[
            "--cap-drop=all",
            "--cap-add=SYSLOG",
            "--cap-add=NET_ADMIN",
            "--security-opt=no-new-privileges",
        ],
    );
    let unprivileged: Vec<&str> = unprivileged.iter().map(String::as_str).collect();
    let exporter = Exporter::start_binary_via(&image.tag, &unprivileged, &args);
    let body = common::eventually(std::time::Duration::from_secs(20), || {
        let body = exporter.scrape();
        (sample(
            &body,
            "oomwatch_collector_success",
            &[("collector", "processes")],
        ) == Some(1.0))
        .then_some(body)
    })
    .unwrap_or_else(|| panic!("no scrape:\n{}", exporter.log()));
    assert_eq!(
        sample(&body, "oomwatch_kmsg_up", &[]),
        Some(0.0),
        "an unprivileged container opened /dev/kmsg: the DaemonSet need not be privileged\n{}",
        exporter.log()
    );
    assert!(
        exporter.log().contains("Operation not permitted"),
        "{}",
        exporter.log()
    );
    for collector in ["processes", "vmstat", "meminfo", "boot", "exits", "cgroups"] {
        assert_eq!(
            sample(
                &body,
                "oomwatch_collector_success",
                &[("collector", collector)]
            ),
            Some(1.0),
            "collector {collector}:\n{}",
            exporter.log()
        );
    }
    assert!(exporter.stop().success());
}
