//! The query-string guard: no input panics; any query holding the key prefix,
//! raw or percent-encoded, is refused; every key it reports is well-formed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_api_keys::key::KeyFormat;
use tower_api_keys::fuzzing::QueryGuard;

fuzz_target!(|query: &str| {
    let guard = QueryGuard::new("bmc_");
    let format = KeyFormat::default();
    let refused = guard.carries_credential(query);
    if query.contains("bmc_") {
        assert!(refused);
    }
    let decoded_names_and_values_hold_prefix = form_decoded_contains(query, "bmc_");
    if decoded_names_and_values_hold_prefix {
        assert!(refused);
    }
    for key in guard.exposed_keys(query, &format) {
        assert!(format.parse(&key).is_ok());
        assert!(refused);
    }
});

fn form_decoded_contains(query: &str, needle: &str) -> bool {
    query.split('&').any(|pair| {
        let decoded: Vec<u8> = percent_decode(pair.replace('+', " ").as_bytes());
        String::from_utf8_lossy(&decoded).contains(needle)
    })
}

fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(&String::from_utf8_lossy(&bytes[i + 1..i + 3]), 16)
            {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}
