//! The query-string guard: keys do not belong in URLs.
//!
//! URLs end up in access logs, browser history and `Referer` headers, so a
//! request that carries a credential in its query string is refused with
//! `400 invalid_request` before anything is looked up, and the value is never
//! logged. A query is refused when, after percent-decoding:
//!
//! - a parameter's name is one of the credential names (`access_token`,
//!   `api_key`, `key`, `token`, ..., compared case-insensitively), or
//! - a parameter's name or value contains the key prefix (`bmc_`).

use std::sync::Arc;

use percent_encoding::percent_decode_str;
use zeroize::Zeroizing;

use crate::key::{CHECKSUM_LEN, KEY_BODY_LEN, KeyFormat};

/// How many times a name or value is percent-decoded again, after the
/// query's own decoding, to see through keys encoded twice or more.
const MAX_DECODINGS: usize = 4;

/// The parameter names refused by default.
pub(crate) const DEFAULT_CREDENTIAL_PARAMS: &[&str] = &[
    "access_token",
    "api_key",
    "apikey",
    "api-key",
    "key",
    "token",
    "bearer",
    "authorization",
];

/// Decides whether a query string carries a credential.
///
/// Not compiled as a doc test: the path exists only under `--cfg fuzzing`
/// (`tests/properties.rs` checks the same through the layer).
///
/// ```ignore
/// use tower_api_keys::fuzzing::QueryGuard;
///
/// let guard = QueryGuard::new("bmc_");
/// assert!(guard.carries_credential("access_token=abc"));
/// assert!(guard.carries_credential("q=%62mc_K7xR"));
/// assert!(!guard.carries_credential("page=2&sort=name"));
/// ```
#[derive(Debug, Clone)]
pub struct QueryGuard {
    names: Arc<[Box<str>]>,
    lead: Arc<str>,
    /// A checksummed format, which tells a key's body from other text even
    /// without its prefix.
    checksummed: Option<KeyFormat>,
}

impl QueryGuard {
    /// A guard for keys starting with `lead` (the prefix and its separator),
    /// refusing the [`DEFAULT_CREDENTIAL_PARAMS`].
    pub fn new(lead: &str) -> Self {
        Self::with_names(lead, DEFAULT_CREDENTIAL_PARAMS.iter().copied())
    }

    /// A guard refusing the given parameter names.
    pub fn with_names<'a>(lead: &str, names: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            names: names.into_iter().map(Box::from).collect(),
            lead: Arc::from(lead),
            checksummed: None,
        }
    }

    /// Also refuses a key of `format` sent without its prefix, where the
    /// format can tell (keys with a checksum); other formats change nothing.
    #[must_use]
    pub fn recognizing(mut self, format: &KeyFormat) -> Self {
        self.checksummed = format.has_checksum().then(|| format.clone());
        self
    }

    /// Whether `query` (the part of the URI after `?`) carries a credential:
    /// a credential parameter's name, or the key prefix anywhere, also once
    /// names and values are percent-decoded again (up to four times).
    pub fn carries_credential(&self, query: &str) -> bool {
        if self.carries_key(query) {
            return true;
        }
        form_urlencoded::parse(query.as_bytes()).any(|(name, value)| {
            each_decoding(&name, |name| {
                self.is_credential_name(name) || self.carries_key(name)
            }) || each_decoding(&value, |value| self.carries_key(value))
        })
    }

    /// The key-shaped values in `query` (after percent-decoding), for the
    /// policy that revokes keys sent in URLs. Each is the key prefix and the
    /// run of base64url characters after it; the caller checks the format.
    pub fn exposed_keys(&self, query: &str, format: &KeyFormat) -> Vec<Zeroizing<String>> {
        let mut found: Vec<Zeroizing<String>> = Vec::new();
        let mut scan = |text: &str| {
            for body in self.bare_keys(text) {
                let candidate = Zeroizing::new(format!("{}{body}", self.lead));
                if !found.contains(&candidate) {
                    found.push(candidate);
                }
            }
            for (start, _) in text.match_indices(&*self.lead) {
                let rest = &text[start + self.lead.len()..];
                let body_len = rest
                    .bytes()
                    .position(|b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
                    .unwrap_or(rest.len());
                let candidate = Zeroizing::new(format!("{}{}", self.lead, &rest[..body_len]));
                if format.parse(&candidate).is_ok() && !found.contains(&candidate) {
                    found.push(candidate);
                }
            }
        };
        scan(query);
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            each_decoding(&name, |text| {
                scan(text);
                false
            });
            each_decoding(&value, |text| {
                scan(text);
                false
            });
        }
        found
    }

    fn is_credential_name(&self, name: &str) -> bool {
        self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }

    fn carries_key(&self, text: &str) -> bool {
        text.contains(&*self.lead) || self.bare_keys(text).next().is_some()
    }

    /// The runs of `text` that are a whole key body of the checksummed
    /// format (its checksum says so); none for formats without one.
    fn bare_keys<'t>(&'t self, text: &'t str) -> impl Iterator<Item = &'t str> + 't {
        let format = self.checksummed.as_ref();
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .filter(move |run| {
                run.len() == KEY_BODY_LEN + CHECKSUM_LEN
                    && format.is_some_and(|format| {
                        let key = Zeroizing::new(format!("{}{run}", self.lead));
                        format.parse(&key).is_ok()
                    })
            })
    }
}

/// Calls `visit` with `text` and with what it becomes when percent-decoded
/// again and again, until it stops changing or [`MAX_DECODINGS`] is
/// reached; stops at the first `true`, and returns it.
fn each_decoding(text: &str, mut visit: impl FnMut(&str) -> bool) -> bool {
    if visit(text) {
        return true;
    }
    let mut current = Zeroizing::new(text.to_owned());
    for _ in 0..MAX_DECODINGS {
        if !current.contains('%') {
            break;
        }
        let next = Zeroizing::new(
            percent_decode_str(&current)
                .decode_utf8_lossy()
                .into_owned(),
        );
        if *next == *current {
            break;
        }
        if visit(&next) {
            return true;
        }
        current = next;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_credentials_in_names_and_values() {
        let guard = QueryGuard::new("bmc_");
        for query in [
            "access_token=x",
            "ACCESS_TOKEN=x",
            "api_key=x",
            "token=",
            "key",
            "a=1&token=x",
            "q=bmc_abc",
            "bmc_abc=1",
            "q=%62%6d%63%5fabc",
            "%62mc_abc",
            "q=x+bmc_abc",
            "access%5Ftoken=x",
        ] {
            assert!(guard.carries_credential(query), "{query}");
        }
        for query in ["", "page=2", "q=bmc", "keys=1", "q=BMC_abc", "tokens=2"] {
            assert!(!guard.carries_credential(query), "{query}");
        }
    }

    #[test]
    fn finds_well_formed_keys_however_they_are_encoded() {
        let format = KeyFormat::default();
        let key = format.generate().unwrap();
        let key = key.expose_secret();
        let encoded: String = key.bytes().map(|b| format!("%{b:02X}")).collect();
        let guard = QueryGuard::new("bmc_");
        for query in [
            format!("access_token={key}"),
            format!("q={encoded}&x=1"),
            format!("{key}=1"),
            format!("a={key}&b={key}"),
        ] {
            let found = guard.exposed_keys(&query, &format);
            assert_eq!(found.len(), 1, "{query}");
            assert_eq!(found[0].as_str(), key);
        }
        assert!(guard.exposed_keys("q=bmc_short", &format).is_empty());
    }

    /// `%25` decodes to `%`: a key encoded twice or more still shows.
    fn encode(text: &str) -> String {
        text.bytes().map(|b| format!("%{b:02X}")).collect()
    }

    #[test]
    fn keys_encoded_again_and_again_are_found() {
        let format = KeyFormat::default();
        let key = format.generate().unwrap();
        let key = key.expose_secret();
        let guard = QueryGuard::new("bmc_");
        let mut encoded = key.to_owned();
        for times in 1..=4 {
            encoded = encode(&encoded);
            let query = format!("q={encoded}");
            assert!(guard.carries_credential(&query), "{times} times");
            let found = guard.exposed_keys(&query, &format);
            assert_eq!(found.len(), 1, "{times} times");
            assert_eq!(found[0].as_str(), key);
        }
        assert!(guard.carries_credential(&format!("access{}token=x", encode(&encode("_")))));
        // Ordinary percent-encoded text is not a credential.
        assert!(!guard.carries_credential("q=50%25%20off&name=caf%C3%A9"));
    }

    #[test]
    fn a_checksummed_key_is_found_without_its_prefix() {
        let format = KeyFormat::default().with_checksum();
        let key = format.generate().unwrap();
        let body = &key.expose_secret()["bmc_".len()..];
        let guard = QueryGuard::new("bmc_").recognizing(&format);
        assert!(guard.carries_credential(&format!("q={body}")));
        assert!(guard.carries_credential(&format!("q={}", encode(&encode(body)))));
        let found = guard.exposed_keys(&format!("q={body}"), &format);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].as_str(), key.expose_secret());
        // A run of the same length whose checksum does not match is text.
        let mut other = body.to_owned();
        other.replace_range(0..1, if body.starts_with('A') { "B" } else { "A" });
        assert!(!guard.carries_credential(&format!("q={other}")));
        // Without a checksum the format cannot tell a body from other text.
        let plain = KeyFormat::default().generate().unwrap();
        let guard = QueryGuard::new("bmc_").recognizing(&KeyFormat::default());
        assert!(!guard.carries_credential(&format!("q={}", &plain.expose_secret()[4..])));
    }
}
