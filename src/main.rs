//! The `oomwatch` binary: parse flags, validate them into a `Config`, set up logging, run.
//! Exit codes: 0 after a clean stop, 1 when running fails, 2 for a bad flag or config;
//! subcommands (`oomwatch scan`) say their own.

// No unwrap() or expect() in shipped code: every failure is a typed error or a counted,
// logged event. Tests may use them.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::process::ExitCode;

use clap::Parser;

use oomwatch::cli::{Cli, Command};
use oomwatch::config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(command) = cli.command {
        return match command {
            Command::Scan { files, format } => {
                ExitCode::from(oomwatch::commands::scan_log::run(&files, format))
            }
            Command::Drill(args) => ExitCode::from(oomwatch::commands::drill::run(&args)),
            Command::Events(args) => ExitCode::from(oomwatch::commands::events::run(&args)),
            Command::Why(args) => ExitCode::from(oomwatch::commands::why::run(&args)),
            Command::DrillVictim { max_bytes } => {
                ExitCode::from(oomwatch::commands::drill::victim(max_bytes))
            }
        };
    }
    let config = match Config::from_cli(&cli.serve) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("oomwatch: {e}");
            return ExitCode::from(2);
        }
    };
    oomwatch::logging::init(config.log_level, config.log_format);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        revision = env!("OOMWATCH_REVISION"),
        "starting oomwatch"
    );
    // Found while the configuration was read, before there was a logger to tell.
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    match oomwatch::app::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "oomwatch stopped");
            ExitCode::from(e.exit_code())
        }
    }
}
