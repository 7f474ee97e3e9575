//! The bundled Grafana dashboards (dashboards/*.json) load as they are through provisioning
//! and query only what oomwatch exports: plain JSON without import placeholders, a
//! `datasource` variable that every panel, target, annotation and query variable uses,
//! unique panel ids on the 24-column grid without overlaps, a description and a unit on
//! every panel, only metric names from docs/metrics.md, and every PromQL expression
//! accepted by `promtool check rules` (Debian package `prometheus`). Nothing here runs the
//! queries; `expressions` is the one place that knows where a dashboard keeps them.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::process::Command;

use regex::Regex;
use serde_json::Value;

/// The uid every panel, target, annotation and query variable must use.
const DATASOURCE_UID: &str = "${datasource}";

/// Grid width of a Grafana dashboard.
const GRID_COLUMNS: u64 = 24;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every dashboards/*.json, by file name, parsed.
fn dashboards() -> Vec<(String, Value)> {
    let dir = root().join("dashboards");
    let mut found: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .expect("dashboards/ exists")
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let name = path
                .file_name()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&path).expect("readable dashboard");
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{name} is not valid JSON: {e}"));
            (name, json)
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!found.is_empty(), "no dashboards in {}", dir.display());
    found
}

fn list<'a>(value: &'a Value, what: &str) -> &'a [Value] {
    match value {
        Value::Null => &[],
        Value::Array(items) => items,
        other => panic!("{what} is not a list: {other}"),
    }
}

/// Every panel in layout order, each row followed by the panels it holds (a collapsed
/// row keeps them in its own `panels`; an expanded row has them at the top level).
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in list(&dashboard["panels"], "panels") {
        out.push(panel);
        out.extend(list(&panel["panels"], "a row's panels"));
    }
    out
}

/// Every PromQL expression of a dashboard, in order: the `expr` of each target of each
/// panel (panels inside rows included), then the `expr` of each annotation. They still
/// hold Grafana's variables (`$job`, `$__rate_interval`, ...); see `substitute`.
fn expressions(dashboard: &Value) -> Vec<String> {
    let targets = panels(dashboard)
        .into_iter()
        .flat_map(|panel| list(&panel["targets"], "targets"));
    let annotations = list(&dashboard["annotations"]["list"], "annotations");
    targets
        .chain(annotations)
        .filter_map(|query| query["expr"].as_str())
        .map(str::to_owned)
        .collect()
}

/// The query variables: (name, the series selector inside `label_values(selector, label)`).
fn variable_selectors(dashboard: &Value) -> Vec<(String, String)> {
    list(&dashboard["templating"]["list"], "templating variables")
        .iter()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            let name = v["name"]
                .as_str()
                .expect("a variable has a name")
                .to_owned();
            // Grafana writes the query as a string, or as {"query": "..."} from its editor.
            let query = v["query"]
                .as_str()
                .or_else(|| v["query"]["query"].as_str())
                .unwrap_or_else(|| panic!("variable {name}: no query"));
            let selector = query
                .strip_prefix("label_values(")
                .and_then(|rest| rest.strip_suffix(')'))
                .and_then(|args| args.rsplit_once(','))
                .map(|(selector, _label)| selector.trim().to_owned())
                .unwrap_or_else(|| panic!("variable {name}: not label_values(selector, label)"));
            (name, selector)
        })
        .collect()
}

/// An expression with Grafana's variables replaced by values promtool accepts. An unknown
/// variable fails the test, so that a typo (`$grup`) is caught here, not in Grafana.
fn substitute(expr: &str) -> String {
    let value = |name: &str| match name {
        "job" | "instance" | "group" => ".*",
        "__rate_interval" | "__interval" => "1m",
        "__range" => "1h",
        other => panic!("unknown variable ${other} in {expr}"),
    };
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            braced
                .split_once('}')
                .unwrap_or_else(|| panic!("unclosed ${{ in {expr}"))
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            after.split_at(end)
        };
        out.push_str(value(name));
        rest = tail;
    }
    out.push_str(rest);
    out
}

fn uses_datasource_variable(datasource: &Value) -> bool {
    datasource["type"] == "prometheus" && datasource["uid"] == DATASOURCE_UID
}

fn metric_names(text: &str) -> BTreeSet<String> {
    let name = Regex::new(r"\boomwatch_[a-z0-9_]+").expect("valid regex");
    name.find_iter(text)
        .map(|m| m.as_str().to_owned())
        .collect()
}

#[test]
fn dashboards_are_plain_provisionable_json() {
    let mut uids = HashSet::new();
    for (name, dashboard) in dashboards() {
        for key in ["__inputs", "__requires", "__elements"] {
            assert!(
                dashboard.get(key).is_none(),
                "{name}: has {key} (an export for import)"
            );
        }
        let text = dashboard.to_string();
        assert!(
            !text.contains("${DS_"),
            "{name}: import placeholder ${{DS_...}}"
        );
        let uid = dashboard["uid"].as_str().expect("a uid");
        assert_eq!(
            format!("{uid}.json"),
            name,
            "{name}: uid and file name differ"
        );
        assert!(uids.insert(uid.to_owned()), "{name}: uid {uid} used twice");
        assert!(
            dashboard["id"].is_null(),
            "{name}: id must be null to provision"
        );
        assert_eq!(dashboard["refresh"], "30s", "{name}: refresh");
        assert!(
            list(&dashboard["tags"], "tags").contains(&Value::from("oomwatch")),
            "{name}: no tag oomwatch"
        );
        let schema = dashboard["schemaVersion"].as_u64().expect("schemaVersion");
        assert!(
            schema >= 36,
            "{name}: schemaVersion {schema} predates datasource refs"
        );

        let variables = list(&dashboard["templating"]["list"], "templating variables");
        let datasource = variables
            .iter()
            .find(|v| v["name"] == "datasource")
            .unwrap_or_else(|| panic!("{name}: no variable named datasource"));
        assert_eq!(datasource["type"], "datasource", "{name}: datasource type");
        assert_eq!(
            datasource["query"], "prometheus",
            "{name}: datasource query"
        );
        for variable in variables.iter().filter(|v| v["type"] == "query") {
            assert!(
                uses_datasource_variable(&variable["datasource"]),
                "{name}: variable {} does not use {DATASOURCE_UID}",
                variable["name"]
            );
        }
    }
}

#[test]
fn panels_have_unique_ids_a_free_grid_cell_a_description_a_unit_and_the_datasource() {
    for (name, dashboard) in dashboards() {
        let mut ids = HashSet::new();
        for panel in panels(&dashboard) {
            let title = panel["title"].as_str().unwrap_or_default();
            let kind = panel["type"].as_str().expect("a panel has a type");
            let id = panel["id"].as_u64().expect("a panel has a numeric id");
            assert!(ids.insert(id), "{name}: panel id {id} ({title}) used twice");
            let grid = &panel["gridPos"];
            let [x, _y, w, h] = ["x", "y", "w", "h"].map(|key| {
                grid[key]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{name}: {title}: no gridPos.{key}"))
            });
            assert!(
                w >= 1 && h >= 1 && x + w <= GRID_COLUMNS,
                "{name}: {title}: gridPos {grid} is not inside {GRID_COLUMNS} columns"
            );
            if kind == "row" {
                continue;
            }
            let description = panel["description"].as_str().unwrap_or_default();
            assert!(
                !description.trim().is_empty(),
                "{name}: {title}: no description"
            );
            if kind == "text" {
                continue;
            }
            let unit = panel["fieldConfig"]["defaults"]["unit"].as_str();
            assert!(
                unit.is_some_and(|u| !u.is_empty()),
                "{name}: {title}: no fieldConfig.defaults.unit"
            );
            assert!(
                uses_datasource_variable(&panel["datasource"]),
                "{name}: {title}: panel datasource is not {DATASOURCE_UID}"
            );
            let targets = list(&panel["targets"], "targets");
            assert!(!targets.is_empty(), "{name}: {title}: no targets");
            for target in targets {
                let expr = target["expr"].as_str().unwrap_or_default();
                assert!(
                    !expr.trim().is_empty(),
                    "{name}: {title}: a target without expr"
                );
                assert!(
                    uses_datasource_variable(&target["datasource"]),
                    "{name}: {title}: target datasource is not {DATASOURCE_UID}"
                );
            }
        }
    }
}

#[test]
fn panels_do_not_overlap() {
    fn cell(panel: &Value) -> [u64; 4] {
        ["x", "y", "w", "h"].map(|k| panel["gridPos"][k].as_u64().expect("gridPos"))
    }
    for (name, dashboard) in dashboards() {
        // The top level is one layout; a collapsed row's own panels are another, placed
        // below the row when it is expanded.
        let top = list(&dashboard["panels"], "panels");
        let layouts = std::iter::once(top).chain(top.iter().map(|p| list(&p["panels"], "row")));
        for layout in layouts {
            for (i, a) in layout.iter().enumerate() {
                for b in &layout[i + 1..] {
                    let ([ax, ay, aw, ah], [bx, by, bw, bh]) = (cell(a), cell(b));
                    let overlap = ax < bx + bw && bx < ax + aw && ay < by + bh && by < ay + ah;
                    assert!(
                        !overlap,
                        "{name}: {} {} and {} {} overlap",
                        a["title"], a["gridPos"], b["title"], b["gridPos"]
                    );
                }
            }
        }
    }
}

#[test]
fn annotations_use_the_datasource_variable_and_name_the_instance() {
    for (name, dashboard) in dashboards() {
        let annotations = list(&dashboard["annotations"]["list"], "annotations");
        assert!(!annotations.is_empty(), "{name}: no annotations");
        for annotation in annotations {
            let title = &annotation["name"];
            assert!(
                uses_datasource_variable(&annotation["datasource"]),
                "{name}: annotation {title} does not use {DATASOURCE_UID}"
            );
            let expr = annotation["expr"].as_str().unwrap_or_default();
            assert!(
                !expr.trim().is_empty(),
                "{name}: annotation {title}: no expr"
            );
            // btime moves when NTP steps the clock: a reboot is a new boot_id
            // (oomwatch_boots_total), never a change of oomwatch_boot_time_seconds.
            assert!(
                !expr.contains("oomwatch_boot_time_seconds"),
                "{name}: annotation {title} decides on btime"
            );
            for key in ["titleFormat", "textFormat"] {
                let format = annotation[key].as_str().unwrap_or_default();
                assert!(
                    format.contains("{{instance}}"),
                    "{name}: annotation {title}: {key} does not name the instance"
                );
            }
        }
    }
}

#[test]
fn every_metric_is_in_the_catalogue() {
    let catalogue = metric_names(
        &std::fs::read_to_string(root().join("docs/metrics.md")).expect("docs/metrics.md"),
    );
    assert!(!catalogue.is_empty(), "no metric names in docs/metrics.md");
    for (name, dashboard) in dashboards() {
        let queries = expressions(&dashboard)
            .into_iter()
            .chain(variable_selectors(&dashboard).into_iter().map(|(_, s)| s));
        for query in queries {
            for metric in metric_names(&query) {
                assert!(
                    catalogue.contains(&metric),
                    "{name}: {metric} is not in docs/metrics.md (in {query})"
                );
            }
        }
    }
}

#[test]
fn promtool_parses_every_expression() {
    let mut rules = String::from("groups:\n  - name: dashboard-check\n    rules:\n");
    let mut count = 0;
    for (name, dashboard) in dashboards() {
        let exprs = expressions(&dashboard);
        assert!(!exprs.is_empty(), "{name}: no expressions");
        let selectors = variable_selectors(&dashboard).into_iter().map(|(_, s)| s);
        for expr in exprs.into_iter().chain(selectors) {
            let promql = substitute(&expr);
            // A JSON string is a valid YAML double-quoted scalar.
            let quoted = serde_json::to_string(&promql).expect("a string serialises");
            rules.push_str(&format!(
                "      # {name}\n      - record: dashboard:check:{count}\n        expr: {quoted}\n"
            ));
            count += 1;
        }
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("dashboards.rules.yml");
    std::fs::write(&path, &rules).expect("write the rules file");
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!("promtool must be installed (scripts/test.sh installs it): {e}")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check rules failed:\n{text}\n{rules}"
    );
    assert!(
        text.contains(&format!("SUCCESS: {count} rules found")),
        "{text}"
    );
}

#[test]
fn substitute_replaces_every_grafana_variable() {
    assert_eq!(
        substitute(
            r#"increase(x{job=~"$job",group=~"${group}"}[$__rate_interval]) offset $__range"#
        ),
        r#"increase(x{job=~".*",group=~".*"}[1m]) offset 1h"#
    );
}
