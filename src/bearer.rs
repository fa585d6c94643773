//! Reading the bearer token from the `Authorization` header (RFC 6750 §2.1).
//!
//! ```text
//! credentials = "Bearer" 1*SP b64token
//! b64token    = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
//! ```
//!
//! The scheme is matched case-insensitively (RFC 9110 §11.1); nothing else
//! is lenient. Leading and trailing whitespace is not part of a field value
//! (RFC 9110 §5.5) and is ignored.

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::rejection::RejectionReason;

/// What the `Authorization` header holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// No `Authorization` header.
    Missing,
    /// Credentials of another scheme (`Basic ...`); RFC 6750 §3.1 treats
    /// them as no credentials.
    OtherScheme,
    /// A syntactically valid bearer token.
    Bearer(&'a str),
    /// A header that must be refused.
    Invalid(RejectionReason),
}

/// Reads the credentials of a request. `max_len` bounds the header's length.
///
/// Not compiled as a doc test: the path exists only under `--cfg fuzzing`
/// (`tests/properties.rs` checks the same through the layer).
///
/// ```ignore
/// use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
/// use tower_api_keys::fuzzing::{credentials, Credentials};
///
/// let mut headers = HeaderMap::new();
/// headers.insert(AUTHORIZATION, HeaderValue::from_static("bearer bmc_abc"));
/// assert_eq!(credentials(&headers, 4096), Credentials::Bearer("bmc_abc"));
/// ```
pub fn credentials(headers: &HeaderMap, max_len: usize) -> Credentials<'_> {
    checked(raw_credentials(headers, max_len))
}

/// Parses one `Authorization` field value.
pub fn parse(value: &[u8]) -> Credentials<'_> {
    checked(split_bearer(value))
}

/// The first stage of parsing: header count, length, scheme and spaces. The
/// token's characters are not checked yet, so that the request path can skip
/// that scan for tokens that pass the (stricter) key format check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawCredentials<'a> {
    Missing,
    OtherScheme,
    /// What follows `Bearer` and its spaces; not empty.
    Token(&'a [u8]),
    Invalid(RejectionReason),
}

pub(crate) fn raw_credentials(headers: &HeaderMap, max_len: usize) -> RawCredentials<'_> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return RawCredentials::Missing;
    };
    if values.next().is_some() {
        return RawCredentials::Invalid(RejectionReason::MultipleAuthorizationHeaders);
    }
    if value.len() > max_len {
        return RawCredentials::Invalid(RejectionReason::AuthorizationTooLarge);
    }
    split_bearer(value.as_bytes())
}

fn split_bearer(value: &[u8]) -> RawCredentials<'_> {
    // The shape nearly every client sends: `Bearer <token>`, one space, no
    // surrounding whitespace. Anything else takes the general path below.
    if let [scheme @ .., b' '] = value.get(..7).unwrap_or_default()
        && scheme.eq_ignore_ascii_case(b"bearer")
        && let [first, .., last] = &value[7..]
        && !first.is_ascii_whitespace()
        && !last.is_ascii_whitespace()
    {
        return RawCredentials::Token(&value[7..]);
    }
    let value = value.trim_ascii();
    if value.is_empty() {
        return RawCredentials::Invalid(RejectionReason::MalformedAuthorization);
    }
    let scheme_end = value
        .iter()
        .position(|b| *b == b' ' || *b == b'\t')
        .unwrap_or(value.len());
    let (scheme, rest) = value.split_at(scheme_end);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return RawCredentials::OtherScheme;
    }
    if rest.is_empty() {
        return RawCredentials::Invalid(RejectionReason::MissingBearerToken);
    }
    let token_start = rest.iter().position(|b| *b != b' ').unwrap_or(rest.len());
    if token_start == 0 {
        // A tab (or other whitespace) where `1*SP` is required.
        return RawCredentials::Invalid(RejectionReason::InvalidTokenSyntax);
    }
    RawCredentials::Token(&rest[token_start..])
}

/// The second stage: the token must be a `b64token`.
fn checked(raw: RawCredentials<'_>) -> Credentials<'_> {
    match raw {
        RawCredentials::Missing => Credentials::Missing,
        RawCredentials::OtherScheme => Credentials::OtherScheme,
        RawCredentials::Invalid(reason) => Credentials::Invalid(reason),
        RawCredentials::Token(token) => match std::str::from_utf8(token) {
            Ok(token) if is_b64token(token.as_bytes()) => Credentials::Bearer(token),
            _ => Credentials::Invalid(RejectionReason::InvalidTokenSyntax),
        },
    }
}

/// The bytes of a `b64token` before its padding, as a lookup table.
const B64TOKEN_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] =
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        i += 1;
    }
    table
};

/// Whether `token` matches `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub(crate) fn is_b64token(token: &[u8]) -> bool {
    let padding = token.iter().rev().take_while(|b| **b == b'=').count();
    let body = &token[..token.len() - padding];
    // No early exit: a branch-free pass the compiler can vectorise.
    !body.is_empty()
        && body
            .iter()
            .fold(true, |ok, b| ok & B64TOKEN_CHARS[usize::from(*b)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use RejectionReason::*;

    #[test]
    fn grammar() {
        let cases: &[(&[u8], Credentials<'_>)] = &[
            (b"Bearer abc", Credentials::Bearer("abc")),
            (b"bearer abc", Credentials::Bearer("abc")),
            (b"BEARER abc", Credentials::Bearer("abc")),
            (b"Bearer   abc", Credentials::Bearer("abc")),
            (b"  Bearer abc  ", Credentials::Bearer("abc")),
            (b"Bearer a-._~+/b==", Credentials::Bearer("a-._~+/b==")),
            (b"Bearer", Credentials::Invalid(MissingBearerToken)),
            (b"Bearer    ", Credentials::Invalid(MissingBearerToken)),
            (b"Bearer\tabc", Credentials::Invalid(InvalidTokenSyntax)),
            (b"Bearer \tabc", Credentials::Invalid(InvalidTokenSyntax)),
            (b"Bearer a b", Credentials::Invalid(InvalidTokenSyntax)),
            (b"Bearer a=b", Credentials::Invalid(InvalidTokenSyntax)),
            (b"Bearer ==", Credentials::Invalid(InvalidTokenSyntax)),
            (b"Bearer a,b", Credentials::Invalid(InvalidTokenSyntax)),
            (b"Bearer \"abc\"", Credentials::Invalid(InvalidTokenSyntax)),
            (
                b"Bearer ab\xc3\xa9",
                Credentials::Invalid(InvalidTokenSyntax),
            ),
            (b"", Credentials::Invalid(MalformedAuthorization)),
            (b"Basic dXNlcjpwYXNz", Credentials::OtherScheme),
            (b"Bearerabc", Credentials::OtherScheme),
            (b"bmc_abc", Credentials::OtherScheme),
        ];
        for (value, expected) in cases {
            assert_eq!(
                parse(value),
                *expected,
                "{}",
                String::from_utf8_lossy(value)
            );
        }
    }
}
