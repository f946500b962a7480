//! The descriptor limit of an incremental import: raised while unnamed files wait open for
//! their batch's registration, put back afterwards.

/// The most unnamed files an import holds open (see `DescriptorLimit`).
pub(super) const MAX_UNNAMED_FILES: usize = 16384;

/// The descriptor limit, raised to its hard maximum for the length of an import (objects wait
/// open until their batch is registered) and put back afterwards, so that processes started
/// later (services, hooks) get the limit they would have had.
pub(super) struct DescriptorLimit {
    current: u64,
    restore: Option<libc::rlimit>,
}

impl DescriptorLimit {
    pub(super) fn raise() -> DescriptorLimit {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: plain system calls reading and writing a local struct.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return DescriptorLimit {
                    current: 1024,
                    restore: None,
                };
            }
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max.min(1 << 16).max(limit.rlim_cur),
                rlim_max: limit.rlim_max,
            };
            if raised.rlim_cur > limit.rlim_cur
                && libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0
            {
                return DescriptorLimit {
                    current: raised.rlim_cur,
                    restore: Some(limit),
                };
            }
        }
        DescriptorLimit {
            current: limit.rlim_cur,
            restore: None,
        }
    }

    /// How many unnamed files may be open at once, leaving room for everything else.
    pub(super) fn unnamed_file_budget(&self) -> usize {
        (self.current as usize)
            .saturating_sub(256)
            .clamp(16, MAX_UNNAMED_FILES)
    }
}

impl Drop for DescriptorLimit {
    fn drop(&mut self) {
        if let Some(original) = self.restore {
            // SAFETY: as in `raise`. (Lowering the soft limit closes nothing; it only bounds
            // descriptors opened from now on, and the importer's files are closed by now.)
            unsafe {
                libc::setrlimit(libc::RLIMIT_NOFILE, &original);
            }
        }
    }
}
