//! The in-memory registry against the registry conformance suite. Its store is the table
//! itself, shared by every handle and gone with the last one, so it runs the cases for a
//! registry without persistence.
#![allow(missing_docs)]

use std::sync::Arc;

use cxone_uuid_core::conformance::Backend;
use cxone_uuid_core::MemoryRegistry;

struct Memory;

impl Backend for Memory {
    type Registry = Arc<MemoryRegistry>;
    type Store = Arc<MemoryRegistry>;

    async fn create(&self) -> Self::Store {
        Arc::new(MemoryRegistry::new())
    }

    async fn open(&self, store: &Self::Store) -> Self::Registry {
        Arc::clone(store)
    }
}

cxone_uuid_core::registry_conformance!(Memory);
