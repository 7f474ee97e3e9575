//! Build script: stamps the git revision into the binary as `OOMWATCH_REVISION`
//! (`oomwatch --version`, `oomwatch_build_info{revision}`). A build outside a git checkout,
//! or without git, says `unknown`; a packager can set OOMWATCH_REVISION itself.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=OOMWATCH_REVISION");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    let revision = std::env::var("OOMWATCH_REVISION").ok().or_else(|| {
        let out = Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
            .filter(|r| !r.is_empty())
    });
    println!(
        "cargo:rustc-env=OOMWATCH_REVISION={}",
        revision.unwrap_or_else(|| "unknown".into())
    );
}
