//! What the benchmark binaries share: this process's memory figures from
//! `/proc/self/status` (Linux; 0 elsewhere), file sizes, number formatting,
//! settings from the environment and timestamped progress lines.
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

/// The logical size of the files under `path` (recursively), in bytes.
pub fn dir_bytes(path: &std::path::Path) -> u64 {
    walk_files(path, &|meta| meta.len())
}

/// The disk blocks allocated to the files under `path` (recursively), in
/// bytes (`st_blocks` × 512: holes punched in a file do not count).
pub fn allocated_bytes(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    walk_files(path, &|meta| meta.blocks() * 512)
}

fn walk_files(path: &std::path::Path, size: &dyn Fn(&std::fs::Metadata) -> u64) -> u64 {
    let Ok(meta) = std::fs::metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return size(&meta);
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| walk_files(&entry.path(), size))
        .sum()
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (idx, digit) in digits.chars().enumerate() {
        if idx > 0 && (digits.len() - idx).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A number from the environment (`_` allowed as a separator), or `default`.
pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// Prints `what` with the UTC time of day.
pub fn log(what: &str) {
    println!("[{}] {what}", chrono::Utc::now().format("%H:%M:%S"));
}
