//! Real-time scheduling for the thread that runs the DSP.
//!
//! The pipeline needs about 2 µs of CPU per 5 ms hop, but under normal
//! scheduling on a busy machine a hop can wait several milliseconds for
//! its CPU (the latency harness measured a per-hop maximum of 4.8–5.2 ms
//! from pre-emption, against 0.5 ms with `SCHED_FIFO`; docs/performance.md).
//! The goal is 1 ms, so the monitor's DSP thread asks for
//! `SCHED_FIFO`. The OS grants it to a process with `CAP_SYS_NICE` or an
//! `RLIMIT_RTPRIO` of at least [`DSP_FIFO_PRIORITY`] (docs/monitor.md,
//! "Real-time priority"); otherwise the thread keeps normal scheduling and
//! the caller is told why. The DSP thread sleeps whenever its input ring is
//! empty, so a real-time priority takes the CPU only for the work itself.

/// The `SCHED_FIFO` priority asked for (Linux: 1–99): above every normally
/// scheduled thread (the display, the reader, the recorder), below the
/// kernel's threaded interrupt handlers (50), so that the serial port's
/// interrupt still pre-empts the DSP and no byte is lost to it.
pub const DSP_FIFO_PRIORITY: i32 = 40;

/// How the calling thread is now scheduled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheduling {
    /// `SCHED_FIFO` at this priority.
    RealTime {
        /// The priority granted (1–99).
        priority: i32,
    },
    /// Normal (time-shared) scheduling, and why real time was not granted.
    Normal {
        /// The OS's answer, e.g. "Operation not permitted (os error 1)".
        why: String,
    },
}

impl std::fmt::Display for Scheduling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scheduling::RealTime { priority } => write!(f, "SCHED_FIFO priority {priority}"),
            Scheduling::Normal { why } => write!(f, "normal scheduling ({why})"),
        }
    }
}

/// Asks for `SCHED_FIFO` at [`DSP_FIFO_PRIORITY`] for the calling thread
/// (only: other threads keep theirs, and threads it spawns later inherit
/// it).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn request_real_time_for_this_thread() -> Scheduling {
    let param = libc::sched_param {
        sched_priority: DSP_FIFO_PRIORITY,
    };
    // SAFETY: `param` is plain data that lives across the call; pid 0 is
    // the calling thread.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc == 0 {
        Scheduling::RealTime {
            priority: DSP_FIFO_PRIORITY,
        }
    } else {
        Scheduling::Normal {
            why: std::io::Error::last_os_error().to_string(),
        }
    }
}

/// Real-time scheduling is asked for on Linux only.
#[cfg(not(target_os = "linux"))]
pub fn request_real_time_for_this_thread() -> Scheduling {
    Scheduling::Normal {
        why: "not requested on this OS".into(),
    }
}

/// Pins the calling thread to CPU `cpu` (for measurements that must not
/// migrate); the OS's answer as an error when it refuses.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn pin_this_thread_to(cpu: usize) -> Result<(), String> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(format!("CPU {cpu} out of range"));
    }
    // SAFETY: cpu_set_t is plain data and all-zero is the empty set;
    // CPU_SET writes inside it (cpu was checked against CPU_SETSIZE); the
    // pointer and size passed describe that set; pid 0 is this thread.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().to_string())
    }
}

/// Pinning is done on Linux only.
#[cfg(not(target_os = "linux"))]
pub fn pin_this_thread_to(_cpu: usize) -> Result<(), String> {
    Err("not supported on this OS".into())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The calling thread's policy and priority, as the OS reports them.
    #[allow(unsafe_code)]
    fn current() -> (i32, i32) {
        let mut param = libc::sched_param { sched_priority: 0 };
        // SAFETY: plain data valid across the calls; pid 0 = this thread.
        unsafe {
            let policy = libc::sched_getscheduler(0);
            libc::sched_getparam(0, &mut param);
            (policy, param.sched_priority)
        }
    }

    /// Whatever the OS decides (granted as root or with CAP_SYS_NICE,
    /// refused otherwise), the answer is what the thread then has, and only
    /// that thread changes.
    #[test]
    fn the_answer_is_the_threads_scheduling() {
        let before = current();
        let (answer, after) = std::thread::spawn(|| {
            let a = request_real_time_for_this_thread();
            (a, current())
        })
        .join()
        .unwrap();
        match answer {
            Scheduling::RealTime { priority } => {
                assert_eq!(after, (libc::SCHED_FIFO, priority));
                assert_eq!(priority, DSP_FIFO_PRIORITY);
            }
            Scheduling::Normal { ref why } => {
                assert_ne!(after.0, libc::SCHED_FIFO, "{why}");
                assert!(!why.is_empty());
            }
        }
        assert_eq!(current(), before, "the test's own thread is unchanged");
    }

    #[test]
    fn pinning_to_a_cpu_that_cannot_exist_is_refused() {
        assert!(pin_this_thread_to(usize::MAX).is_err());
        let pinned = std::thread::spawn(|| pin_this_thread_to(0)).join().unwrap();
        assert_eq!(pinned, Ok(()));
    }
}
