//! Raw command-line flags, spelled as the official exporters spell them (`--web.*`,
//! `--path.*`, `--collector.<name>`). Nothing is validated here beyond what clap checks;
//! `config::Config::from_cli` turns these into the validated configuration.
//!
//! The `--collector.<name>` / `--no-collector.<name>` pairs are generated from the one
//! collector table (`collector::COLLECTORS`), so a new collector gets its flags for free.

use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Args, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::collector::COLLECTORS;
use crate::logging::{LogFormat, LogLevel};

const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("OOMWATCH_REVISION"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "oomwatch",
    version = VERSION,
    about = "Prometheus exporter: which process died, why (OOM kill, reboot, crash), and what will die next.",
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Find the OOM kills in kernel log text (dmesg, dmesg -T, syslog, journalctl, kmsg;
    /// gzip too) and print each once, and kernel panics on OOM. Exit 0 with kills or panics
    /// found, 1 with none, 2 when an input could not be read.
    Scan {
        /// Files to read; standard input when none.
        files: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ScanFormat::Table)]
        format: ScanFormat,
    },
    /// Make a real, contained OOM kill in a scratch memory cgroup, and check that the
    /// kernel killed it and (with --exporter.url) that oomwatch counted it; print the alert
    /// rule the kill fires. Needs root or a delegated cgroup. Exit 0 when every check
    /// passed, 1 when one failed, 2 when the drill could not run.
    Drill(DrillArgs),
    /// List the event log (OOM kills, restarts, exits, reboots) from the state directory;
    /// the exporter need not be running. Times are UTC.
    Events(EventsArgs),
    /// Why did it vanish? The latest deaths of a service (a group, a command name, or a
    /// pid) with their cause, its restarts, and the OOM risk of its live instances, from
    /// the state directory and /proc; the exporter need not be running. Exit 0 when the
    /// name is known, 1 when not, 2 when the state directory cannot be read.
    Why(WhyArgs),
    /// The drill's victim (started by `oomwatch drill` inside the scratch cgroup).
    #[command(hide = true)]
    DrillVictim {
        #[arg(long = "max-bytes")]
        max_bytes: u64,
    },
}

/// `oomwatch drill`. The exporter's address, TLS and basic auth are given by flags, or by
/// a client config file in Prometheus's format (`--exporter.http-config.file`, the file
/// promtool's `--http.config.file` takes); flags override the file. The old spellings
/// (`--limit-mib`, `--exporter`, `--timeout`) are hidden aliases, kept for one release.
#[derive(Debug, Clone, Args)]
pub struct DrillArgs {
    /// Memory limit of the scratch cgroup, in MiB.
    #[arg(
        long = "cgroup.limit-mib",
        alias = "limit-mib",
        value_name = "MIB",
        default_value_t = 64,
        value_parser = clap::value_parser!(u64).range(8..=4096)
    )]
    pub limit_mib: u64,

    /// The oomwatch to check: its metrics URL, http:// or https://, e.g.
    /// https://127.0.0.1:9721/metrics. Without it only the kernel's side is checked.
    #[arg(long = "exporter.url", alias = "exporter", value_name = "URL")]
    pub exporter_url: Option<String>,

    /// How long to wait, after the kill, for the exporter to count it.
    #[arg(
        long = "exporter.timeout",
        alias = "timeout",
        value_name = "DURATION",
        default_value = "30s"
    )]
    pub exporter_timeout: String,

    /// HTTP client config file for --exporter.url, in Prometheus's format: `basic_auth`
    /// (username, password or password_file) and `tls_config` (ca_file, cert_file, key_file,
    /// server_name, insecure_skip_verify); paths are relative to the file.
    #[arg(long = "exporter.http-config.file", value_name = "FILE")]
    pub http_config_file: Option<PathBuf>,

    /// CA certificates (PEM) to verify an https exporter's certificate with [default: the
    /// system's bundle, /etc/ssl/certs/ca-certificates.crt].
    #[arg(long = "exporter.tls.ca-file", value_name = "FILE")]
    pub tls_ca_file: Option<PathBuf>,

    /// Do not verify the https exporter's certificate (a test setup's self-signed one).
    #[arg(long = "exporter.tls.insecure-skip-verify")]
    pub tls_insecure_skip_verify: bool,

    /// Basic auth user name sent to the exporter.
    #[arg(long = "exporter.basic-auth.username", value_name = "USER")]
    pub basic_auth_username: Option<String>,

    /// File whose content (surrounding whitespace trimmed) is the basic auth password.
    #[arg(long = "exporter.basic-auth.password-file", value_name = "FILE")]
    pub basic_auth_password_file: Option<PathBuf>,
}

/// What `--state.dir` is, for the exporter and for the commands that read it.
const SERVE_STATE_DIR: &str =
    "Directory for the state file (state.json) and the event log (events.jsonl)";
const READ_STATE_DIR: &str =
    "The exporter's state directory, which holds the event log (events.jsonl) it reads";

/// `--state.dir`'s help with its default as a path: it depends on who runs oomwatch, so
/// the path shown is the one this user gets.
fn state_dir_help(what: &str) -> String {
    format!("{what} [default: {}]", default_state_dir_shown())
}

/// The default of `--state.dir` for whoever runs this, as `config::default_state_dir`
/// decides it (a unit test holds the two together; the cli layer may not import config).
fn default_state_dir_shown() -> String {
    if rustix::process::geteuid().is_root() {
        return "/var/lib/oomwatch".to_owned();
    }
    match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("oomwatch").display().to_string(),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home)
                .join(".local/state/oomwatch")
                .display()
                .to_string(),
            None => "none: set --state.dir (neither HOME nor XDG_STATE_HOME is set)".to_owned(),
        },
    }
}

/// `oomwatch scan --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScanFormat {
    /// A readable table.
    Table,
    /// One JSON object per line per kill.
    Json,
}

/// `oomwatch events --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// A readable table, oldest first.
    Table,
    /// One JSON object per line, as in the event log.
    Json,
}

/// `oomwatch events`.
#[derive(Debug, Clone, Args)]
pub struct EventsArgs {
    /// Only events since then: a duration back from now (90s, 15m, 1h, 7d) or seconds
    /// since the epoch.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only events until then (same forms as --since).
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// Only the events of this group (host events such as reboots have none).
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Only these types, comma-separated: oom_kill, userspace_kill, restart, exit, reboot,
    /// burst.
    #[arg(long = "type", value_name = "TYPES")]
    pub types: Option<String>,
    /// Only the newest N.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
    #[arg(long = "state.dir", value_name = "DIR", help = state_dir_help(READ_STATE_DIR))]
    pub state_dir: Option<PathBuf>,
}

/// `oomwatch why`.
#[derive(Debug, Clone, Args)]
pub struct WhyArgs {
    /// A group (nginx.service, or nginx), a command name, or a pid.
    pub target: String,
    #[arg(long = "state.dir", value_name = "DIR", help = state_dir_help(READ_STATE_DIR))]
    pub state_dir: Option<PathBuf>,
    /// YAML file of named groups, as given to the exporter.
    #[arg(long = "config.file", value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    #[command(flatten)]
    pub paths: PathArgs,
    /// Most deaths and restarts listed.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub deaths: usize,
}

/// Where the host's file systems are mounted (`--path.*`), for the exporter and for
/// `oomwatch why`: one declaration, so both read the same flags.
#[derive(Debug, Clone, Args)]
pub struct PathArgs {
    /// procfs mount point.
    #[arg(long = "path.procfs", value_name = "DIR", default_value = "/proc")]
    pub procfs: PathBuf,

    /// sysfs mount point (cgroups are read under `<sysfs>/fs/cgroup`).
    #[arg(long = "path.sysfs", value_name = "DIR", default_value = "/sys")]
    pub sysfs: PathBuf,

    /// Root filesystem of the host (for /var/log/wtmp, wtmpdb and the kubelet's
    /// directories, which name pod containers).
    #[arg(long = "path.rootfs", value_name = "DIR", default_value = "/")]
    pub rootfs: PathBuf,
}

impl PathArgs {
    /// The roots these flags name.
    pub fn roots(&self) -> crate::roots::Roots {
        crate::roots::Roots::new(&self.procfs, &self.sysfs, &self.rootfs)
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on for the web interface and telemetry; repeat for several.
    /// `:9721` listens on every interface.
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = ":9721"
    )]
    pub web_listen_address: Vec<String>,

    /// Path under which to expose metrics.
    #[arg(
        long = "web.telemetry-path",
        value_name = "PATH",
        default_value = "/metrics"
    )]
    pub web_telemetry_path: String,

    /// Most requests served at once, scrapes, page views (/) and API calls
    /// (/api/v1/events) together; more get 503. 0 means no limit.
    #[arg(long = "web.max-requests", value_name = "N", default_value_t = 40)]
    pub web_max_requests: usize,

    /// Web config file (exporter-toolkit format): TLS, client certificates, basic auth,
    /// response headers, rate limit. Certificates are re-read when they change.
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,

    #[command(flatten)]
    pub paths: PathArgs,

    /// The kernel log device, or a file of kmsg records (read from its start, then followed).
    #[arg(long = "path.kmsg", value_name = "FILE", default_value = "/dev/kmsg")]
    pub path_kmsg: PathBuf,

    #[arg(long = "state.dir", value_name = "DIR", help = state_dir_help(SERVE_STATE_DIR))]
    pub state_dir: Option<PathBuf>,

    /// Accept a --state.dir owned by another user or writable by group or others (or under
    /// such a directory without the sticky bit), which is refused by default as sshd's
    /// StrictModes does; its files are still opened without following links
    #[arg(long = "state.dir.allow-insecure")]
    pub state_dir_allow_insecure: bool,

    /// How often oomwatch records its last sign of life in the state file (the downtime of
    /// an unexpected reboot is measured from it).
    #[arg(
        long = "state.heartbeat-interval",
        value_name = "DURATION",
        default_value = "15s"
    )]
    pub state_heartbeat_interval: String,

    /// Most events of each kind (OOM kills, userspace killers' kills with them, reboots,
    /// restarts, exits) kept in the event log in --state.dir, each kind with its own budget
    /// so that exits never push out a kill; clean exits (code 0) are the first exits
    /// dropped.
    #[arg(long = "events.max", value_name = "N", default_value_t = 5000)]
    pub events_max: usize,

    /// How long an OOM victim (group, comm, constraint) keeps its series after its latest
    /// kill; at most 4096 victims are kept whatever this is.
    #[arg(
        long = "oom.victims-retention",
        value_name = "DURATION",
        default_value = "7d"
    )]
    pub oom_victims_retention: String,

    /// YAML file of named groups (see docs/configuration.md).
    #[arg(long = "config.file", value_name = "FILE")]
    pub config_file: Option<PathBuf>,

    /// How many processes with the highest oom_score get per-process series.
    #[arg(long = "processes.top", value_name = "K", default_value_t = 10)]
    pub processes_top: usize,

    /// How many processes with the most resident memory get per-process series of their
    /// own (what is eating memory, where oom_scores tie); 0 for none.
    #[arg(long = "processes.top-rss", value_name = "N", default_value_t = 10)]
    pub processes_top_rss: usize,

    /// Most processes held open between scans (one descriptor each, on their
    /// oom_score_adj), which makes a scan of them about 3x cheaper; never more than the
    /// open-file limit leaves after 5,120 for connections and the rest; 0 holds none.
    #[arg(
        long = "processes.max-pinned",
        value_name = "N",
        default_value_t = 32768
    )]
    pub processes_max_pinned: u64,

    /// Most automatic groups; processes beyond fold into the group `other`.
    #[arg(long = "groups.max", value_name = "N", default_value_t = 200)]
    pub groups_max: usize,

    /// How long an automatic group with no process keeps its series.
    #[arg(
        long = "groups.retention",
        value_name = "DURATION",
        default_value = "1h"
    )]
    pub groups_retention: String,

    /// An automatic group gets series once one of its instances has lived this long, died
    /// abnormally or restarted; until then it is tracked without series, and forgotten as
    /// soon as it is empty.
    #[arg(
        long = "groups.min-age",
        value_name = "DURATION",
        default_value = "30s"
    )]
    pub groups_min_age: String,

    /// A new instance after an abnormal end (OOM kill, kill, crash, non-zero exit) is a
    /// restart whatever the old one's age; after an end whose cause is unknown, only when
    /// the old instance lived this long (and for groups with `restarts: every`, after a
    /// clean end too).
    #[arg(
        long = "restarts.min-age",
        value_name = "DURATION",
        default_value = "30s"
    )]
    pub restarts_min_age: String,

    /// Only log messages with this severity or above.
    #[arg(long = "log.level", value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,

    /// Output format of log messages.
    #[arg(long = "log.format", value_enum, default_value_t = LogFormat::Logfmt)]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub collectors: CollectorFlags,
}

/// `--collector.<name>`, `--no-collector.<name>` and `--collector.disable-defaults`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectorFlags {
    /// Collectors switched on or off by a flag, with the switch.
    pub explicit: Vec<(&'static str, bool)>,
    pub disable_defaults: bool,
}

const DISABLE_DEFAULTS: &str = "collector.disable-defaults";

impl FromArgMatches for CollectorFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = Self::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        self.disable_defaults |= matches.get_flag(DISABLE_DEFAULTS);
        for spec in COLLECTORS {
            let on = format!("collector.{}", spec.name);
            let off = format!("no-collector.{}", spec.name);
            if matches.get_flag(&on) {
                self.explicit.push((spec.name, true));
            } else if matches.get_flag(&off) {
                self.explicit.push((spec.name, false));
            }
        }
        Ok(())
    }
}

impl Args for CollectorFlags {
    fn augment_args(mut cmd: clap::Command) -> clap::Command {
        cmd = cmd.arg(
            Arg::new(DISABLE_DEFAULTS)
                .long(DISABLE_DEFAULTS)
                .action(ArgAction::SetTrue)
                .help("Disable every collector not enabled by a --collector.<name> flag"),
        );
        for spec in COLLECTORS {
            let on = format!("collector.{}", spec.name);
            let off = format!("no-collector.{}", spec.name);
            let default = if spec.enabled_by_default { "on" } else { "off" };
            cmd = cmd
                .arg(
                    Arg::new(on.clone())
                        .long(on.clone())
                        .action(ArgAction::SetTrue)
                        .overrides_with(off.clone())
                        .help(format!(
                            "Enable the {} collector: {} [default: {default}]",
                            spec.name, spec.help
                        )),
                )
                .arg(
                    Arg::new(off.clone())
                        .long(off)
                        .action(ArgAction::SetTrue)
                        .overrides_with(on)
                        .help(format!("Disable the {} collector", spec.name)),
                );
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exporter_style_flags_parse() {
        let cli = Cli::try_parse_from([
            "oomwatch",
            "--web.listen-address=127.0.0.1:0",
            "--path.procfs",
            "/host/proc",
            "--no-collector.pressure",
            "--collector.cgroups",
            "--log.format=json",
        ])
        .expect("parses");
        assert_eq!(cli.serve.web_listen_address, ["127.0.0.1:0"]);
        assert_eq!(cli.serve.paths.procfs, PathBuf::from("/host/proc"));
        assert_eq!(
            cli.serve.collectors.explicit,
            [("pressure", false), ("cgroups", true)]
        );
        assert_eq!(cli.serve.log_format, LogFormat::Json);
    }

    #[test]
    fn unknown_flags_are_usage_errors() {
        let err = Cli::try_parse_from(["oomwatch", "--collector.nope"]).expect_err("unknown");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn incident_commands_parse() {
        let cli = Cli::try_parse_from([
            "oomwatch", "events", "--since", "1h", "--group", "db", "--format", "json",
        ])
        .expect("parses");
        match cli.command {
            Some(Command::Events(args)) => {
                assert_eq!(args.since.as_deref(), Some("1h"));
                assert_eq!(args.group.as_deref(), Some("db"));
                assert_eq!(args.format, ListFormat::Json);
            }
            other => panic!("not events: {other:?}"),
        }
        let cli =
            Cli::try_parse_from(["oomwatch", "why", "1234", "--state.dir", "/s"]).expect("parses");
        assert!(matches!(cli.command, Some(Command::Why(args)) if args.target == "1234"));
    }

    #[test]
    fn drill_flags_are_dotted_and_the_old_spellings_still_parse_hidden() {
        use clap::CommandFactory;
        let new = Cli::try_parse_from([
            "oomwatch",
            "drill",
            "--cgroup.limit-mib=32",
            "--exporter.url=https://h:9721/metrics",
            "--exporter.timeout=5s",
        ])
        .expect("dotted flags");
        let old = Cli::try_parse_from([
            "oomwatch",
            "drill",
            "--limit-mib=32",
            "--exporter=https://h:9721/metrics",
            "--timeout=5s",
        ])
        .expect("old spellings");
        for cli in [new, old] {
            match cli.command {
                Some(Command::Drill(args)) => {
                    assert_eq!(args.limit_mib, 32);
                    assert_eq!(args.exporter_url.as_deref(), Some("https://h:9721/metrics"));
                    assert_eq!(args.exporter_timeout, "5s");
                }
                other => panic!("not drill: {other:?}"),
            }
        }
        let mut cli = Cli::command();
        let help = cli
            .find_subcommand_mut("drill")
            .expect("drill")
            .render_long_help()
            .to_string();
        assert!(help.contains("--exporter.url"), "{help}");
        for old in ["--limit-mib", "--exporter ", "--timeout"] {
            assert!(!help.contains(old), "{old} shown in:\n{help}");
        }
    }

    #[test]
    fn state_dir_help_shows_the_default_path_this_user_gets() {
        use clap::CommandFactory;
        let path = crate::config::default_state_dir().expect("a default");
        assert_eq!(default_state_dir_shown(), path.display().to_string());
        let mut cli = Cli::command();
        let serve = cli.render_long_help().to_string();
        assert!(serve.contains("event log"), "{serve}");
        for sub in ["events", "why"] {
            let help = cli
                .find_subcommand_mut(sub)
                .expect(sub)
                .render_long_help()
                .to_string();
            let shown = format!("[default: {}]", path.display());
            assert!(help.contains(&shown), "{sub}: {shown} in\n{help}");
            assert!(!help.contains("as the exporter's"), "{help}");
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
