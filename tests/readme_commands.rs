//! The README's first screen, held to what it promises. `rust-version` in Cargo.toml is the
//! true minimum of the locked tree: the highest rust-version any locked package of the
//! normal and build dependency graph declares (from `cargo metadata --locked --offline`, for
//! this host's platform), and the README names that version.

use std::path::Path;
use std::process::Command;

/// A Rust version as `(major, minor, patch)`; "1.85" is 1.85.0.
fn version(text: &str) -> (u64, u64, u64) {
    let mut parts = text.trim().split('.').map(|p| {
        p.parse::<u64>()
            .unwrap_or_else(|_| panic!("a version: {text:?}"))
    });
    let mut next = || parts.next().unwrap_or(0);
    (next(), next(), next())
}

fn shown((major, minor, patch): (u64, u64, u64)) -> String {
    if patch == 0 {
        format!("{major}.{minor}")
    } else {
        format!("{major}.{minor}.{patch}")
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

fn host_triple() -> String {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_owned()
}

#[test]
fn rust_version_is_the_true_minimum_of_the_locked_tree() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(cargo())
        .args(["metadata", "--locked", "--offline", "--format-version", "1"])
        .args(["--filter-platform", &host_triple()])
        .current_dir(manifest)
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata --locked --offline:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let packages: std::collections::HashMap<&str, &serde_json::Value> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (p["id"].as_str().expect("id"), p))
        .collect();
    let nodes: std::collections::HashMap<&str, &serde_json::Value> = metadata["resolve"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| (n["id"].as_str().expect("id"), n))
        .collect();
    let root = metadata["resolve"]["root"].as_str().expect("root");

    // Walk what a build of the binary compiles: normal and build edges, never dev ones.
    let mut seen = std::collections::BTreeSet::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in nodes[id]["deps"].as_array().expect("deps") {
            let built = dep["dep_kinds"]
                .as_array()
                .expect("dep_kinds")
                .iter()
                .any(|k| k["kind"].as_str() != Some("dev"));
            if built {
                stack.push(dep["pkg"].as_str().expect("pkg"));
            }
        }
    }
    let declared = |id: &str| packages[id]["rust_version"].as_str().map(version);
    let own = declared(root).expect("Cargo.toml declares rust-version");
    let mut needs: Vec<((u64, u64, u64), String)> = seen
        .iter()
        .filter(|id| **id != root)
        .filter_map(|id| {
            let p = packages[id];
            let name = p["name"].as_str().unwrap_or_default();
            let number = p["version"].as_str().unwrap_or_default();
            declared(id).map(|v| (v, format!("{name} {number}")))
        })
        .collect();
    needs.sort();
    let (floor, _) = needs.last().cloned().expect("dependencies");
    let at_floor: Vec<&str> = needs
        .iter()
        .filter(|(v, _)| *v == floor)
        .map(|(_, p)| p.as_str())
        .collect();
    println!(
        "rust-version {} declared; {} locked packages built, the highest declared is {} ({})",
        shown(own),
        seen.len() - 1,
        shown(floor),
        at_floor.join(", ")
    );
    assert!(
        own >= floor,
        "Cargo.toml claims rust-version {} but locked dependencies need {}: {}",
        shown(own),
        shown(floor),
        at_floor.join(", ")
    );
    assert_eq!(
        own,
        floor,
        "Cargo.toml claims rust-version {} but the locked tree needs only {} ({}): lower it \
         to the true minimum (clippy's incompatible_msrv checks our own code against it)",
        shown(own),
        shown(floor),
        at_floor.join(", ")
    );
    let readme = std::fs::read_to_string(manifest.join("README.md")).expect("README");
    assert!(
        readme.contains(&format!("Rust {}", shown(own))),
        "the README names the Rust version it needs (Rust {})",
        shown(own)
    );
}
