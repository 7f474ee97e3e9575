//! Logging set-up: `--log.level` and `--log.format` (logfmt, as the official exporters
//! write it, or JSON), to standard error, and the limit that keeps a line an attacker can
//! repeat (a forged kill) from flooding the log. Owns the two flags' values, the logger
//! and the limit; must not decide what is logged.

use clap::ValueEnum;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
/// `--log.level`.
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
/// `--log.format`.
pub enum LogFormat {
    Logfmt,
    Json,
}

/// Installs the global logger. Called once, before anything logs.
pub fn init(level: LogLevel, format: LogFormat) {
    let filter = match level {
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
    };
    let layer = match format {
        LogFormat::Logfmt => tracing_logfmt::builder()
            .with_span_name(false)
            .with_span_path(false)
            .layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    // A second init (tests) keeps the first logger; that is not an error worth reporting.
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init();
}

/// A log line written at most once per interval: the others are counted, and the next
/// line written says how many were not.
#[derive(Debug, Clone)]
pub struct LogLimit {
    interval: std::time::Duration,
    logged_at: Option<std::time::Instant>,
    quiet: u64,
}

impl LogLimit {
    pub const fn new(interval: std::time::Duration) -> Self {
        Self {
            interval,
            logged_at: None,
            quiet: 0,
        }
    }

    /// Some(occurrences not logged since the last line) when this one may be logged;
    /// None when it is to stay quiet (and is counted).
    pub fn admit(&mut self) -> Option<u64> {
        if self
            .logged_at
            .is_some_and(|at| at.elapsed() < self.interval)
        {
            self.quiet += 1;
            return None;
        }
        self.logged_at = Some(std::time::Instant::now());
        Some(std::mem::take(&mut self.quiet))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_interval_with_the_count_of_the_quiet_ones() {
        let mut limit = LogLimit::new(std::time::Duration::from_secs(60));
        assert_eq!(limit.admit(), Some(0));
        assert_eq!(limit.admit(), None);
        assert_eq!(limit.admit(), None);
        let mut open = LogLimit::new(std::time::Duration::ZERO);
        assert_eq!(open.admit(), Some(0));
        assert_eq!(open.admit(), Some(0));
        limit.logged_at = Some(std::time::Instant::now() - std::time::Duration::from_secs(61));
        assert_eq!(limit.admit(), Some(2), "the two quiet ones");
    }
}
