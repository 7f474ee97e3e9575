//! The PromQL in the shipped Grafana dashboards: every target and annotation expression and
//! every query variable's selector, with Grafana's variables replaced by values a test can
//! run (`.*` for the template variables, one minute for `$__rate_interval` and
//! `$__interval`, an hour for `$__range`).

use std::path::Path;

/// `(dashboard file, title, expression)` for every query in dashboards/*.json.
pub fn dashboard_queries() -> Vec<(String, String, String)> {
    let mut queries = Vec::new();
    for (name, json) in dashboards() {
        collect_panels(&json["panels"], &name, &mut queries);
        for annotation in json["annotations"]["list"].as_array().into_iter().flatten() {
            if let Some(expr) = annotation["expr"].as_str() {
                let title = format!("annotation {}", annotation["name"].as_str().unwrap_or("?"));
                queries.push((name.clone(), title, substitute(expr)));
            }
        }
    }
    queries
}

/// `(dashboard file, variable, label, selector)` for every query variable of
/// dashboards/*.json, `label_values(selector, label)`, the selector's variables substituted.
pub fn dashboard_variables() -> Vec<(String, String, String, String)> {
    let mut variables = Vec::new();
    for (file, json) in dashboards() {
        for variable in json["templating"]["list"].as_array().into_iter().flatten() {
            if variable["type"] != "query" {
                continue;
            }
            let name = variable["name"].as_str().unwrap_or("?").to_owned();
            let query = variable["query"]
                .as_str()
                .or_else(|| variable["query"]["query"].as_str())
                .unwrap_or_default();
            let (selector, label) = query
                .strip_prefix("label_values(")
                .and_then(|rest| rest.strip_suffix(')'))
                .and_then(|args| args.rsplit_once(','))
                .unwrap_or_else(|| panic!("{file}: variable {name}: {query}"));
            variables.push((
                file.clone(),
                name,
                label.trim().to_owned(),
                substitute(selector.trim()),
            ));
        }
    }
    variables
}

/// Every dashboards/*.json by file name, parsed, sorted by name.
fn dashboards() -> Vec<(String, serde_json::Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("dashboards/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let name = file
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let json =
                serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("JSON");
            (name, json)
        })
        .collect()
}

fn collect_panels(panels: &serde_json::Value, file: &str, out: &mut Vec<(String, String, String)>) {
    for panel in panels.as_array().into_iter().flatten() {
        let title = panel["title"].as_str().unwrap_or("?").to_owned();
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                out.push((file.to_owned(), title.clone(), substitute(expr)));
            }
        }
        collect_panels(&panel["panels"], file, out);
    }
}

/// Replaces Grafana's variables with runnable values.
pub fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("${job}", ".*")
        .replace("${instance}", ".*")
        .replace("${group}", ".*")
        .replace("$job", ".*")
        .replace("$instance", ".*")
        .replace("$group", ".*")
}
