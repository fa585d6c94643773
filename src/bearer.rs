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
/// ```
/// use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
/// use tower_api_keys::bearer::{credentials, Credentials};
///
/// let mut headers = HeaderMap::new();
/// headers.insert(AUTHORIZATION, HeaderValue::from_static("bearer bmc_abc"));
/// assert_eq!(credentials(&headers, 4096), Credentials::Bearer("bmc_abc"));
/// ```
pub fn credentials(headers: &HeaderMap, max_len: usize) -> Credentials<'_> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Credentials::Missing;
    };
    if values.next().is_some() {
        return Credentials::Invalid(RejectionReason::MultipleAuthorizationHeaders);
    }
    if value.len() > max_len {
        return Credentials::Invalid(RejectionReason::AuthorizationTooLarge);
    }
    parse(value.as_bytes())
}

/// Parses one `Authorization` field value.
pub fn parse(value: &[u8]) -> Credentials<'_> {
    let value = value.trim_ascii();
    if value.is_empty() {
        return Credentials::Invalid(RejectionReason::MalformedAuthorization);
    }
    let scheme_end = value
        .iter()
        .position(|b| *b == b' ' || *b == b'\t')
        .unwrap_or(value.len());
    let (scheme, rest) = value.split_at(scheme_end);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Credentials::OtherScheme;
    }
    if rest.is_empty() {
        return Credentials::Invalid(RejectionReason::MissingBearerToken);
    }
    let token_start = rest.iter().position(|b| *b != b' ').unwrap_or(rest.len());
    let token = &rest[token_start..];
    if token_start == 0 || !is_b64token(token) {
        return Credentials::Invalid(RejectionReason::InvalidTokenSyntax);
    }
    match std::str::from_utf8(token) {
        Ok(token) => Credentials::Bearer(token),
        Err(_) => Credentials::Invalid(RejectionReason::InvalidTokenSyntax),
    }
}

fn is_b64token(token: &[u8]) -> bool {
    let body_end = token.iter().position(|b| *b == b'=').unwrap_or(token.len());
    let (body, padding) = token.split_at(body_end);
    !body.is_empty()
        && body.iter().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
        && padding.iter().all(|b| *b == b'=')
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
