//! The `Authorization` parser: no input panics, and a `Bearer` result always
//! satisfies RFC 6750's grammar with only the scheme matched loosely.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_api_keys::fuzzing::{Credentials, parse};

const B64TOKEN: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/";

fuzz_target!(|value: &[u8]| {
    if let Credentials::Bearer(token) = parse(value) {
        let trimmed = value.trim_ascii();
        assert!(trimmed[..6].eq_ignore_ascii_case(b"bearer"));
        let rest = &trimmed[6..];
        let spaces = rest.len() - token.len();
        assert!(spaces >= 1 && rest[..spaces].iter().all(|b| *b == b' '));
        assert_eq!(&rest[spaces..], token.as_bytes());
        let body_end = token.find('=').unwrap_or(token.len());
        assert!(body_end > 0);
        assert!(
            token.as_bytes()[..body_end]
                .iter()
                .all(|b| B64TOKEN.contains(b))
        );
        assert!(token[body_end..].bytes().all(|b| b == b'='));
    }
});
