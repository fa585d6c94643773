//! Key format, generation, strict parsing and hashing.
//!
//! A key is `<prefix>_<43 base64url characters>`: the base64url encoding
//! (no padding) of 32 bytes from the operating system's CSPRNG. Only a hash of
//! the whole key string is ever stored.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Number of random bytes in a key.
pub(crate) const KEY_BYTES: usize = 32;
/// Number of base64url characters that encode [`KEY_BYTES`] without padding.
pub(crate) const KEY_BODY_LEN: usize = 43;
/// Number of body characters kept in a key's display prefix (`bmc_K7xR2pQm`).
pub(crate) const DISPLAY_BODY_LEN: usize = 8;
/// Longest prefix a [`KeyFormat`] accepts.
pub(crate) const MAX_PREFIX_LEN: usize = 32;

/// The shape of the keys this crate issues and accepts: `<prefix>_<body>`.
///
/// ```
/// use tower_api_keys::key::KeyFormat;
///
/// let format = KeyFormat::default();
/// let key = format.generate().expect("the OS random source is available");
/// assert!(key.expose_secret().starts_with("bmc_"));
/// assert!(format.parse(key.expose_secret()).is_ok());
/// assert!(format.parse("bmc_short").is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct KeyFormat {
    /// The prefix followed by the separator, such as `bmc_`.
    lead: Arc<str>,
    /// New keys end with a CRC32 checksum, and keys are checked against it.
    checksum: bool,
    /// With `checksum`: keys without one are still accepted (a migration).
    accept_plain: bool,
}

impl KeyFormat {
    /// The prefix used when none is configured.
    pub const DEFAULT_PREFIX: &'static str = "bmc";

    /// A format with the given prefix (1 to 32 ASCII letters, digits or `_`,
    /// not starting or ending with `_`).
    pub fn new(prefix: &str) -> Result<Self, InvalidPrefix> {
        let valid_chars = prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if prefix.is_empty()
            || prefix.len() > MAX_PREFIX_LEN
            || !valid_chars
            || prefix.starts_with('_')
            || prefix.ends_with('_')
        {
            return Err(InvalidPrefix(prefix.chars().take(40).collect()));
        }
        Ok(Self {
            lead: format!("{prefix}_").into(),
            checksum: false,
            accept_plain: false,
        })
    }

    /// Keys end with a checksum: six base62 characters of the CRC32 of the
    /// rest of the key (the scheme GitHub uses for its tokens). A mistyped or
    /// made-up key is then refused before any hashing, cache or store work,
    /// and secret scanners can match keys with few false positives.
    ///
    /// ```
    /// use tower_api_keys::key::KeyFormat;
    ///
    /// let format = KeyFormat::default().with_checksum();
    /// let key = format.generate().unwrap();
    /// assert_eq!(key.expose_secret().len(), 4 + 43 + 6);
    /// assert!(format.parse(key.expose_secret()).is_ok());
    /// // A plain key is refused unless the format is told to accept it.
    /// let plain = KeyFormat::default().generate().unwrap();
    /// assert!(format.parse(plain.expose_secret()).is_err());
    /// assert!(format.accept_without_checksum(true).parse(plain.expose_secret()).is_ok());
    /// ```
    #[must_use]
    pub fn with_checksum(mut self) -> Self {
        self.checksum = true;
        self
    }

    /// With [`with_checksum`](Self::with_checksum): whether keys issued
    /// before the checksum was turned on are still accepted (default: no).
    #[must_use]
    pub fn accept_without_checksum(mut self, accept: bool) -> Self {
        self.accept_plain = accept;
        self
    }

    /// Whether new keys carry a checksum.
    pub fn has_checksum(&self) -> bool {
        self.checksum
    }

    /// The configured prefix, without the separator (`bmc`).
    pub fn prefix(&self) -> &str {
        &self.lead[..self.lead.len() - 1]
    }

    /// The prefix with its separator (`bmc_`): what every key starts with.
    pub fn lead(&self) -> &str {
        &self.lead
    }

    /// A regular expression matching exactly the keys this format accepts,
    /// as far as a regular expression can (the checksum's value is not
    /// checked): what a provider registers with a secret scanner such as
    /// GitHub's. For the default format:
    ///
    /// ```text
    /// bmc_[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]
    /// ```
    ///
    /// with `[0-9A-Za-z]{6}` appended for [`with_checksum`](Self::with_checksum)
    /// (made optional by [`accept_without_checksum`](Self::accept_without_checksum)).
    /// The last body character is one of the 16 that carry no bits beyond
    /// the key's 256. Register it with [`SECRET_BOUNDARY`](Self::SECRET_BOUNDARY)
    /// (or the start or end of the text) before and after, so a key inside a
    /// longer base64url string is not matched.
    ///
    /// ```
    /// use tower_api_keys::key::KeyFormat;
    ///
    /// let format = KeyFormat::default().with_checksum();
    /// assert_eq!(
    ///     format.secret_pattern(),
    ///     "bmc_[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048][0-9A-Za-z]{6}"
    /// );
    /// ```
    pub fn secret_pattern(&self) -> String {
        // The prefix is ASCII letters, digits and `_`: nothing to escape.
        let mut pattern = format!(
            "{}[A-Za-z0-9_-]{{{}}}[AEIMQUYcgkosw048]",
            self.lead,
            KEY_BODY_LEN - 1
        );
        match (self.checksum, self.accept_plain) {
            (false, _) => {}
            (true, false) => pattern.push_str("[0-9A-Za-z]{6}"),
            (true, true) => pattern.push_str("(?:[0-9A-Za-z]{6})?"),
        }
        pattern
    }

    /// What must stand before and after a key matched by
    /// [`secret_pattern`](Self::secret_pattern), besides the start or end of
    /// the text: any character that is not of the base64url alphabet.
    pub const SECRET_BOUNDARY: &'static str = "[^A-Za-z0-9_-]";

    /// Generates a new key from 32 bytes of the operating system's CSPRNG.
    pub fn generate(&self) -> Result<SecretKey, RandomSourceError> {
        let mut bytes = Zeroizing::new([0u8; KEY_BYTES]);
        getrandom::fill(bytes.as_mut_slice()).map_err(|e| RandomSourceError(e.to_string()))?;
        let mut key = Zeroizing::new(String::with_capacity(
            self.lead.len() + KEY_BODY_LEN + CHECKSUM_LEN,
        ));
        key.push_str(&self.lead);
        URL_SAFE_NO_PAD.encode_string(bytes.as_slice(), &mut key);
        if self.checksum {
            let checksum = checksum(key.as_bytes());
            key.push_str(std::str::from_utf8(&checksum).unwrap_or_default());
        }
        Ok(SecretKey {
            display_len: self.lead.len() + DISPLAY_BODY_LEN,
            key,
        })
    }

    /// Checks that `token` is a key of this format: the prefix, `_`, then
    /// exactly 43 characters of the base64url alphabet that decode to 32 bytes
    /// (the last character must be canonical). Nothing else is accepted.
    pub fn parse<'a>(&self, token: &'a str) -> Result<ParsedKey<'a>, MalformedKey> {
        self.parse_bytes(token.as_bytes())
    }

    /// [`parse`](Self::parse) for bytes as they come off the wire.
    pub fn parse_bytes<'a>(&self, token: &'a [u8]) -> Result<ParsedKey<'a>, MalformedKey> {
        let body = token
            .strip_prefix(self.lead.as_bytes())
            .ok_or(MalformedKey)?;
        let well_formed = match body.len() {
            KEY_BODY_LEN => (!self.checksum || self.accept_plain) && is_canonical_body(body),
            CHECKED_BODY_LEN if self.checksum => {
                let (random, check) = body.split_at(KEY_BODY_LEN);
                is_canonical_body(random)
                    && checksum(&token[..token.len() - CHECKSUM_LEN]).as_slice() == check
            }
            _ => false,
        };
        if !well_formed {
            return Err(MalformedKey);
        }
        Ok(ParsedKey {
            key: token,
            display_len: self.lead.len() + DISPLAY_BODY_LEN,
        })
    }
}

/// The value of each base64url character, or `INVALID`.
const INVALID: u8 = 0x40;
const BASE64URL_VALUES: [u8; 256] = {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < alphabet.len() {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Whether `body` is what base64url without padding makes of 32 bytes: 43
/// characters of the alphabet, the last of which carries no bits beyond the
/// 256 (its two low bits are zero). This is the check the base64 crate's
/// strict decoder makes, without producing the bytes; it runs on every
/// request.
fn is_canonical_body(body: &[u8]) -> bool {
    let Some((last, _)) = body.split_last() else {
        return false;
    };
    let invalid = body
        .iter()
        .fold(0u8, |acc, b| acc | BASE64URL_VALUES[usize::from(*b)]);
    body.len() == KEY_BODY_LEN
        && invalid & INVALID == 0
        && BASE64URL_VALUES[usize::from(*last)] & 0b11 == 0
}

impl Default for KeyFormat {
    fn default() -> Self {
        Self {
            lead: Arc::from("bmc_"),
            checksum: false,
            accept_plain: false,
        }
    }
}

/// Characters of a checksum.
pub(crate) const CHECKSUM_LEN: usize = 6;
/// A checksummed key's body: the random part and the checksum.
const CHECKED_BODY_LEN: usize = KEY_BODY_LEN + CHECKSUM_LEN;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The CRC32 of `text` in six base62 characters, most significant first
/// (62^6 > 2^32, so every value fits).
fn checksum(text: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut value = crc32fast::hash(text);
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    out
}

impl fmt::Debug for KeyFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFormat")
            .field("prefix", &self.prefix())
            .field("checksum", &self.checksum)
            .field("accept_without_checksum", &self.accept_plain)
            .finish()
    }
}

/// A well-formed key borrowed from a request. Its `Debug` shows only the
/// display prefix.
#[derive(Clone, Copy)]
pub struct ParsedKey<'a> {
    /// ASCII only: the prefix was valid and the body is base64url.
    key: &'a [u8],
    display_len: usize,
}

impl<'a> ParsedKey<'a> {
    /// The whole key. Handle with care: this is the secret.
    pub fn expose_secret(&self) -> &'a str {
        std::str::from_utf8(self.key).unwrap_or_default()
    }

    /// The whole key as bytes.
    pub fn expose_secret_bytes(&self) -> &'a [u8] {
        self.key
    }

    /// The display prefix (`bmc_K7xR2pQm`): safe to log and show.
    pub fn display_prefix(&self) -> &'a str {
        std::str::from_utf8(&self.key[..self.display_len]).unwrap_or_default()
    }
}

impl fmt::Debug for ParsedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ParsedKey({}…)", self.display_prefix())
    }
}

/// A plaintext key, as returned once at creation.
///
/// `Debug` and `Display` show only the display prefix; the memory is zeroed
/// on drop. Use [`SecretKey::expose_secret`] to hand the key to its owner.
///
/// ```
/// let key = tower_api_keys::key::KeyFormat::default().generate().unwrap();
/// let shown = format!("{key} {key:?}");
/// assert!(!shown.contains(key.expose_secret()));
/// ```
pub struct SecretKey {
    key: Zeroizing<String>,
    display_len: usize,
}

impl SecretKey {
    /// The whole key. Show it to its owner once; never log it.
    pub fn expose_secret(&self) -> &str {
        &self.key
    }

    /// The display prefix (`bmc_K7xR2pQm`): safe to log and show.
    pub fn display_prefix(&self) -> &str {
        &self.key[..self.display_len]
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({}…)", self.display_prefix())
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", self.display_prefix())
    }
}

/// The stored form of a key: SHA-256 (or HMAC-SHA-256 with a pepper) of the
/// whole key string. Equality is checked in constant time.
#[derive(Clone, Copy)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// Wraps 32 bytes read back from a store.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Wraps a slice read back from a store; `None` unless it is 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, for stores that keep text.
    pub fn to_hex(&self) -> String {
        use fmt::Write as _;
        self.0.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }
}

impl PartialEq for KeyHash {
    /// Constant time: the words are folded without branches and the result
    /// is decided by `subtle`.
    fn eq(&self, other: &Self) -> bool {
        let mut diff = 0u64;
        for (a, b) in self.0.chunks_exact(8).zip(other.0.chunks_exact(8)) {
            let a = u64::from_ne_bytes(a.try_into().unwrap_or_default());
            let b = u64::from_ne_bytes(b.try_into().unwrap_or_default());
            diff |= a ^ b;
        }
        diff.ct_eq(&0).into()
    }
}

impl Eq for KeyHash {}

impl std::hash::Hash for KeyHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({}…)", &self.to_hex()[..12])
    }
}

/// Turns a key into its [`KeyHash`]: plain SHA-256 by default, or
/// HMAC-SHA-256 keyed with a server-side pepper.
///
/// With a pepper, a stolen database alone is not enough to test guesses
/// offline; every process that checks keys needs the same pepper.
#[derive(Clone)]
pub struct KeyHasher {
    mac: Option<Hmac<Sha256>>,
}

impl KeyHasher {
    /// Plain SHA-256.
    pub fn sha256() -> Self {
        Self { mac: None }
    }

    /// HMAC-SHA-256 keyed with `pepper` (at least 16 bytes).
    pub fn hmac_sha256(pepper: &[u8]) -> Result<Self, WeakPepper> {
        if pepper.len() < 16 {
            return Err(WeakPepper);
        }
        let mac = Hmac::<Sha256>::new_from_slice(pepper).map_err(|_| WeakPepper)?;
        Ok(Self { mac: Some(mac) })
    }

    /// The hash of a key (the whole string, prefix included).
    pub fn hash(&self, key: &str) -> KeyHash {
        self.hash_bytes(key.as_bytes())
    }

    /// [`hash`](Self::hash) of a key's bytes.
    pub fn hash_bytes(&self, key: &[u8]) -> KeyHash {
        match &self.mac {
            None => KeyHash(Sha256::digest(key).into()),
            Some(mac) => {
                let mut mac = mac.clone();
                mac.update(key);
                KeyHash(mac.finalize().into_bytes().into())
            }
        }
    }
}

impl Default for KeyHasher {
    fn default() -> Self {
        Self::sha256()
    }
}

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algorithm = if self.mac.is_some() {
            "hmac-sha256"
        } else {
            "sha256"
        };
        f.debug_struct("KeyHasher")
            .field("algorithm", &algorithm)
            .finish()
    }
}

/// A token that is not a key of the configured format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a well-formed API key")]
pub struct MalformedKey;

/// A prefix that [`KeyFormat::new`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid key prefix {0:?}: use 1 to 32 ASCII letters, digits or '_', not starting or ending with '_'"
)]
pub struct InvalidPrefix(String);

/// A pepper shorter than 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the pepper must be at least 16 bytes")]
pub struct WeakPepper;

/// The operating system's random source failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random source failed: {0}")]
pub struct RandomSourceError(String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let format = KeyFormat::default();
        let key = format.generate().unwrap();
        let s = key.expose_secret();
        assert_eq!(s.len(), 4 + KEY_BODY_LEN);
        assert!(s.starts_with("bmc_"));
        assert!(
            s[4..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(key.display_prefix(), &s[..12]);
        assert_ne!(s, format.generate().unwrap().expose_secret());
    }

    #[test]
    fn parse_is_strict() {
        let format = KeyFormat::default();
        let key = format.generate().unwrap();
        let s = key.expose_secret();
        assert_eq!(format.parse(s).unwrap().display_prefix(), &s[..12]);
        let body = &s[4..];
        for bad in [
            String::new(),
            "bmc_".to_owned(),
            format!("BMC_{body}"),
            format!("xyz_{body}"),
            format!("bmc{body}"),
            format!("bmc__{body}"),
            format!("{s}A"),
            s[..s.len() - 1].to_owned(),
            format!("bmc_{}+", &body[..42]),
            format!("bmc_{}=", &body[..42]),
            format!("bmc_{}é", &body[..41]),
            format!(" {s}"),
        ] {
            assert_eq!(format.parse(&bad).map(|_| ()), Err(MalformedKey), "{bad:?}");
        }
    }

    #[test]
    fn parse_refuses_non_canonical_last_character() {
        let format = KeyFormat::default();
        // 32 zero bytes encode to 42 'A's and a final 'A'; a final 'B' sets
        // bits that do not belong to any byte.
        let canonical = format!("bmc_{}", "A".repeat(43));
        let non_canonical = format!("bmc_{}B", "A".repeat(42));
        assert!(format.parse(&canonical).is_ok());
        assert!(format.parse(&non_canonical).is_err());
    }

    #[test]
    fn checksums_catch_a_changed_character() {
        let format = KeyFormat::default().with_checksum();
        let key = format.generate().unwrap();
        let s = key.expose_secret();
        assert!(format.parse(s).is_ok());
        assert!(s[4 + 43..].bytes().all(|b| b.is_ascii_alphanumeric()));
        // Change each character of the random part and of the checksum in
        // turn: CRC32 catches every single-character change.
        for i in 4..s.len() {
            let mut changed = s.as_bytes().to_vec();
            changed[i] = if changed[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(changed).unwrap();
            assert!(format.parse(&changed).is_err(), "position {i}");
        }
        // Another prefix with the same body fails the checksum too.
        let moved = format!("xyz_{}", &s[4..]);
        let other = KeyFormat::new("xyz").unwrap().with_checksum();
        assert!(other.parse(&moved).is_err());
        // Known value: CRC32("123456789") = 0xCBF43926 = 3421780262.
        assert_eq!(&checksum(b"123456789"), b"3jZRME");
    }

    #[test]
    fn prefixes_are_validated() {
        assert_eq!(KeyFormat::new("sk_live").unwrap().lead(), "sk_live_");
        for bad in ["", "_a", "a_", "a-b", "ü", &"a".repeat(33)] {
            assert!(KeyFormat::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hashes_differ_by_pepper_and_compare_equal_for_the_same_key() {
        let plain = KeyHasher::sha256();
        let peppered = KeyHasher::hmac_sha256(b"0123456789abcdef").unwrap();
        assert_eq!(plain.hash("bmc_x"), plain.hash("bmc_x"));
        assert_ne!(plain.hash("bmc_x"), plain.hash("bmc_y"));
        assert_ne!(plain.hash("bmc_x"), peppered.hash("bmc_x"));
        assert!(KeyHasher::hmac_sha256(b"short").is_err());
        // SHA-256("abc"), the FIPS 180-2 test vector.
        assert_eq!(
            plain.hash("abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn secrets_never_print_whole() {
        let key = KeyFormat::default().generate().unwrap();
        for shown in [format!("{key}"), format!("{key:?}"), format!("{key:#?}")] {
            assert!(!shown.contains(key.expose_secret()));
            assert!(shown.contains(key.display_prefix()));
        }
        let parsed = KeyFormat::default().parse(key.expose_secret()).unwrap();
        assert!(!format!("{parsed:?}").contains(key.expose_secret()));
    }
}
