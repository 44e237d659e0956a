//! CPU time per node: read from the thread's own clock, and charged to the node whose code
//! used it, also when it ran inline on another node's thread.

use std::time::Duration;

use crate::counts::BatchCounts;

/// The CPU time the calling thread has used so far, where the platform says.
#[cfg(unix)]
pub(crate) fn thread_cpu_time() -> Option<Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` only writes the `timespec` it is given.
    let read = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    (read == 0).then(|| Duration::new(now.tv_sec as u64, now.tv_nsec as u32))
}

thread_local! {
    /// CPU time this thread spent in nodes it ran inline, since the node that owns the
    /// thread began measuring (see [`CpuCharge`]).
    static INLINE_CPU: std::cell::Cell<Duration> = const { std::cell::Cell::new(Duration::ZERO) };
}

/// CPU time on a thread, split between the node that owns it and the nodes it runs inline,
/// so that each is charged its own: a CPU-bound stage running on its source's thread must
/// not look like a source that computes.
pub(crate) struct CpuCharge {
    started: Option<Duration>,
    inline_before: Duration,
}

impl CpuCharge {
    /// The owning node starts measuring its thread.
    pub(crate) fn start() -> Self {
        CpuCharge {
            started: thread_cpu_time(),
            inline_before: INLINE_CPU.get(),
        }
    }

    /// The owning node's share: the thread's CPU time since `start`, less what inline
    /// nodes were charged meanwhile.
    pub(crate) fn own(self) -> Option<Duration> {
        let (started, now) = (self.started?, thread_cpu_time()?);
        let inline = INLINE_CPU.get().saturating_sub(self.inline_before);
        Some(now.saturating_sub(started).saturating_sub(inline))
    }

    /// Charges `cpu` of this thread's time to a node running inline, in its counts (a
    /// chain's pass does so for every node and batch: no shared counter per pass).
    pub(crate) fn inline(counts: &mut BatchCounts, cpu: Duration) {
        counts.cpu += cpu;
        INLINE_CPU.set(INLINE_CPU.get() + cpu);
    }
}

/// The CPU time the calling thread has used so far, where the platform says.
#[cfg(not(unix))]
pub(crate) fn thread_cpu_time() -> Option<Duration> {
    None
}
