//! The conformance suite against the in-memory store.

#[macro_use]
mod backends;

use std::sync::Arc;

use backends::conformance::{Harness, Setup};
use tower_api_keys::{KeyStore, MemoryStore};

async fn memory() -> Option<Setup> {
    let memory = Arc::new(MemoryStore::new());
    let store: Arc<dyn KeyStore> = memory.clone();
    Some(Setup {
        harness: Harness {
            other: Arc::clone(&store),
            store,
            pushes_across_handles: true,
            // What the process holds: the store's state as Debug shows it.
            dump: Arc::new(move || {
                let text = format!("{memory:?}");
                Box::pin(async move { text.into_bytes() })
            }),
        },
        cleanup: Box::pin(async {}),
    })
}

conformance_suite!(memory);
