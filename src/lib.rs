//! holdfast: a self-hosted compliance and e-discovery archive for team chat.
//!
//! Reading order: the wire format (`event`), the metadata database (`db`),
//! the append-only encrypted store (`store`), configuration (`config`),
//! ingest (`ingest`) and history importers (`import`), the synthetic corpus
//! (`generate`), search (`search`: the query language; `index`: the tantivy
//! index), and the two thin shells over them: the HTTP API (`api`) and the
//! command line (`cli`). `docs/architecture.md` has the map and each
//! module's invariants.

pub mod api;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod console;
pub mod db;
pub mod event;
pub mod export;
pub mod generate;
pub mod import;
pub mod index;
pub mod ingest;
pub mod retention;
pub mod search;
pub mod store;
