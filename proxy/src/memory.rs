//! Giving memory back after bursts (docs/design.md §7). glibc's allocator keeps freed memory in
//! its arenas for reuse, so after a burst of connections (an attack, a crowd of players leaving)
//! the process would keep its high-water resident size while idle. Every [`CHECK_INTERVAL`] the
//! resident size is compared with what the allocator has in use (`mallinfo2`); when the gap (memory
//! resident but free) grew by more than [`TRIM_ABOVE`] since the last trim, the free memory is
//! returned to the kernel (`malloc_trim`, which also releases free pages inside the heap). Other
//! targets do nothing.

use std::time::Duration;

use tracing::debug;

/// How often resident and in-use memory are compared.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// Growth of resident-but-free memory that makes a trim worth its cost, bytes.
pub const TRIM_ABOVE: usize = 16 * 1024 * 1024;

/// Resident bytes and the bytes the allocator has in use (arenas and mmapped blocks), when the
/// platform says.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn usage() -> Option<(usize, usize)> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf and mallinfo2 only read process-wide values; no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
    let info = unsafe { libc::mallinfo2() };
    Some((pages * page, info.uordblks + info.hblkhd))
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn usage() -> Option<(usize, usize)> {
    None
}

/// Returns the allocator's free memory to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim takes the arena locks itself; 0 keeps no extra padding.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

/// When to trim: the gap between resident and in-use bytes (code, stacks, and memory the
/// allocator holds free) is measured after each trim, starting from the first call; a trim is
/// due when the gap has grown by more than [`TRIM_ABOVE`] since.
#[derive(Debug, Default)]
pub struct Trimmer {
    floor: Option<usize>,
}

impl Trimmer {
    /// A trimmer whose floor is the usage now: call it before serving any client, so that no
    /// burst is taken for the floor.
    pub fn at_start() -> Trimmer {
        let mut trimmer = Trimmer::default();
        if let Some((resident, in_use)) = usage() {
            trimmer.should_trim(resident, in_use);
        }
        trimmer
    }

    /// Whether to trim now, given `resident` and `in_use` bytes.
    pub fn should_trim(&mut self, resident: usize, in_use: usize) -> bool {
        let gap = resident.saturating_sub(in_use);
        let floor = self.floor.get_or_insert(gap);
        if gap < *floor {
            *floor = gap;
        }
        gap > *floor + TRIM_ABOVE
    }

    /// Records the usage measured right after a trim: what the trim could not give back is
    /// the new floor.
    pub fn trimmed(&mut self, resident: usize, in_use: usize) {
        self.floor = Some(resident.saturating_sub(in_use));
    }
}

/// Checks every [`CHECK_INTERVAL`] until the task is dropped, starting from `trimmer`
/// ([`Trimmer::at_start`]).
pub async fn release_after_bursts(mut trimmer: Trimmer) {
    loop {
        tokio::time::sleep(CHECK_INTERVAL).await;
        let Some((resident, in_use)) = usage() else {
            return;
        };
        if !trimmer.should_trim(resident, in_use) {
            continue;
        }
        // The walk over the arenas can take milliseconds on a big heap: off the runtime.
        let _ = tokio::task::spawn_blocking(trim).await;
        if let Some((after, in_use)) = usage() {
            trimmer.trimmed(after, in_use);
            debug!(
                before = resident,
                after, in_use, "returned free allocator memory to the kernel"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_when_free_resident_memory_grew() {
        const MIB: usize = 1024 * 1024;
        let mut t = Trimmer::default();
        // The first check sets the floor: 12 MiB of code, stacks and the like.
        assert!(!t.should_trim(22 * MIB, 10 * MIB));
        // Busy: resident grows with use, no trim.
        assert!(!t.should_trim(212 * MIB, 200 * MIB));
        // The burst left: 180 MiB resident but free.
        assert!(t.should_trim(200 * MIB, 20 * MIB));
        // The trim gave back all but 4 MiB; that is the new floor.
        t.trimmed(36 * MIB, 20 * MIB);
        assert!(!t.should_trim(36 * MIB, 20 * MIB));
        assert!(!t.should_trim(40 * MIB, 14 * MIB));
        assert!(t.should_trim(60 * MIB, 14 * MIB));
    }
}
