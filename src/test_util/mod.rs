//! Helpers for the tests and benchmarks of code built on this crate
//! (feature `test-util`): stores that count, fail, wait or hold their calls
//! when told, and a clock that moves only when told.
//!
//! ```
//! use std::sync::Arc;
//! use tower_api_keys::test_util::CountingStore;
//! use tower_api_keys::{ApiKeys, MemoryStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_api_keys::BuildError> {
//! let store = Arc::new(CountingStore::new(MemoryStore::new()));
//! let keys = ApiKeys::builder(Arc::clone(&store)).build()?;
//! // ... serve requests ...
//! assert_eq!(store.calls().find_by_hash, 0);
//! # drop(keys);
//! # Ok(())
//! # }
//! ```

mod clock;
mod counting;
mod method;
mod scripted;

pub use clock::ManualClock;
pub use counting::{CountingStore, StoreCalls};
pub use method::StoreMethod;
pub use scripted::{Gate, ScriptedStore};
