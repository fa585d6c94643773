//! The regular expression a provider registers with a secret scanner
//! (`KeyFormat::secret_pattern`, with `KeyFormat::SECRET_BOUNDARY` on each
//! side): it finds every generated key in surrounding text, with and
//! without the checksum, and none of the near misses.

use regex::Regex;
use tower_api_keys::key::KeyFormat;

/// The pattern as registered: a boundary (or the text's edge) on each side.
fn scanner(format: &KeyFormat) -> Regex {
    let boundary = KeyFormat::SECRET_BOUNDARY;
    Regex::new(&format!(
        "(?:^|{boundary})({})(?:{boundary}|$)",
        format.secret_pattern()
    ))
    .unwrap()
}

fn found(scanner: &Regex, text: &str) -> Vec<String> {
    scanner
        .captures_iter(text)
        .map(|c| c[1].to_owned())
        .collect()
}

#[test]
fn generated_keys_are_found_in_text() {
    for format in [
        KeyFormat::default(),
        KeyFormat::default().with_checksum(),
        KeyFormat::new("acme_live").unwrap().with_checksum(),
    ] {
        let scanner = scanner(&format);
        for _ in 0..500 {
            let key = format.generate().unwrap();
            let key = key.expose_secret();
            for text in [
                key.to_owned(),
                format!("API_KEY={key}\n"),
                format!(r#"{{"token": "{key}"}}"#),
                format!("curl -H 'Authorization: Bearer {key}' https://x"),
            ] {
                assert_eq!(found(&scanner, &text), [key], "{format:?} in {text:?}");
            }
        }
    }
}

#[test]
fn near_misses_are_not_matched() {
    let format = KeyFormat::default().with_checksum();
    let scanner = scanner(&format);
    let key = format.generate().unwrap();
    let key = key.expose_secret();
    let plain = KeyFormat::default().generate().unwrap();
    let plain = plain.expose_secret();
    let body = &key[4..];
    let mut near_misses = vec![
        // No checksum where the format requires one.
        plain.to_owned(),
        // A character short, a character long, inside a longer string.
        key[..key.len() - 1].to_owned(),
        format!("{key}A"),
        format!("{key}-"),
        format!("x{key}"),
        format!("_{key}"),
        // Another prefix, or the prefix in another case.
        format!("bmx_{body}"),
        format!("BMC_{body}"),
        format!("bmc-{body}"),
        // A character outside the alphabets: in the body, in the checksum.
        format!("{}+{}", &key[..10], &key[11..]),
        format!("{}-", &key[..key.len() - 1]),
    ];
    // A body whose last character carries bits beyond 256 (not canonical).
    let mut bytes = key.as_bytes().to_vec();
    bytes[4 + 42] = b'B';
    near_misses.push(String::from_utf8(bytes).unwrap());
    for text in &near_misses {
        assert!(found(&scanner, text).is_empty(), "matched {text:?}");
        // The library refuses them too: the pattern is no looser than parse.
        assert!(format.parse(text).is_err(), "{text:?} parses");
    }

    // Accepting keys without the checksum makes it optional.
    let migrating = format.clone().accept_without_checksum(true);
    let scanner = self::scanner(&migrating);
    assert_eq!(found(&scanner, plain), [plain]);
    assert_eq!(found(&scanner, key), [key]);
}

#[test]
fn the_documented_patterns() {
    assert_eq!(
        KeyFormat::default().secret_pattern(),
        "bmc_[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]"
    );
    assert_eq!(
        KeyFormat::default().with_checksum().secret_pattern(),
        "bmc_[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048][0-9A-Za-z]{6}"
    );
}
