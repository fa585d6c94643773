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

use zeroize::Zeroizing;

use crate::key::KeyFormat;

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
/// ```
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
        }
    }

    /// Whether `query` (the part of the URI after `?`) carries a credential.
    pub fn carries_credential(&self, query: &str) -> bool {
        if query.contains(&*self.lead) {
            return true;
        }
        form_urlencoded::parse(query.as_bytes()).any(|(name, value)| {
            self.is_credential_name(&name) || self.carries_key(&name) || self.carries_key(&value)
        })
    }

    /// The key-shaped values in `query` (after percent-decoding), for the
    /// policy that revokes keys sent in URLs. Each is the key prefix and the
    /// run of base64url characters after it; the caller checks the format.
    pub fn exposed_keys(&self, query: &str, format: &KeyFormat) -> Vec<Zeroizing<String>> {
        let mut found: Vec<Zeroizing<String>> = Vec::new();
        let mut scan = |text: &str| {
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
            scan(&name);
            scan(&value);
        }
        found
    }

    fn is_credential_name(&self, name: &str) -> bool {
        self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }

    fn carries_key(&self, text: &str) -> bool {
        text.contains(&*self.lead)
    }
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
}
