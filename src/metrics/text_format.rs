//! The Prometheus text format 0.0.4, for clients that do not ask for OpenMetrics: a
//! rewrite of the OpenMetrics exposition (counter families named by their samples, no
//! `# UNIT` or `# EOF`). Pure.

/// Rewrites an OpenMetrics exposition from `render` into the Prometheus text format 0.0.4:
/// counter families take their sample name (`_total`), and `# UNIT` and `# EOF` go.
/// Samples and label escaping are the same in both formats.
pub fn openmetrics_to_text(openmetrics: &str) -> String {
    let mut text = String::with_capacity(openmetrics.len());
    let mut counters: Vec<&str> = Vec::new();
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.strip_suffix(" counter") {
                counters.push(name);
                text.push_str("# TYPE ");
                text.push_str(name);
                text.push_str("_total counter\n");
                continue;
            }
        }
        text.push_str(line);
        text.push('\n');
    }
    // HELP comes before TYPE in each family: rename the counters' HELP lines too.
    if counters.is_empty() {
        return text;
    }
    let mut renamed = String::with_capacity(text.len() + 8 * counters.len());
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            if counters.contains(&name) {
                renamed.push_str("# HELP ");
                renamed.push_str(name);
                renamed.push_str("_total");
                renamed.push_str(&rest[name.len()..]);
                renamed.push('\n');
                continue;
            }
        }
        renamed.push_str(line);
        renamed.push('\n');
    }
    renamed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format_names_counters_by_their_samples() {
        let om = "# HELP a_total_x x\n# HELP c Kills.\n# TYPE c counter\nc_total 3\n\
# HELP g_bytes Size.\n# TYPE g_bytes gauge\n# UNIT g_bytes bytes\ng_bytes{l=\"v\"} 1\n# EOF\n";
        assert_eq!(
            openmetrics_to_text(om),
            "# HELP a_total_x x\n# HELP c_total Kills.\n# TYPE c_total counter\nc_total 3\n\
# HELP g_bytes Size.\n# TYPE g_bytes gauge\ng_bytes{l=\"v\"} 1\n"
        );
    }
}
