//! Key parsing: no input panics; the plain format accepts exactly what the
//! strict base64 decoder decodes to 32 bytes; the checksummed format accepts
//! only keys whose checksum it would itself have written.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use tower_api_keys::key::KeyFormat;

fuzz_target!(|token: &[u8]| {
    let plain = KeyFormat::default();
    let accepted = plain.parse_bytes(token).is_ok();
    let oracle = token
        .strip_prefix(b"bmc_")
        .filter(|body| body.len() == 43)
        .and_then(|body| URL_SAFE_NO_PAD.decode(body).ok())
        .is_some_and(|bytes| bytes.len() == 32);
    assert_eq!(accepted, oracle);

    let checked = KeyFormat::default().with_checksum();
    if checked.parse_bytes(token).is_ok() {
        assert_eq!(token.len(), 4 + 43 + 6);
        assert!(plain.parse_bytes(&token[..4 + 43]).is_ok());
    }
    let migrating = KeyFormat::default()
        .with_checksum()
        .accept_without_checksum(true);
    assert_eq!(
        migrating.parse_bytes(token).is_ok(),
        accepted || checked.parse_bytes(token).is_ok()
    );
});
