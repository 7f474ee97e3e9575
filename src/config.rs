//! The validated configuration: built once from the raw flags and the config file, and the
//! only thing passed onward. Every error names the flag or file to fix; `main` exits 2 on
//! any of them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

use crate::cli::ServeArgs;
use crate::collector::processes::ProcessesSettings;
use crate::collector::COLLECTORS;
use crate::duration::{parse_duration, DurationError};
use crate::groups::pods::PodNames;
use crate::groups::{GroupRule, GroupRules, RuleField, TableSettings};
use crate::logging::{LogFormat, LogLevel};
use crate::roots::Roots;
use crate::server::listen::ListenAddress;
use crate::server::security::{WebConfigError, WebSecurity};
use crate::yaml_nesting::{check_nesting, MAX_YAML_NESTING};

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<ListenAddress>,
    pub telemetry_path: String,
    /// 0: unlimited.
    pub max_requests: usize,
    pub roots: Roots,
    /// `--path.kmsg`.
    pub kmsg_path: PathBuf,
    pub state_dir: PathBuf,
    /// `--state.dir.allow-insecure`.
    pub state_dir_strictness: crate::state_dir::Strictness,
    /// `--state.heartbeat-interval`.
    pub heartbeat_interval: Duration,
    /// `--events.max`.
    pub events_max: usize,
    /// `--oom.victims-retention`.
    pub victims_retention: Duration,
    pub processes: ProcessesSettings,
    /// Enabled collectors, in scan order.
    pub collectors: Vec<&'static str>,
    pub log_level: LogLevel,
    pub log_format: LogFormat,
    /// `--web.config.file`: TLS, basic auth, response headers.
    pub web: WebSecurity,
    /// Found while loading, for `main` to log once logging is up; each names its flag or
    /// file and field.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--web.listen-address {value:?}: {reason}")]
    ListenAddress { value: String, reason: String },
    #[error(
        "--web.telemetry-path {0:?}: must start with `/` and not be `/`, a /-/ or an /api/ path"
    )]
    TelemetryPath(String),
    #[error(transparent)]
    Duration(#[from] DurationError),
    #[error("--processes.top 0: must be at least 1")]
    TopK,
    #[error("--events.max 0: must be at least 1")]
    EventsMax,
    #[error("--state.dir is not set and neither HOME nor XDG_STATE_HOME is: set --state.dir")]
    NoStateDir,
    #[error("--config.file {path}: {reason}")]
    ConfigFile { path: PathBuf, reason: String },
    #[error(transparent)]
    WebConfig(#[from] WebConfigError),
}

impl Config {
    /// Validates the flags and reads the config file they name.
    pub fn from_cli(args: &ServeArgs) -> Result<Self, ConfigError> {
        let listen = listen_addresses(&args.web_listen_address)?;
        let path = &args.web_telemetry_path;
        if !path.starts_with('/')
            || path == "/"
            || path.starts_with("/-/")
            || path.starts_with("/api/")
        {
            return Err(ConfigError::TelemetryPath(path.clone()));
        }
        if args.processes_top == 0 {
            return Err(ConfigError::TopK);
        }
        if args.events_max == 0 {
            return Err(ConfigError::EventsMax);
        }
        let retention = parse_duration("--groups.retention", &args.groups_retention)?;
        let min_age = parse_duration("--restarts.min-age", &args.restarts_min_age)?;
        let promote_after = parse_duration("--groups.min-age", &args.groups_min_age)?;
        let victims_retention =
            parse_duration("--oom.victims-retention", &args.oom_victims_retention)?;
        let heartbeat_interval =
            parse_duration("--state.heartbeat-interval", &args.state_heartbeat_interval)?;
        if heartbeat_interval < Duration::from_millis(100) {
            return Err(ConfigError::Duration(DurationError {
                flag: "--state.heartbeat-interval",
                value: args.state_heartbeat_interval.clone(),
                reason: "must be at least 100ms",
            }));
        }
        let roots = args.paths.roots();
        let rules = match &args.config_file {
            Some(path) => load_group_rules(path)?,
            None => GroupRules::default(),
        }
        .with_pod_names(Arc::new(PodNames::new(&roots)));
        let (web, warnings) = match &args.web_config_file {
            Some(path) => WebSecurity::load(path)?,
            None => (WebSecurity::default(), Vec::new()),
        };
        let state_dir = match &args.state_dir {
            Some(dir) => dir.clone(),
            None => default_state_dir()?,
        };
        Ok(Self {
            listen,
            telemetry_path: path.clone(),
            max_requests: args.web_max_requests,
            roots,
            kmsg_path: args.path_kmsg.clone(),
            state_dir,
            state_dir_strictness: match args.state_dir_allow_insecure {
                true => crate::state_dir::Strictness::AllowInsecure,
                false => crate::state_dir::Strictness::Strict,
            },
            heartbeat_interval,
            events_max: args.events_max,
            victims_retention,
            processes: ProcessesSettings {
                top_k: args.processes_top,
                top_rss: args.processes_top_rss,
                table: TableSettings {
                    max_auto_groups: args.groups_max,
                    retention_secs: retention.as_secs_f64(),
                    promote_after_secs: promote_after.as_secs_f64(),
                    restart_min_age_secs: min_age.as_secs_f64(),
                    clock_ticks: rustix::param::clock_ticks_per_second(),
                },
                rules,
                page_size: rustix::param::page_size() as u64,
                max_pinned: args.processes_max_pinned,
            },
            collectors: enabled_collectors(args),
            log_level: args.log_level,
            log_format: args.log_format,
            web,
            warnings,
        })
    }
}

/// Every `--web.listen-address`, parsed.
fn listen_addresses(values: &[String]) -> Result<Vec<ListenAddress>, ConfigError> {
    values
        .iter()
        .map(|value| {
            ListenAddress::parse(value).map_err(|reason| ConfigError::ListenAddress {
                value: value.to_owned(),
                reason,
            })
        })
        .collect()
}

fn enabled_collectors(args: &ServeArgs) -> Vec<&'static str> {
    let flags = &args.collectors;
    COLLECTORS
        .iter()
        .filter(|spec| {
            let explicit = flags.explicit.iter().rev().find(|(n, _)| *n == spec.name);
            match explicit {
                Some((_, on)) => *on,
                None => spec.enabled_by_default && !flags.disable_defaults,
            }
        })
        .map(|spec| spec.name)
        .collect()
}

/// `--state.dir` when it is not given: `/var/lib/oomwatch` as root, else under
/// `$XDG_STATE_HOME` (or `~/.local/state`).
pub fn default_state_dir() -> Result<PathBuf, ConfigError> {
    if rustix::process::geteuid().is_root() {
        return Ok(PathBuf::from("/var/lib/oomwatch"));
    }
    let base = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .ok_or(ConfigError::NoStateDir)?;
            Path::new(&home).join(".local/state")
        }
    };
    Ok(base.join("oomwatch"))
}

/// The YAML config file (`--config.file`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    groups: Vec<GroupEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupEntry {
    name: String,
    comm: Option<String>,
    cmdline: Option<String>,
    cgroup: Option<String>,
    /// `abnormal` (the default): a new instance is a restart after an abnormal end;
    /// `every`: after any end of an instance that lived `--restarts.min-age`.
    #[serde(default)]
    restarts: RestartsOption,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RestartsOption {
    #[default]
    Abnormal,
    Every,
}

/// Reads and compiles the named groups of the config file.
pub fn load_group_rules(path: &Path) -> Result<GroupRules, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::ConfigFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    parse_group_rules(&text).map_err(|reason| ConfigError::ConfigFile {
        path: path.to_path_buf(),
        reason,
    })
}

/// Compiles the named groups of a config file's text; the error names the entry.
pub fn parse_group_rules(text: &str) -> Result<GroupRules, String> {
    check_nesting(text, MAX_YAML_NESTING).map_err(|e| match &e.field {
        Some(field) => format!("{field}: {e}"),
        None => e.to_string(),
    })?;
    let file: ConfigFile = serde_norway::from_str(text).map_err(|e| e.to_string())?;
    let mut rules = Vec::with_capacity(file.groups.len());
    for (index, entry) in file.groups.into_iter().enumerate() {
        let at = |what: String| format!("groups[{index}] ({:?}): {what}", entry.name);
        if entry.name.trim().is_empty() {
            return Err(at("`name` is empty".into()));
        }
        let fields = [
            (RuleField::Comm, &entry.comm),
            (RuleField::Cmdline, &entry.cmdline),
            (RuleField::Cgroup, &entry.cgroup),
        ];
        let mut given = fields.iter().filter_map(|(f, v)| Some((*f, v.as_deref()?)));
        let (field, pattern) = given
            .next()
            .ok_or_else(|| at("needs one of `comm`, `cmdline` or `cgroup`".into()))?;
        if given.next().is_some() {
            return Err(at(
                "give only one of `comm`, `cmdline` or `cgroup` per group".into(),
            ));
        }
        let regex = Regex::new(pattern).map_err(|e| at(format!("bad regex: {e}")))?;
        rules.push(GroupRule {
            name_template: entry.name.clone(),
            field,
            regex,
            every_restart: matches!(entry.restarts, RestartsOption::Every),
        });
    }
    Ok(GroupRules::new(rules))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> ServeArgs {
        let mut argv = vec!["oomwatch", "--state.dir", "/tmp/x"];
        argv.extend_from_slice(extra);
        crate::cli::Cli::try_parse_from(argv).expect("parses").serve
    }

    #[test]
    fn defaults_are_useful() {
        let config = Config::from_cli(&args(&[])).expect("valid");
        assert_eq!(config.listen, [ListenAddress::AllInterfaces(9721)]);
        assert_eq!(config.telemetry_path, "/metrics");
        assert_eq!(config.processes.top_k, 10);
        assert_eq!(
            config.collectors,
            [
                "vmstat",
                "meminfo",
                "pressure",
                "boot",
                "processes",
                "exits",
                "cgroups",
                "systemd",
                "oomd",
                "kmsg"
            ]
        );
        assert_eq!(config.processes.table.restart_min_age_secs, 30.0);
    }

    #[test]
    fn collector_switches() {
        let config = Config::from_cli(&args(&["--no-collector.pressure"])).expect("valid");
        assert!(!config.collectors.contains(&"pressure"));
        let config = Config::from_cli(&args(&[
            "--collector.disable-defaults",
            "--collector.vmstat",
        ]))
        .expect("valid");
        assert_eq!(config.collectors, ["vmstat"]);
    }

    #[test]
    fn errors_name_the_flag() {
        for (flag, bad) in [
            ("--web.listen-address", "nope"),
            ("--web.listen-address", ":99999"),
            ("--web.telemetry-path", "metrics"),
            ("--web.telemetry-path", "/api/v1/events"),
            ("--groups.retention", "10"),
            ("--restarts.min-age", "5x"),
        ] {
            let err = Config::from_cli(&args(&[flag, bad])).expect_err(bad);
            assert!(err.to_string().starts_with(flag), "{err}");
        }
        let err = Config::from_cli(&args(&["--processes.top", "0"])).expect_err("zero");
        assert!(err.to_string().contains("--processes.top"));
    }

    #[test]
    fn group_rules_take_the_regex_crates_unicode_syntax() {
        use crate::groups::ProcessFields;
        let rules = parse_group_rules(
            "groups:\n  - name: web\n    comm: '(?i)^NGINX$'\n  \
             - name: 'letters-$1'\n    comm: '^(\\p{L}+)-\\p{Greek}$'\n  \
             - name: alphabetic\n    cmdline: '^\\p{Alphabetic}+ \\b{start}x'\n",
        )
        .expect("(?i), \\p{L}, \\p{Greek}, \\p{Alphabetic} and \\b{start} compile");
        let group = |comm: &str, cmdline: Option<&str>| {
            rules.classify(ProcessFields {
                comm,
                cmdline,
                cgroup: None,
            })
        };
        assert_eq!(group("nginx", None).as_deref(), Some("web"));
        assert_eq!(group("NgInX", None).as_deref(), Some("web"));
        assert_eq!(group("zürich-λ", None).as_deref(), Some("letters-zürich"));
        assert_eq!(group("zürich-x", None), None);
        assert_eq!(group("x9-λ", None), None);
        assert_eq!(group("-", Some("Ärger xyz")).as_deref(), Some("alphabetic"));
    }

    #[test]
    fn config_file_rules_and_their_errors() {
        let dir = tempfile::tempdir().expect("temp");
        let path = dir.path().join("oomwatch.yml");
        std::fs::write(
            &path,
            "groups:\n  - name: mysql\n    comm: '^mysqld$'\n  - name: 'java-$1'\n    cmdline: '-jar (\\S+)\\.jar'\n",
        )
        .expect("write");
        let rules = load_group_rules(&path).expect("valid");
        assert_eq!(rules.fixed_names().collect::<Vec<_>>(), ["mysql"]);

        for (content, expected) in [
            ("groups:\n  - name: x\n", "needs one of"),
            (
                "groups:\n  - name: x\n    comm: a\n    cgroup: b\n",
                "only one",
            ),
            ("groups:\n  - name: x\n    comm: '('\n", "bad regex"),
            ("groups:\n  - nme: x\n", "unknown field"),
            ("groups: [", "line 2"),
            (
                "groups:\n  - name: x\n    comm: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n",
                "groups: nested deeper than 64 levels at line 3",
            ),
        ] {
            std::fs::write(&path, content).expect("write");
            let err = load_group_rules(&path).expect_err(content).to_string();
            assert!(err.starts_with("--config.file"), "{err}");
            assert!(err.contains(expected), "{content:?}: {err}");
        }
    }
}
