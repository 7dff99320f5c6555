//! The sink and source contract, from the audit crate's shared conformance suite.
#![allow(clippy::unwrap_used, missing_docs)]

use cxone_uuid_audit::conformance::Backend;
use cxone_uuid_audit::signing::Signing;
use cxone_uuid_audit_jsonl::{JsonlOptions, JsonlSink, JsonlSource};

/// A store is a temp dir holding one trail (with its segments and anchor).
struct Jsonl;

impl Backend for Jsonl {
    type Sink = JsonlSink;
    type Source = JsonlSource;
    type Store = tempfile::TempDir;

    fn create(&self) -> Self::Store {
        tempfile::tempdir().unwrap()
    }

    fn open(&self, store: &Self::Store, signing: Option<Signing>) -> Self::Sink {
        let opts = JsonlOptions {
            signing,
            ..JsonlOptions::default()
        };
        JsonlSink::open(store.path().join("a.jsonl"), opts).unwrap()
    }

    fn source(&self, store: &Self::Store) -> Self::Source {
        JsonlSource::new(store.path().join("a.jsonl"))
    }
}

cxone_uuid_audit::sink_conformance!(Jsonl);
