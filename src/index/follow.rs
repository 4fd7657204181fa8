//! The index follower: one task that owns the index writer while `serve`
//! runs, and makes every acknowledged event searchable within the
//! configured interval, committing many events at once (never one commit
//! per event).
//!
//! It looks at the store's newest acknowledged seq (kept in memory) every
//! tick and asks the metadata database itself every few seconds, so events
//! written by another process (an import) are picked up too. A failed step is
//! logged and retried from the last commit; the index never runs ahead of the
//! store.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{SearchIndex, advance};
use crate::store::Store;

/// How often the database itself is asked, in ticks.
const DB_CHECK_TICKS: u32 = 20;

/// Starts and stops the follower.
pub struct Follower;

/// The running follower.
pub struct FollowerHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    indexed: watch::Receiver<u64>,
}

impl Follower {
    /// Starts following `store` into `index`, looking for new events every
    /// `interval`.
    pub fn start(store: Store, index: Arc<SearchIndex>, interval: Duration) -> FollowerHandle {
        let (stop, mut stopped) = watch::channel(false);
        let initial = index.indexed_seq().unwrap_or(0);
        let (indexed_tx, indexed) = watch::channel(initial);
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut ticks: u32 = 0;
            let mut known = initial;
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stopped.changed() => break,
                }
                ticks = ticks.wrapping_add(1);
                let acknowledged = store.metrics().last_seq.get().max(0) as u64;
                if acknowledged <= known && !ticks.is_multiple_of(DB_CHECK_TICKS) {
                    continue;
                }
                let mut writer = index.writer_slot.lock().await;
                match advance(&store, &index, &mut writer, |_, _| {}).await {
                    Ok(seq) => {
                        if seq != known {
                            if let Err(error) = index.reload() {
                                tracing::warn!(%error, "search index reload failed");
                            }
                            known = seq;
                            indexed_tx.send_replace(seq);
                        }
                    }
                    Err(error) => {
                        tracing::error!(%error, "indexing failed; retrying from the last commit");
                        *writer = None;
                    }
                }
            }
            let writer = index.writer_slot.lock().await.take();
            if let Some(writer) = writer {
                let _ = tokio::task::spawn_blocking(move || writer.wait_merging_threads()).await;
            }
        });
        FollowerHandle {
            stop,
            task,
            indexed,
        }
    }
}

impl FollowerHandle {
    /// The last seq searches can see.
    pub fn indexed_seq(&self) -> u64 {
        *self.indexed.borrow()
    }

    /// Waits until searches see every event up to `seq`, or `timeout` passes.
    /// Returns whether they do.
    pub async fn wait_for(&self, seq: u64, timeout: Duration) -> bool {
        let mut indexed = self.indexed.clone();
        tokio::time::timeout(timeout, indexed.wait_for(|&indexed| indexed >= seq))
            .await
            .is_ok_and(|result| result.is_ok())
    }

    /// Stops the follower after its current step and closes the writer.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
