//! holdfast: a self-hosted compliance and e-discovery archive for team chat.
//!
//! Modules in reading order: the wire format (`event`), the metadata
//! database (`db`), the append-only encrypted store (`store`), configuration
//! (`config`), ingest (`ingest`), the synthetic corpus (`generate`), and the
//! two thin shells over them: the HTTP API (`api`) and the command line (`cli`).
//! `docs/architecture.md` has the map and each module's invariants.

pub mod api;
pub mod cli;
pub mod config;
pub mod db;
pub mod event;
pub mod generate;
pub mod index;
pub mod ingest;
pub mod search;
pub mod store;
