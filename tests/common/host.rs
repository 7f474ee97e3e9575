//! A fixture host whose boot can be changed between exporter runs: the fixture /proc
//! and cgroup v2 /sys copied to a temp dir, with the boot_id and btime rewritten per
//! "boot", and a var/log for wtmp. Reboots cannot happen on a test machine; this is how
//! the tests stage them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{fixture, Exporter};

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A fixture host whose boot can be changed between exporter runs.
pub struct Host {
    root: tempfile::TempDir,
}

impl Host {
    pub fn new() -> Self {
        let root = tempfile::tempdir().expect("temp");
        copy_tree(&fixture("host/proc"), &root.path().join("proc"));
        copy_tree(&fixture("host/sys-v2"), &root.path().join("sys"));
        std::fs::create_dir_all(root.path().join("var/log")).expect("mkdir");
        Self { root }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }

    pub fn boot(&self, boot_id: &str, btime: f64) {
        std::fs::write(
            self.path("proc/sys/kernel/random/boot_id"),
            format!("{boot_id}\n"),
        )
        .expect("boot_id");
        let stat = std::fs::read_to_string(self.path("proc/stat")).expect("stat");
        let stat: String = stat
            .lines()
            .map(|l| {
                if l.starts_with("btime ") {
                    format!("btime {}", btime as u64)
                } else {
                    l.to_owned()
                }
            })
            .map(|l| l + "\n")
            .collect();
        std::fs::write(self.path("proc/stat"), stat).expect("stat");
    }

    pub fn start(&self, state: &Path) -> Exporter {
        self.start_with(state, &[])
    }

    /// Starts oomwatch on this host with `extra` flags after the host's own.
    pub fn start_with(&self, state: &Path, extra: &[&str]) -> Exporter {
        let arg = |p: PathBuf| p.to_str().expect("utf-8").to_owned();
        let args = [
            "--path.procfs".to_owned(),
            arg(self.path("proc")),
            "--path.sysfs".to_owned(),
            arg(self.path("sys")),
            "--path.rootfs".to_owned(),
            arg(self.root.path().to_path_buf()),
            "--path.kmsg".to_owned(),
            arg(self.path("no-kmsg")),
            "--state.dir".to_owned(),
            arg(state.to_path_buf()),
            "--state.heartbeat-interval".to_owned(),
            "200ms".to_owned(),
        ];
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        args.extend_from_slice(extra);
        Exporter::start(&args)
    }

    /// wtmp from `utmpdump -r` text records: (type, user, line, time).
    pub fn wtmp(&self, records: &[(u8, &str, &str, f64)]) {
        let text: String = records
            .iter()
            .map(|(kind, user, line, time)| {
                let stamp = super::utmp_time(*time);
                format!("[{kind}] [00000] [~~  ] [{user:<8}] [{line:<12}] [6.1.0-test          ] [0.0.0.0        ] [{stamp}]\n")
            })
            .collect();
        let mut child = Command::new("utmpdump")
            .args(["-r", "-o"])
            .arg(self.path("var/log/wtmp"))
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("utmpdump (util-linux) runs");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write");
        assert!(child.wait().expect("utmpdump").success());
    }
}
