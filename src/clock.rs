//! The clocks oomwatch reads, in one place: wall-clock seconds since the epoch,
//! seconds since boot (CLOCK_BOOTTIME, suspend included: the clock of /proc/uptime, of
//! process start times and of exit events once shifted), and the conversions between
//! them and CLOCK_MONOTONIC (the clock of kernel log stamps and process events). Owns no
//! state; must not parse or decide anything.

use rustix::time::{clock_gettime, ClockId, Timespec};

/// Wall-clock time now, seconds since the epoch (0 if the clock is before it).
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Seconds since boot now, suspend included (CLOCK_BOOTTIME).
pub fn boottime_now() -> f64 {
    seconds(clock_gettime(ClockId::Boottime))
}

/// Seconds since boot now, suspend excluded (CLOCK_MONOTONIC).
pub fn monotonic_now() -> f64 {
    seconds(clock_gettime(ClockId::Monotonic))
}

/// CLOCK_BOOTTIME minus CLOCK_MONOTONIC now, in nanoseconds: what to add to a monotonic
/// stamp (a process event's) to put it on the boot-time clock.
pub fn boottime_offset_ns() -> i64 {
    nanoseconds(clock_gettime(ClockId::Boottime)) - nanoseconds(clock_gettime(ClockId::Monotonic))
}

/// The wall-clock time of an instant stamped `monotonic_secs` on CLOCK_MONOTONIC: now,
/// minus how long ago that was. A wall clock stepped since boot (NTP syncing late, a
/// restored VM) does not move the instant, as boot time plus the stamp would.
pub fn wall_time_of_monotonic(monotonic_secs: f64) -> f64 {
    unix_now() - (monotonic_now() - monotonic_secs).max(0.0)
}

/// The wall-clock time of an instant `uptime_secs` after boot on CLOCK_BOOTTIME.
pub fn wall_time_of_boottime(uptime_secs: f64) -> f64 {
    unix_now() - (boottime_now() - uptime_secs).max(0.0)
}

fn seconds(t: Timespec) -> f64 {
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

fn nanoseconds(t: Timespec) -> i64 {
    t.tv_sec.saturating_mul(1_000_000_000) + t.tv_nsec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_agree_with_each_other() {
        let now = unix_now();
        assert!(now > 1.6e9, "{now}");
        let monotonic = monotonic_now();
        assert!(boottime_now() >= monotonic);
        assert!(
            boottime_offset_ns() > -1_000_000,
            "equal but for the time between reads"
        );
        let stamp = monotonic_now() - 10.0;
        assert!((wall_time_of_monotonic(stamp) - (now - 10.0)).abs() < 1.0);
        let uptime = boottime_now() - 5.0;
        assert!((wall_time_of_boottime(uptime) - (now - 5.0)).abs() < 1.0);
    }
}
