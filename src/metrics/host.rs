//! The host's series: the kernel's OOM kill count, memory, swap, pressure, the boot and
//! the reboots before it. Draws from the snapshot only.

use super::family::Family;
use crate::snapshot::Snapshot;

/// The host: OOM kills counted by the kernel, memory and swap, memory pressure.
pub(super) fn host(f: &mut Family<'_, '_>, s: &Snapshot) -> Result<(), std::fmt::Error> {
    f.counter(
        "oomwatch_vmstat_oom_kills_total",
        "OOM kills since boot, from /proc/vmstat oom_kill: the ground truth count.",
        s.vmstat_oom_kills,
    )?;

    let memory = s.memory.as_ref();
    f.gauge(
        "oomwatch_memory_total_bytes",
        "Host memory (MemTotal).",
        memory.map(|m| m.total_bytes),
    )?;
    f.gauge(
        "oomwatch_memory_available_bytes",
        "Memory available for new work without swapping (MemAvailable).",
        memory.and_then(|m| m.available_bytes),
    )?;
    f.gauge(
        "oomwatch_swap_total_bytes",
        "Swap space (SwapTotal).",
        memory.map(|m| m.swap_total_bytes),
    )?;
    f.gauge(
        "oomwatch_swap_free_bytes",
        "Unused swap space (SwapFree).",
        memory.map(|m| m.swap_free_bytes),
    )?;

    let pressure = s.pressure.as_ref();
    f.counter(
        "oomwatch_memory_pressure_waiting_seconds_total",
        "Time at least one task waited on memory (PSI memory some total).",
        pressure.map(|p| p.waiting_seconds),
    )?;
    f.counter(
        "oomwatch_memory_pressure_stalled_seconds_total",
        "Time all non-idle tasks stalled on memory at once (PSI memory full total).",
        pressure.map(|p| p.stalled_seconds),
    )?;
    Ok(())
}

/// The boot, and the reboots the state directory has seen.
pub(super) fn boot(f: &mut Family<'_, '_>, s: &Snapshot) -> Result<(), std::fmt::Error> {
    let boot = s.boot.as_ref();
    f.gauge(
        "oomwatch_boot_time_seconds",
        "Boot time from /proc/stat btime, seconds since the epoch (moves with clock steps; reboots are decided by boot_id).",
        boot.map(|b| b.boot_time_seconds as i64),
    )?;
    f.gauges(
        "oomwatch_boot_info",
        "The current boot, named by its boot_id; always 1.",
        boot.map(|b| ([("boot_id", b.boot_id.as_str())], 1)),
    )?;
    let history = boot.map(|b| &b.history);
    f.counter(
        "oomwatch_boots_total",
        "Boots seen since the state directory was created (decided by boot_id, persisted).",
        history.map(|h| h.boots_total),
    )?;
    f.counter(
        "oomwatch_unexpected_reboots_total",
        "Reboots not preceded by a clean shutdown: crash, power loss, panic, watchdog reset (persisted).",
        history.map(|h| h.unexpected_reboots_total),
    )?;
    let last = history.and_then(|h| h.last_reboot.as_ref());
    f.gauges(
        "oomwatch_last_reboot_unexpected",
        "1 when the last reboot was unexpected, with its cause (no_clean_shutdown, kernel_panic, oops); 0 for clean_shutdown or unknown.",
        last.map(|r| ([("cause", r.cause.as_str())], i64::from(r.unexpected))),
    )?;
    f.gauge(
        "oomwatch_last_downtime_seconds",
        "From the previous boot's last sign of life (oomwatch's heartbeat) to this boot's start.",
        last.and_then(|r| r.downtime_seconds),
    )?;
    Ok(())
}
