//! Retention policies and legal holds: deciding which events may be deleted,
//! and deleting them by crypto-shredding key epochs.
//!
//! Never deletes a held event, never deletes before a policy's floor
//! (`min_keep_days`), and never deletes anything except by destroying key
//! epochs through the store.

pub mod holds;
pub mod policy;
pub mod run;
pub mod service;

pub use run::{
    Plan, RetentionError, RunOptions, RunOutcome, Trigger, plan, resume_unfinished, run,
};
pub use service::{RetentionService, ServiceError};
