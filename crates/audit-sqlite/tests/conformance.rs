//! The sink and source contract, from the audit crate's shared conformance suite.
#![allow(clippy::unwrap_used, missing_docs)]

use cxone_uuid_audit::conformance::Backend;
use cxone_uuid_audit::signing::Signing;
use cxone_uuid_audit_sqlite::{SqliteOptions, SqliteSink, SqliteSource};

/// A store is a temp dir holding one database.
struct Sqlite;

impl Backend for Sqlite {
    type Sink = SqliteSink;
    type Source = SqliteSource;
    type Store = tempfile::TempDir;

    fn create(&self) -> Self::Store {
        tempfile::tempdir().unwrap()
    }

    fn open(&self, store: &Self::Store, signing: Option<Signing>) -> Self::Sink {
        let opts = SqliteOptions {
            signing,
            ..SqliteOptions::default()
        };
        SqliteSink::open(store.path().join("a.db"), opts).unwrap()
    }

    fn source(&self, store: &Self::Store) -> Self::Source {
        SqliteSource::new(store.path().join("a.db"))
    }
}

cxone_uuid_audit::sink_conformance!(Sqlite);
