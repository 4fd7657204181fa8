//! What the benchmark binaries share: this process's memory figures from
//! `/proc/self/status` (Linux; 0 elsewhere).
#![allow(dead_code, reason = "each benchmark binary uses some of these")]

/// A `kB` figure of `/proc/self/status` (`VmHWM`, `VmRSS`), 0 if absent.
pub fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resets the resident high-water mark (`VmHWM`); returns the resident set
/// now, in KiB.
pub fn reset_peak() -> u64 {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    proc_status_kib("VmRSS")
}

/// The rise of the resident high-water mark over `base_kib`, in MiB.
pub fn peak_growth_mib(base_kib: u64) -> f64 {
    proc_status_kib("VmHWM").saturating_sub(base_kib) as f64 / 1024.0
}
