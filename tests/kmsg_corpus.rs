//! The corpus of real kernel-log excerpts (`tests/fixtures/kmsg/corpus/`, sources in its
//! `SOURCES.md`): the real `oomwatch scan --format json` on every excerpt must give exactly
//! the kills a careful reader finds in it (`expected.json`), field by field.
//!
//! On a mismatch the test does not stop at the first one: it prints every mismatch
//! (file, row, field, expected, got) and a score (excerpts read exactly, in all and per
//! category and kernel generation), then fails. Nothing here parses kernel text itself.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value};

const CATEGORIES: [(&str, &str); 7] = [
    ("a", "any line prefix"),
    ("b", "summary-only kills"),
    ("c", "Kill process N (x) sharing same memory"),
    ("d", "split and continued records"),
    ("e", "dmesg -r <N> priority prefixes"),
    ("f", "plain forms of every kernel generation"),
    ("g", "userspace killers in the journal"),
];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kmsg/corpus")
}

/// One excerpt's entry in `expected.json`.
struct Excerpt {
    file: String,
    category: String,
    generation: String,
    kills: Vec<Map<String, Value>>,
}

fn load_expected() -> Vec<Excerpt> {
    let path = corpus_dir().join("expected.json");
    let text = std::fs::read_to_string(&path).expect("expected.json");
    let doc: Value = serde_json::from_str(&text).expect("expected.json is JSON");
    doc["excerpts"]
        .as_array()
        .expect("an `excerpts` array")
        .iter()
        .map(|e| Excerpt {
            file: e["file"].as_str().expect("file").to_owned(),
            category: e["category"].as_str().expect("category").to_owned(),
            generation: e["generation"].as_str().expect("generation").to_owned(),
            kills: e["kills"]
                .as_array()
                .expect("kills")
                .iter()
                .map(|k| k.as_object().expect("a kill is an object").clone())
                .collect(),
        })
        .collect()
}

/// The rows `oomwatch scan --format json FILE` prints, one JSON object per line.
fn scan(file: &Path) -> Result<Vec<Map<String, Value>>, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_oomwatch"))
        .args(["scan", "--format", "json"])
        .arg(file)
        .output()
        .map_err(|e| format!("cannot run oomwatch: {e}"))?;
    // 0: rows found, 1: none found; anything else is an error of its own.
    if !matches!(out.status.code(), Some(0 | 1)) {
        return Err(format!(
            "exit status {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .map_err(|e| format!("not JSON ({e}): {l}"))?
                .as_object()
                .cloned()
                .ok_or_else(|| format!("not a JSON object: {l}"))
        })
        .collect()
}

/// What identifies a row when the expected and the printed rows are paired up.
fn identity(row: &Map<String, Value>) -> (Value, Value, Value, Value) {
    let get = |k: &str| row.get(k).cloned().unwrap_or(Value::Null);
    let cgroup = if get("pid").is_null() {
        get("task_memcg")
    } else {
        Value::Null
    };
    (get("kind"), get("pid"), get("comm"), cgroup)
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(120).collect::<String>())
    } else {
        s
    }
}

fn describe(row: &Map<String, Value>) -> String {
    let (kind, pid, comm, cgroup) = identity(row);
    let mut s = format!("{} pid={} comm={}", kind, pid, comm);
    if !cgroup.is_null() {
        s.push_str(&format!(" cgroup={}", short(&cgroup)));
    }
    s
}

/// Every mismatch between the expected kills of one excerpt and the printed rows. Rows
/// are paired in order by identity (kind, pid, comm; the cgroup for a userspace kill
/// without a pid), so one missing or extra row is reported once, not as a cascade; each
/// pair is then compared on every field the expectation lists (null included).
fn compare(expected: &[Map<String, Value>], got: &[Map<String, Value>]) -> Vec<String> {
    let mut out = Vec::new();
    let mut used = vec![false; got.len()];
    let mut next = 0;
    for (i, want) in expected.iter().enumerate() {
        let id = identity(want);
        let found = (next..got.len())
            .chain(0..next)
            .find(|&j| !used[j] && identity(&got[j]) == id);
        let Some(j) = found else {
            out.push(format!("kill #{i}: missing ({})", describe(want)));
            continue;
        };
        used[j] = true;
        next = j + 1;
        for (field, want_value) in want {
            let got_value = got[j].get(field).unwrap_or(&Value::Null);
            if got_value != want_value {
                out.push(format!(
                    "kill #{i} ({}): {field}: expected {} got {}",
                    describe(want),
                    short(want_value),
                    short(got_value)
                ));
            }
        }
    }
    for (j, row) in got.iter().enumerate() {
        if !used[j] {
            out.push(format!("extra row #{j}: {}", describe(row)));
        }
    }
    out
}

#[test]
fn every_corpus_excerpt_is_read_exactly() {
    let excerpts = load_expected();
    let dir = corpus_dir();

    // The corpus and its expectations list the same files.
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".log"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = excerpts.iter().map(|e| e.file.clone()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "corpus files and expected.json entries differ"
    );
    assert!(
        excerpts.len() >= 110,
        "the corpus has {} excerpts",
        excerpts.len()
    );

    let mut report = Vec::new();
    let mut by_category: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut by_generation: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut failing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut exact = 0;
    for ex in &excerpts {
        let problems = match scan(&dir.join(&ex.file)) {
            Ok(rows) => compare(&ex.kills, &rows),
            Err(e) => vec![e],
        };
        let ok = problems.is_empty();
        for (map, key) in [
            (&mut by_category, &ex.category),
            (&mut by_generation, &ex.generation),
        ] {
            let entry = map.entry(key.clone()).or_default();
            entry.1 += 1;
            if ok {
                entry.0 += 1;
            }
        }
        if ok {
            exact += 1;
        } else {
            failing
                .entry(ex.category.clone())
                .or_default()
                .push(ex.file.clone());
            for p in problems {
                report.push(format!("{}: {p}", ex.file));
            }
        }
    }

    let pct = |a: usize, b: usize| {
        if b == 0 {
            0.0
        } else {
            100.0 * a as f64 / b as f64
        }
    };
    let mut score = format!(
        "kmsg corpus score: {exact}/{} excerpts read exactly ({:.0}%)\n",
        excerpts.len(),
        pct(exact, excerpts.len())
    );
    for (cat, name) in CATEGORIES {
        let (ok, n) = by_category.get(cat).copied().unwrap_or_default();
        score.push_str(&format!("  ({cat}) {name}: {ok}/{n}\n"));
    }
    score.push_str("  by kernel generation:");
    for (generation, (ok, n)) in &by_generation {
        score.push_str(&format!(" {generation} {ok}/{n};"));
    }
    score.push('\n');
    for (cat, files) in &failing {
        score.push_str(&format!("  failing ({cat}): {}\n", files.join(", ")));
    }

    if !report.is_empty() {
        eprintln!("{} mismatches:", report.len());
        for line in &report {
            eprintln!("  {line}");
        }
    }
    eprintln!("{score}");
    assert!(
        report.is_empty(),
        "{} mismatches in {} of {} excerpts (see above)\n{score}",
        report.len(),
        excerpts.len() - exact,
        excerpts.len()
    );
}
