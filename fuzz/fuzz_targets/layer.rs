//! The whole layer over arbitrary headers and query strings: no input
//! panics, none is let in, and only a well-formed key reaches the store.
#![no_main]

use std::sync::{Arc, OnceLock};

use http::{HeaderValue, Request, Response};
use libfuzzer_sys::fuzz_target;
use tower::{Layer, ServiceExt};
use tower_api_keys::test_util::CountingStore;
use tower_api_keys::{ApiKeys, MemoryStore};
use tower_api_keys::key::KeyFormat;

struct Harness {
    runtime: tokio::runtime::Runtime,
    store: Arc<CountingStore<MemoryStore>>,
    keys: ApiKeys,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let store = Arc::new(CountingStore::new(MemoryStore::new()));
        let keys = {
            let _guard = runtime.enter();
            ApiKeys::builder(Arc::clone(&store)).build().expect("build")
        };
        Harness {
            runtime,
            store,
            keys,
        }
    })
}

fuzz_target!(|input: (&[u8], &str)| {
    let (authorization, query) = input;
    let h = harness();
    let mut request = Request::new(String::new());
    let Ok(uri) = format!("/x?{query}").parse() else {
        return;
    };
    *request.uri_mut() = uri;
    let Ok(value) = HeaderValue::from_bytes(authorization) else {
        return;
    };
    request
        .headers_mut()
        .insert(http::header::AUTHORIZATION, value);
    let service = h
        .keys
        .layer()
        .layer(tower::service_fn(|_: Request<String>| async {
            Ok::<_, std::convert::Infallible>(Response::new(String::new()))
        }));
    let before = h.store.calls().find_by_hash;
    let response = h
        .runtime
        .block_on(service.oneshot(request))
        .expect("the layer answers");
    assert_ne!(
        response.status(),
        200,
        "nothing in the store, nothing let in"
    );
    if h.store.calls().find_by_hash > before {
        let text = String::from_utf8_lossy(authorization);
        let token = text
            .trim()
            .get(7..)
            .map(str::trim_start)
            .unwrap_or_default();
        assert!(
            KeyFormat::default().parse(token).is_ok(),
            "a malformed token reached the store"
        );
    }
});
