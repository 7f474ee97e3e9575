//! The shape of `src/`: the module graph has no cycle, and no file imports from a layer
//! above its own. Layers, bottom to top, are the table `LAYERS` below (docs/architecture.md
//! draws them). The check reads the source as text, with no tool beyond this test:
//! every `use` tree (`crate::`, `super::`, `self::`, and `oomwatch::` in main.rs) and
//! every inline `crate::a::b` path is resolved to the file that defines it; a name a
//! `mod.rs` re-exports (`pub use child::Name`) resolves to the child that defines it, and
//! a `mod.rs` re-exporting its own children is not an edge back to them. Test modules
//! (`#[cfg(test)]`) are left out: what tests import does not tie the shipped code.
//!
//! It also prints the figures the structure is judged by: cycles, imports that point up,
//! files over 500 lines and functions over 80 lines (printed, not asserted: a table or a
//! match can be clearer whole).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layers, bottom to top; a file's layer is the longest prefix of its path (from `src/`)
/// in this table. A file may import from its own layer and the layers below.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "leaves",
        &[
            "roots.rs",
            "clock.rs",
            "units.rs",
            "limits.rs",
            "capacity.rs",
            "sync.rs",
            "atomic_file.rs",
            "state_dir.rs",
            "duration.rs",
            "exit_reason.rs",
            "logging.rs",
            "yaml_nesting.rs",
            "terminal_text.rs",
        ],
    ),
    (
        "readers and pure parsers",
        &[
            "procfs/",
            "cgroupfs.rs",
            "dbus.rs",
            "reboot/",
            "kmsg/",
            "scratch_cgroup.rs",
        ],
    ),
    ("groups", &["groups/"]),
    ("events", &["events/"]),
    ("kills and exits", &["kills/", "exits/"]),
    ("state and snapshot", &["state.rs", "snapshot.rs"]),
    ("collectors", &["collector/"]),
    (
        "scan, metrics, incident",
        &["scan.rs", "metrics/", "incident/"],
    ),
    ("server", &["server/"]),
    ("cli", &["cli.rs"]),
    ("config", &["config.rs"]),
    ("commands", &["commands/"]),
    ("app", &["app.rs"]),
    ("main", &["main.rs", "lib.rs"]),
];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// One source file: its path from `src/`, its module path, and its code without
/// comments, string literals and test modules.
struct SourceFile {
    rel: String,
    module: Vec<String>,
    is_mod_rs: bool,
    code: String,
    lines: usize,
}

fn module_of(rel: &str) -> Vec<String> {
    let stem = rel.trim_end_matches(".rs");
    let mut parts: Vec<String> = stem.split('/').map(str::to_owned).collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

fn read_sources(root: &Path) -> Vec<SourceFile> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path
                    .strip_prefix(root)
                    .expect("under src")
                    .to_string_lossy()
                    .replace('\\', "/");
                let text = std::fs::read_to_string(&path).expect("utf-8 source");
                files.push(SourceFile {
                    module: module_of(&rel),
                    is_mod_rs: rel.ends_with("mod.rs") || rel == "lib.rs",
                    code: without_tests(&strip_comments_and_strings(&text)),
                    lines: text.lines().count(),
                    rel,
                });
            }
        }
    }
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    files
}

/// Replaces comments and the contents of string and char literals with spaces (lines
/// kept), so that text inside them is never taken for a path or a brace.
fn strip_comments_and_strings(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let blank = |c: u8| if c == b'\n' { b'\n' } else { b' ' };
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if b[i] == b'r' && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#')) {
            // A raw string: r"…", r#"…"#.
            let start = i;
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') || (start > 0 && is_ident(b[start - 1])) {
                out.push(b[i]);
                i += 1;
                continue;
            }
            out.resize(out.len() + (j + 1 - i), b' ');
            i = j + 1;
            let closing: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            while i < b.len() && !b[i..].starts_with(&closing) {
                out.push(blank(b[i]));
                i += 1;
            }
            out.resize(out.len() + closing.len().min(b.len() - i), b' ');
            i += closing.len();
        } else if b[i] == b'"' {
            out.push(b' ');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    out.push(b' ');
                    out.push(blank(b[i + 1]));
                    i += 2;
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
            out.push(b' ');
            i += 1;
        } else if b[i] == b'\'' && char_literal_len(&b[i..]).is_some() {
            let len = char_literal_len(&b[i..]).unwrap_or(1);
            out.resize(out.len() + len, b' ');
            i += len;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The length of a char literal at the start of `b` (`'x'`, `'\n'`, `'\u{1F}'`), or None
/// for a lifetime.
fn char_literal_len(b: &[u8]) -> Option<usize> {
    if b.get(1) == Some(&b'\\') {
        let end = b[2..].iter().position(|&c| c == b'\'')?;
        return Some(end + 3);
    }
    let ch_len = std::str::from_utf8(&b[1..b.len().min(5)])
        .ok()
        .or_else(|| {
            (1..=4)
                .rev()
                .find_map(|n| std::str::from_utf8(b.get(1..1 + n)?).ok())
        })?
        .chars()
        .next()?
        .len_utf8();
    (b.get(1 + ch_len) == Some(&b'\'')).then_some(ch_len + 2)
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Blanks every item under `#[cfg(test)]` (the attribute, then the item to its closing
/// brace or semicolon).
fn without_tests(code: &str) -> String {
    let mut out = code.as_bytes().to_vec();
    let marker = b"#[cfg(test)]";
    let mut from = 0;
    while let Some(at) = find(&out[from..], marker).map(|p| p + from) {
        let mut i = at + marker.len();
        let mut depth = 0i32;
        while i < out.len() {
            match out[i] {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                }
                b';' if depth == 0 => {
                    i += 1;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        for c in &mut out[at..i.min(code.len())] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
        from = i.min(out.len());
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A path one file names, and whether it is a `pub use` (a re-export).
struct Named {
    path: Vec<String>,
    reexport: bool,
}

/// Every path a file names: each `use` tree expanded, and each inline `crate::…` path.
fn named_paths(file: &SourceFile) -> Vec<Named> {
    let code = &file.code;
    let bytes = code.as_bytes();
    let mut named = Vec::new();
    let mut in_use = vec![false; bytes.len()];
    let mut i = 0;
    while let Some(at) = find(&bytes[i..], b"use ").map(|p| p + i) {
        i = at + 4;
        let before = code[..at].trim_end();
        let starts_statement = at == 0
            || !is_ident(bytes[at - 1])
                && (before.is_empty()
                    || before.ends_with(';')
                    || before.ends_with('{')
                    || before.ends_with('}')
                    || before.ends_with(']')
                    || before.ends_with("pub")
                    || before.ends_with(')'));
        if !starts_statement {
            continue;
        }
        let Some(end) = code[at..].find(';').map(|p| p + at) else {
            break;
        };
        let reexport = before.ends_with("pub") || before.ends_with(')') && before.contains("pub(");
        let tree = normalize_use_tree(&code[at + 4..end]);
        for path in expand_use_tree(&tree) {
            named.push(Named { path, reexport });
        }
        in_use[at..end].iter_mut().for_each(|f| *f = true);
        i = end;
    }
    // Inline paths: `crate::a::b`, outside use statements.
    let mut i = 0;
    while let Some(at) = find(&bytes[i..], b"crate::").map(|p| p + i) {
        i = at + 7;
        if in_use[at] || (at > 0 && is_ident(bytes[at - 1])) {
            continue;
        }
        let mut end = at;
        while end < bytes.len() && (is_ident(bytes[end]) || bytes[end] == b':') {
            end += 1;
        }
        let path: Vec<String> = code[at..end]
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        named.push(Named {
            path,
            reexport: false,
        });
    }
    named
}

/// A use tree with single spaces only where they separate words (`e as f`).
fn normalize_use_tree(tree: &str) -> String {
    let words: Vec<&str> = tree.split_whitespace().collect();
    let mut out = String::new();
    for (i, word) in words.iter().enumerate() {
        let joins = |c: char| matches!(c, ':' | '{' | '}' | ',');
        if i > 0 && !out.ends_with(joins) && !word.starts_with(joins) {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// `a::{b, c::{d, e as f}}` -> [a::b, a::c::d, a::c::e].
fn expand_use_tree(tree: &str) -> Vec<Vec<String>> {
    fn split_top(list: &str) -> Vec<&str> {
        let mut parts = Vec::new();
        let (mut depth, mut start) = (0, 0);
        for (i, c) in list.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(&list[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&list[start..]);
        parts.into_iter().filter(|p| !p.is_empty()).collect()
    }
    fn walk(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
        let tree = tree.trim_start_matches("::");
        if let Some(open) = tree.find('{') {
            let mut base = prefix.to_vec();
            base.extend(
                tree[..open]
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            for part in split_top(inner) {
                walk(&base, part, out);
            }
        } else {
            let tree = tree.split(" as ").next().unwrap_or(tree);
            let mut path = prefix.to_vec();
            path.extend(
                tree.split("::")
                    .filter(|s| !s.is_empty() && *s != "self")
                    .map(str::to_owned),
            );
            out.push(path);
        }
    }
    let mut out = Vec::new();
    walk(&[], tree, &mut out);
    out
}

/// The crate's modules: module path -> file, and each mod.rs's re-exports (name -> child).
struct Crate {
    modules: BTreeMap<Vec<String>, usize>,
    reexports: BTreeMap<(Vec<String>, String), Vec<String>>,
}

impl Crate {
    fn new(files: &[SourceFile]) -> Self {
        let modules = files
            .iter()
            .enumerate()
            .filter(|(_, f)| f.rel != "main.rs")
            .map(|(i, f)| (f.module.clone(), i))
            .collect();
        let mut reexports = BTreeMap::new();
        for file in files.iter().filter(|f| f.is_mod_rs) {
            for named in named_paths(file).into_iter().filter(|n| n.reexport) {
                let Some(absolute) = absolute(file, &named.path) else {
                    continue;
                };
                if let Some(name) = absolute.last() {
                    reexports.insert((file.module.clone(), name.clone()), absolute.clone());
                }
            }
        }
        Self { modules, reexports }
    }

    /// The file that defines what `path` (absolute, without `crate`) names.
    fn resolve(&self, path: &[String]) -> Option<usize> {
        let mut prefix = path.len();
        while prefix > 0 && !self.modules.contains_key(&path[..prefix]) {
            prefix -= 1;
        }
        if prefix == 0 && !self.modules.contains_key(&path[..0]) {
            return None;
        }
        let module = path[..prefix].to_vec();
        if let Some(name) = path.get(prefix) {
            if let Some(target) = self.reexports.get(&(module.clone(), name.clone())) {
                if target.as_slice() != path {
                    return self.resolve(target);
                }
            }
        }
        self.modules.get(&module).copied()
    }
}

/// `path` as seen from `file`, made absolute (without the leading `crate`); None for a
/// path outside the crate (std, dependencies).
fn absolute(file: &SourceFile, path: &[String]) -> Option<Vec<String>> {
    let first = path.first()?.as_str();
    let mut base = match first {
        "crate" | "oomwatch" => Vec::new(),
        "super" | "self" => {
            let mut base = file.module.clone();
            let mut rest = path;
            while let Some(head) = rest.first() {
                match head.as_str() {
                    "super" => {
                        base.pop();
                    }
                    "self" => {}
                    _ => break,
                }
                rest = &rest[1..];
            }
            base.extend(rest.iter().cloned());
            return Some(base);
        }
        _ => {
            // A child module named bare (`use instances::Row` in a mod.rs).
            let mut child = file.module.clone();
            child.push(first.to_owned());
            return Some(child)
                .filter(|_| file.is_mod_rs && is_child_decl(file, first))
                .map(|mut child| {
                    child.extend(path[1..].iter().cloned());
                    child
                });
        }
    };
    base.extend(path[1..].iter().cloned());
    Some(base)
}

fn is_child_decl(file: &SourceFile, name: &str) -> bool {
    file.code
        .lines()
        .map(str::trim)
        .any(|l| l == format!("mod {name};") || l == format!("pub mod {name};"))
}

/// The import graph: file -> files it imports (by index), with the names that tie them.
fn graph(files: &[SourceFile]) -> BTreeMap<usize, BTreeMap<usize, BTreeSet<String>>> {
    let krate = Crate::new(files);
    let mut edges: BTreeMap<usize, BTreeMap<usize, BTreeSet<String>>> = BTreeMap::new();
    for (from, file) in files.iter().enumerate() {
        for named in named_paths(file) {
            let Some(path) = absolute(file, &named.path) else {
                continue;
            };
            let Some(to) = krate.resolve(&path) else {
                continue;
            };
            let descendant = files[to].module.starts_with(&file.module);
            if to == from || (file.is_mod_rs && descendant && named.reexport) {
                continue;
            }
            edges
                .entry(from)
                .or_default()
                .entry(to)
                .or_default()
                .insert(path.join("::"));
        }
    }
    edges
}

fn layer_of(rel: &str) -> Option<(usize, &'static str)> {
    LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, (name, prefixes))| prefixes.iter().map(move |p| (i, *name, *p)))
        .filter(|(_, _, p)| rel == *p || (p.ends_with('/') && rel.starts_with(p)))
        .max_by_key(|(_, _, p)| p.len())
        .map(|(i, name, _)| (i, name))
}

/// Strongly connected components with more than one file (Tarjan).
fn cycles(n: usize, edges: &BTreeMap<usize, BTreeMap<usize, BTreeSet<String>>>) -> Vec<Vec<usize>> {
    struct Tarjan<'a> {
        edges: &'a BTreeMap<usize, BTreeMap<usize, BTreeSet<String>>>,
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        found: Vec<Vec<usize>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, v: usize) {
            self.index[v] = Some(self.next);
            self.low[v] = self.next;
            self.next += 1;
            self.stack.push(v);
            self.on_stack[v] = true;
            let targets: Vec<usize> = self
                .edges
                .get(&v)
                .map(|m| m.keys().copied().collect())
                .unwrap_or_default();
            for w in targets {
                match self.index[w] {
                    None => {
                        self.visit(w);
                        self.low[v] = self.low[v].min(self.low[w]);
                    }
                    Some(iw) if self.on_stack[w] => self.low[v] = self.low[v].min(iw),
                    _ => {}
                }
            }
            if Some(self.low[v]) == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    self.found.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        edges,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in 0..n {
        if t.index[v].is_none() {
            t.visit(v);
        }
    }
    t.found
}

/// Functions longer than `max` lines in shipped code, as (lines, file, name).
fn long_functions(files: &[SourceFile], max: usize) -> Vec<(usize, String, String)> {
    let mut long = Vec::new();
    for file in files {
        let lines: Vec<&str> = file.code.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i].trim_start();
            let is_fn = line
                .split_whitespace()
                .take_while(|w| !w.starts_with("fn"))
                .all(|w| {
                    matches!(w, "pub" | "const" | "async" | "unsafe" | "extern")
                        || w.starts_with("pub(")
                })
                && line.split_whitespace().any(|w| w == "fn");
            if !is_fn {
                i += 1;
                continue;
            }
            let name = line
                .split("fn ")
                .nth(1)
                .unwrap_or("")
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .next()
                .unwrap_or("")
                .to_owned();
            let (mut depth, mut started, mut j) = (0i32, false, i);
            while j < lines.len() {
                let l = lines[j];
                depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
                started |= l.contains('{');
                if (started && depth <= 0) || (!started && l.trim_end().ends_with(';')) {
                    break;
                }
                j += 1;
            }
            if started && j + 1 - i > max {
                long.push((j + 1 - i, file.rel.clone(), name));
            }
            // Nested functions are measured on their own too.
            i += 1;
        }
    }
    long.sort_by(|a, b| b.cmp(a));
    long
}

#[test]
fn the_module_graph_has_no_cycle_and_points_down() {
    let sources = read_sources(&src_dir());
    let files: &[SourceFile] = &sources;
    let edges = graph(files);
    let unplaced: Vec<&str> = files
        .iter()
        .filter(|f| layer_of(&f.rel).is_none())
        .map(|f| f.rel.as_str())
        .collect();
    let mut up = Vec::new();
    for (&from, targets) in &edges {
        let Some((from_layer, from_name)) = layer_of(&files[from].rel) else {
            continue;
        };
        for (&to, names) in targets {
            let Some((to_layer, to_name)) = layer_of(&files[to].rel) else {
                continue;
            };
            if to_layer > from_layer {
                up.push(format!(
                    "{} ({from_name}) -> {} ({to_name}): {}",
                    files[from].rel,
                    files[to].rel,
                    names.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    let loops = cycles(files.len(), &edges);
    let described: Vec<String> = loops
        .iter()
        .map(|component| {
            let set: BTreeSet<usize> = component.iter().copied().collect();
            let ties: Vec<String> = component
                .iter()
                .flat_map(|&from| {
                    let set = &set;
                    edges[&from]
                        .iter()
                        .filter(move |(to, _)| set.contains(to))
                        .map(move |(&to, names)| {
                            format!(
                                "  {} -> {}: {}",
                                files[from].rel,
                                files[to].rel,
                                names.iter().cloned().collect::<Vec<_>>().join(", ")
                            )
                        })
                })
                .collect();
            format!("a cycle of {} files:\n{}", component.len(), ties.join("\n"))
        })
        .collect();
    let big: Vec<String> = files
        .iter()
        .filter(|f| f.lines > 500)
        .map(|f| format!("{} ({} lines)", f.rel, f.lines))
        .collect();
    let long = long_functions(files, 80);
    println!(
        "src/: {} files, {} import edges; cycles {}, up-pointing imports {}, files over 500 lines {}, functions over 80 lines {}",
        files.len(),
        edges.values().map(BTreeMap::len).sum::<usize>(),
        loops.len(),
        up.len(),
        big.len(),
        long.len()
    );
    for f in &big {
        println!("  file over 500 lines: {f}");
    }
    for (lines, file, name) in &long {
        println!("  function over 80 lines: {file} {name} ({lines})");
    }
    let mut problems = Vec::new();
    if !unplaced.is_empty() {
        problems.push(format!(
            "files in no layer (add them to LAYERS and docs/architecture.md): {unplaced:?}"
        ));
    }
    problems.extend(described);
    if !up.is_empty() {
        problems.push(format!("imports that point up a layer:\n{}", up.join("\n")));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Sanity: the checker sees the crate's real edges (a parser that found nothing would
    // pass everything).
    assert!(edges.values().map(BTreeMap::len).sum::<usize>() > 100);
}

#[test]
fn the_checker_finds_a_cycle_and_an_upward_import() {
    let dir = tempfile::tempdir().expect("temp");
    let src = dir.path();
    std::fs::create_dir_all(src.join("groups")).expect("dir");
    std::fs::write(src.join("lib.rs"), "pub mod groups;\npub mod state;\n").expect("lib");
    std::fs::write(
        src.join("groups/mod.rs"),
        "//! x\npub mod table;\npub use table::Table;\n",
    )
    .expect("mod");
    // groups/table.rs -> state.rs (up), state.rs -> groups::Table (re-exported) = a cycle.
    std::fs::write(
        src.join("groups/table.rs"),
        "use crate::state::{Store, other::{A, Base as C}};\n// use crate::nothing;\nconst S: &str = \"crate::nothing\";\npub struct Table;\n#[cfg(test)]\nmod tests { use crate::cli::X; }\n",
    )
    .expect("table");
    std::fs::write(
        src.join("state.rs"),
        "pub struct Store;\nfn f() -> crate::groups::Table { crate::groups::Table }\n",
    )
    .expect("state");
    let files = read_sources(src);
    let edges = graph(&files);
    let index = |rel: &str| files.iter().position(|f| f.rel == rel).expect(rel);
    let (table, state, module) = (
        index("groups/table.rs"),
        index("state.rs"),
        index("groups/mod.rs"),
    );
    assert!(edges[&table].contains_key(&state));
    assert!(edges[&state].contains_key(&table), "through the re-export");
    assert!(!edges.get(&module).is_some_and(|m| m.contains_key(&table)));
    assert_eq!(
        edges[&table].len(),
        1,
        "comments, strings and tests are not edges"
    );
    assert_eq!(cycles(files.len(), &edges).len(), 1);
    let (up_from, _) = layer_of("groups/table.rs").expect("layer");
    let (up_to, _) = layer_of("state.rs").expect("layer");
    assert!(up_to > up_from, "groups -> state points up");
}
