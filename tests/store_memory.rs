//! The conformance suite against the in-memory store.

#[macro_use]
mod backends;

use std::sync::Arc;

use backends::conformance::{Harness, Setup};
use tower_api_keys::{KeyStore, MemoryStore};

async fn memory() -> Option<Setup> {
    let store: Arc<dyn KeyStore> = Arc::new(MemoryStore::new());
    Some(Setup {
        harness: Harness {
            other: Arc::clone(&store),
            store,
            pushes_across_handles: true,
        },
        cleanup: Box::pin(async {}),
    })
}

conformance_suite!(memory);
