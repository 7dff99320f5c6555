//! Behaviour a user relies on: the registry contract (one answer "new" per UUID however many
//! callers race, duplicates inside a batch caught, the file remembering across runs) from the
//! shared conformance suite, and what is SQLite's own: files that cannot be a registry.
#![allow(clippy::unwrap_used, missing_docs)]

use cxone_uuid_core::conformance::Backend;
use cxone_uuid_core::RegistryError;
use cxone_uuid_registry_sqlite::SqliteRegistry;

/// A store is a temp dir holding one registry file; each handle opens its own connection to it,
/// as another process on this machine would.
struct Sqlite;

impl Backend for Sqlite {
    type Registry = SqliteRegistry;
    type Store = tempfile::TempDir;

    async fn create(&self) -> Self::Store {
        tempfile::tempdir().unwrap()
    }

    async fn open(&self, store: &Self::Store) -> Self::Registry {
        SqliteRegistry::open(store.path().join("r.db"))
            .await
            .unwrap()
    }
}

mod conformance {
    use super::Sqlite;
    cxone_uuid_core::registry_conformance!(Sqlite; persistent);
}

#[tokio::test]
async fn an_unopenable_path_is_unavailable_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("r.db");
    let err = SqliteRegistry::open(&path).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("no-such-dir"), "{err}");
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.db");
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    let err = SqliteRegistry::open(&path).await.unwrap_err();
    assert!(matches!(err, RegistryError::Protocol { .. }), "{err}");
}
