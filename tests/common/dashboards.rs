//! The PromQL in the shipped Grafana dashboards: every target and annotation expression,
//! with Grafana's variables replaced by values a test can run (`.*` for the template
//! variables, one minute for `$__rate_interval` and `$__interval`, an hour for `$__range`).

use std::path::Path;

/// `(dashboard file, title, expression)` for every query in dashboards/*.json.
pub fn dashboard_queries() -> Vec<(String, String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("dashboards/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut queries = Vec::new();
    for file in files {
        let name = file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("JSON");
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
