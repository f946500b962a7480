//! Handing verified objects over, in batches, to the thread that makes them durable and
//! registers them (incremental imports hand over as they go, atomic ones once at the end).
use std::io::BufRead;
use std::time::Duration;

use super::{stream_failure, Importer};
use crate::error::Result;
use crate::path::StorePath;
use crate::register::{StagedObject, Staging};
use crate::store::Store;

/// Incremental mode hands pending objects over for registration (on its own thread) once this
/// many objects or bytes are pending, or objects have been pending this long, if the registration
/// thread is idle; while it is busy, the batch grows. Each registration costs a `syncfs` and a
/// database commit whatever its size, so a slow disk gets fewer, bigger batches by itself.
const OFFER_OBJECTS: usize = 1024;
const OFFER_BYTES: u64 = 8 * 1024 * 1024;
const OFFER_INTERVAL: Duration = Duration::from_millis(250);

/// Pending objects are handed over, waiting for the registration thread if need be, once this
/// many bytes are pending or objects have been pending this long, so a cut stream keeps what
/// arrived a moment ago; or once the unnamed files they hold open reach the descriptor budget.
const FLUSH_BYTES: u64 = 64 * 1024 * 1024;
const FLUSH_INTERVAL: Duration = Duration::from_secs(2);

/// The registration thread's work: each batch it receives is made durable (one `syncfs`),
/// then registered; it returns every path that became valid.
pub(super) fn register_batches(
    store: &Store,
    staging: &Staging,
    queue: std::sync::mpsc::Receiver<Vec<StagedObject>>,
) -> Result<Vec<StorePath>> {
    let mut registered = Vec::new();
    for batch in queue {
        staging.handle().syncfs()?;
        registered.extend(store.register(staging, batch)?);
    }
    Ok(registered)
}

impl<R: BufRead> Importer<'_, R> {
    /// Hands the pending batch over when it is due (see `OFFER_*` and `FLUSH_*`).
    pub(super) fn hand_over_if_due(&mut self) -> Result<()> {
        let age = self.oldest_pending.elapsed();
        if self.unnamed_pending >= self.max_unnamed
            || self.pending_bytes >= FLUSH_BYTES
            || age >= FLUSH_INTERVAL
        {
            return self.flush();
        }
        if self.pending.len() >= OFFER_OBJECTS
            || self.pending_bytes >= OFFER_BYTES
            || age >= OFFER_INTERVAL
        {
            let Some(batches) = &self.batches else {
                return Ok(());
            };
            match batches.try_send(std::mem::take(&mut self.pending)) {
                Ok(()) => self.pending_handed_over(),
                // Busy registering the previous batch: this one keeps growing.
                Err(std::sync::mpsc::TrySendError::Full(batch)) => self.pending = batch,
                Err(std::sync::mpsc::TrySendError::Disconnected(batch)) => {
                    self.pending = batch;
                    return self.flush();
                }
            }
        }
        Ok(())
    }

    /// Hands pending objects over to be made durable and registered.
    pub(super) fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        self.pending_handed_over();
        let sent = match &self.batches {
            Some(batches) => batches.send(batch).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            // The registration thread stopped on an error, which the caller reports.
            self.registration_stopped = true;
            Err(stream_failure("registration stopped"))
        }
    }

    /// Resets the pending counters once the pending objects are out of `pending`.
    fn pending_handed_over(&mut self) {
        self.pending_bytes = 0;
        self.unnamed_pending = 0;
    }
}
