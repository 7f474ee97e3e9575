//! Named groups from `--config.file`: each rule matches one field of a process (comm,
//! cmdline or cgroup path) with a regex and names the group, optionally from the regex's
//! captures (`$1`, `${name}`). The first rule that matches wins. Compiled once at start;
//! matching is pure and never reads /proc.

use std::sync::Arc;

use regex::Regex;

use super::kubernetes::KubeCgroup;
use super::naming::{auto_group_with, NameSource};
use super::pods::PodNames;

/// The process field a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleField {
    Comm,
    Cmdline,
    Cgroup,
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct GroupRule {
    /// The group name, with `$1` / `${name}` standing for captures of `regex`.
    pub name_template: String,
    pub field: RuleField,
    pub regex: Regex,
    /// `restarts: every`: every re-start of the group is a restart, clean ends included.
    pub every_restart: bool,
}

impl GroupRule {
    /// A group name with no capture reference: it exists even while no process matches.
    pub fn fixed_name(&self) -> Option<&str> {
        (!self.name_template.contains('$')).then_some(self.name_template.as_str())
    }
}

/// The rules of the config file, in order; and the node's Kubernetes names, which the
/// automatic names of pod containers are made of when no rule matches.
#[derive(Debug, Clone, Default)]
pub struct GroupRules {
    rules: Vec<GroupRule>,
    pods: Option<Arc<PodNames>>,
}

/// What a process offers to the rules.
#[derive(Debug, Clone, Copy)]
pub struct ProcessFields<'a> {
    pub comm: &'a str,
    /// Only read when some rule needs it.
    pub cmdline: Option<&'a str>,
    pub cgroup: Option<&'a str>,
}

impl GroupRules {
    pub fn new(rules: Vec<GroupRule>) -> Self {
        Self { rules, pods: None }
    }

    /// The same rules, naming pod containers from `pods` (the kubelet's directories).
    pub fn with_pod_names(self, pods: Arc<PodNames>) -> Self {
        Self {
            pods: Some(pods),
            ..self
        }
    }

    /// `namespace/pod/container` (or `namespace/pod`) of a kubepods cgroup, when known.
    pub fn pod_name(&self, kube: &KubeCgroup<'_>) -> Option<String> {
        self.pods.as_ref()?.name(kube)
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// True when a rule matches on the command line, which must then be read.
    pub fn needs_cmdline(&self) -> bool {
        self.rules.iter().any(|r| r.field == RuleField::Cmdline)
    }

    /// The groups that exist even with no process in them.
    pub fn fixed_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().filter_map(GroupRule::fixed_name)
    }

    /// The groups that exist even with no process in them, with whether each counts every
    /// re-start as a restart.
    pub fn fixed_groups(&self) -> impl Iterator<Item = (&str, bool)> {
        self.rules
            .iter()
            .filter_map(|rule| Some((rule.fixed_name()?, rule.every_restart)))
    }

    /// The group of the first rule that matches, or None when no rule does.
    pub fn classify(&self, process: ProcessFields<'_>) -> Option<String> {
        self.rules.iter().find_map(|rule| {
            let haystack = match rule.field {
                RuleField::Comm => Some(process.comm),
                RuleField::Cmdline => process.cmdline,
                RuleField::Cgroup => process.cgroup,
            }?;
            let captures = rule.regex.captures(haystack)?;
            let mut name = String::new();
            captures.expand(&rule.name_template, &mut name);
            // A template whose captures were all empty would name nothing: use it as written.
            Some(if name.is_empty() {
                rule.name_template.clone()
            } else {
                name
            })
        })
    }
}

/// The group a process belongs to before the cap on automatic groups: the first rule of
/// the config file that matches, else the zero-config name; and where the name came from.
pub fn group_name(rules: &GroupRules, process: ProcessFields<'_>) -> (String, NameSource) {
    match rules.classify(process) {
        Some(name) => (name, NameSource::Rule),
        None => auto_group_with(process.cgroup, process.comm, |kube| rules.pod_name(kube)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, field: RuleField, regex: &str) -> GroupRule {
        GroupRule {
            every_restart: false,
            name_template: name.into(),
            field,
            regex: Regex::new(regex).expect("regex"),
        }
    }

    fn fields<'a>(comm: &'a str, cmdline: &'a str) -> ProcessFields<'a> {
        ProcessFields {
            comm,
            cmdline: Some(cmdline),
            cgroup: Some("/system.slice/app.service"),
        }
    }

    #[test]
    fn first_match_wins_and_captures_fill_the_name() {
        let rules = GroupRules::new(vec![
            rule("mysql", RuleField::Comm, "^mysqld$"),
            rule("java-$1", RuleField::Cmdline, r"-jar\s+(?:\S*/)?(\S+)\.jar"),
            rule("${unit}", RuleField::Cgroup, r"/(?P<unit>[^/]+)\.service$"),
        ]);
        assert!(rules.needs_cmdline());
        assert_eq!(rules.fixed_names().collect::<Vec<_>>(), ["mysql"]);
        assert_eq!(
            rules.classify(fields("mysqld", "mysqld")).as_deref(),
            Some("mysql")
        );
        assert_eq!(
            rules
                .classify(fields("java", "java -Xmx1g -jar /opt/cms.jar"))
                .as_deref(),
            Some("java-cms")
        );
        assert_eq!(
            rules.classify(fields("python3", "python3 x.py")).as_deref(),
            Some("app")
        );
        let none = ProcessFields {
            comm: "x",
            cmdline: None,
            cgroup: None,
        };
        assert_eq!(rules.classify(none), None);
    }
}
