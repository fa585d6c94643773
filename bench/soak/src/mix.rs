//! The request mix: about half with valid keys, the rest unknown,
//! malformed, expiring and revoked; each request knows what it should get.

use std::sync::Arc;

use reqwest::header::{HeaderName, HeaderValue};
use tower_api_keys::key::KeyFormat;

use crate::keys::{Class, Key, Keys};

/// One request to send: its shape and what it should get.
#[derive(Debug)]
pub(crate) struct Shot {
    pub(crate) kind: &'static str,
    pub(crate) class: Class,
    pub(crate) key: Option<Arc<Key>>,
    pub(crate) authorization: Vec<HeaderValue>,
    pub(crate) other_header: Option<(HeaderName, HeaderValue)>,
    pub(crate) query: Option<String>,
    /// The exact refusal of a malformed or unknown request.
    pub(crate) status: Option<u16>,
}

impl Shot {
    /// The `DELETE /mcp` that closes a session opened with `key`, sent with
    /// the same key, as a client ending its session.
    pub(crate) fn close(key: Arc<Key>) -> Self {
        Shot {
            kind: "Bearer",
            class: Class::Valid,
            authorization: vec![value(&format!("Bearer {}", key.secret))],
            key: Some(key),
            other_header: None,
            query: None,
            status: None,
        }
    }
}

fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("a valid header value")
}

/// The next request of the mix: about half with valid keys, the rest
/// unknown, malformed, expiring and revoked.
pub(crate) fn next_shot(rng: &mut fastrand::Rng, keys: &Keys) -> Shot {
    let pick = rng.usize(..100);
    if pick < 50 {
        let key = keys.pick_valid(rng);
        with_key(rng, key)
    } else if pick < 62 {
        let (kind, secret) = if chance(rng, 50) {
            let index = rng.usize(..keys.unknown.len());
            ("unknown key (repeated)", keys.unknown[index].clone())
        } else {
            let fresh = KeyFormat::default()
                .generate()
                .expect("the OS random source");
            ("unknown key (fresh)", fresh.expose_secret().to_owned())
        };
        Shot {
            kind,
            class: Class::Unknown,
            key: None,
            authorization: vec![value(&format!("Bearer {secret}"))],
            other_header: None,
            query: None,
            status: Some(401),
        }
    } else if pick < 80 {
        let key = keys.pick_valid(rng);
        malformed(rng, &key.secret)
    } else if pick < 90 {
        let key = Arc::clone(&keys.expiring[rng.usize(..keys.expiring.len())]);
        with_key(rng, key)
    } else {
        let key = Arc::clone(&keys.revoked[rng.usize(..keys.revoked.len())]);
        with_key(rng, key)
    }
}

/// True `percent` times in a hundred.
pub(crate) fn chance(rng: &mut fastrand::Rng, percent: u32) -> bool {
    rng.u32(..100) < percent
}

/// A request with `key` in one of the accepted shapes.
fn with_key(rng: &mut fastrand::Rng, key: Arc<Key>) -> Shot {
    let secret = &key.secret;
    let (kind, authorization, query) = match rng.usize(..10) {
        0 => ("lowercase scheme", format!("bearer {secret}"), None),
        1 => ("several spaces", format!("Bearer   {secret}"), None),
        2 => (
            "ordinary query",
            format!("Bearer {secret}"),
            Some("page=2&sort=name".to_owned()),
        ),
        _ => ("Bearer", format!("Bearer {secret}"), None),
    };
    Shot {
        kind,
        class: Class::Valid,
        key: Some(key),
        authorization: vec![value(&authorization)],
        other_header: None,
        query,
        status: None,
    }
}

/// A request the contract refuses, built around a real (valid) `key`.
fn malformed(rng: &mut fastrand::Rng, key: &str) -> Shot {
    let body = &key[4..];
    let bearer = |token: &str| value(&format!("Bearer {token}"));
    let mut other_header = None;
    let mut query = None;
    let (kind, authorization, status): (&'static str, Vec<HeaderValue>, u16) = match rng.usize(..20)
    {
        0 => ("no Authorization", vec![], 401),
        1 => ("Basic scheme", vec![value("Basic dXNlcjpwYXNz")], 401),
        2 => ("Token scheme", vec![value(&format!("Token {key}"))], 401),
        3 => ("key without a scheme", vec![value(key)], 401),
        4 => {
            other_header = Some((HeaderName::from_static("x-api-key"), value(key)));
            ("key in X-Api-Key only", vec![], 401)
        }
        5 => ("Bearer alone", vec![value("Bearer")], 400),
        6 => (
            "two Authorization headers",
            vec![bearer(key), bearer(key)],
            400,
        ),
        7 => (
            "a space inside the token",
            vec![bearer(&format!("{} {}", &key[..20], &key[20..]))],
            400,
        ),
        8 => (
            "a trailing second token",
            vec![bearer(&format!("{key} extra"))],
            400,
        ),
        9 => (
            "a '!' outside b64token",
            vec![bearer(&format!("{}!", &key[..46]))],
            400,
        ),
        10 => (
            "raw high bytes",
            vec![HeaderValue::from_bytes(b"Bearer bmc_\xff\xfe\x80").expect("obs-text")],
            400,
        ),
        11 => ("one character short", vec![bearer(&key[..46])], 401),
        12 => ("one character long", vec![bearer(&format!("{key}A"))], 401),
        13 => (
            "'+' from the other alphabet",
            vec![bearer(&format!("bmc_{}+", &body[..42]))],
            401,
        ),
        14 => {
            let last = if body.ends_with('B') { 'C' } else { 'B' };
            (
                "non-canonical last character",
                vec![bearer(&format!("bmc_{}{last}", &body[..42]))],
                401,
            )
        }
        15 => ("another prefix", vec![bearer(&format!("sk_{body}"))], 401),
        16 => {
            query = Some(format!("access_token={key}"));
            ("key in ?access_token=", vec![], 400)
        }
        17 => {
            query = Some(format!("api_key={key}"));
            (
                "key in ?api_key= and a valid header",
                vec![bearer(key)],
                400,
            )
        }
        18 => (
            "a 5 KiB Authorization header",
            vec![bearer(&"a".repeat(5 * 1024))],
            431,
        ),
        _ => {
            query = Some(format!("q={}", "a".repeat(9000)));
            ("a URI longer than 8 KiB", vec![bearer(key)], 414)
        }
    };
    Shot {
        kind,
        class: Class::Malformed,
        key: None,
        authorization,
        other_header,
        query,
        status: Some(status),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::RwLock;

    use super::*;

    fn key(name: &str, last: char) -> Arc<Key> {
        let secret = format!("bmc_{}{last}", "Q".repeat(42));
        Arc::new(Key::new(name.into(), "-".into(), secret))
    }

    fn keys() -> Keys {
        Keys {
            valid: RwLock::new(vec![key("valid", 'A'), key("valid-2", 'B')]),
            expiring: vec![key("expiring", 'E')],
            revoked: vec![key("revoked", 'R')],
            unknown: vec![format!("bmc_{}", "U".repeat(43))],
        }
    }

    /// The class of a shot, telling the expiring and revoked keys apart
    /// (their shots are sent as valid, and classed by the key's state).
    fn share(shot: &Shot) -> &'static str {
        match (shot.class, shot.key.as_ref().map(|k| k.name.as_str())) {
            (Class::Valid, Some("expiring")) => "expiring",
            (Class::Valid, Some("revoked")) => "revoked",
            (class, _) => class.name(),
        }
    }

    #[test]
    fn the_mix_keeps_its_shares() {
        let keys = keys();
        let mut rng = fastrand::Rng::with_seed(7);
        let mut counts = BTreeMap::<&str, u32>::new();
        let n = 20_000;
        for _ in 0..n {
            *counts
                .entry(share(&next_shot(&mut rng, &keys)))
                .or_default() += 1;
        }
        for (what, percent) in [
            ("valid", 50),
            ("unknown", 12),
            ("malformed", 18),
            ("expiring", 10),
            ("revoked", 10),
        ] {
            let got = f64::from(counts[what]) * 100.0 / f64::from(n);
            assert!(
                (got - f64::from(percent)).abs() < 1.5,
                "{what}: {got:.1}%, wanted {percent}%"
            );
        }
        assert_eq!(counts.values().sum::<u32>(), n);
    }

    #[test]
    fn the_same_seed_gives_the_same_mix() {
        let keys = keys();
        let kinds = |seed| {
            let mut rng = fastrand::Rng::with_seed(seed);
            (0..200)
                .map(|_| next_shot(&mut rng, &keys).kind)
                .collect::<Vec<_>>()
        };
        assert_eq!(kinds(42), kinds(42));
        assert_ne!(kinds(42), kinds(43));
    }

    #[test]
    fn every_malformed_shape_is_sent_with_its_refusal_and_no_key() {
        let key = key("valid", 'B');
        let mut rng = fastrand::Rng::with_seed(1);
        let mut kinds = BTreeSet::new();
        for _ in 0..2_000 {
            let shot = malformed(&mut rng, &key.secret);
            assert_eq!(shot.class, Class::Malformed);
            assert!(shot.key.is_none());
            let status = shot.status.unwrap();
            assert!([400, 401, 414, 431].contains(&status), "{}", shot.kind);
            kinds.insert(shot.kind);
            if shot.kind == "non-canonical last character" {
                let header = shot.authorization[0].to_str().unwrap();
                assert!(header.ends_with('C') && header.len() == "Bearer ".len() + 47);
            }
        }
        assert_eq!(kinds.len(), 20);
    }

    #[test]
    fn a_session_is_closed_with_the_key_that_opened_it() {
        let key = key("valid", 'A');
        let close = Shot::close(Arc::clone(&key));
        assert_eq!(close.class, Class::Valid);
        assert_eq!(
            close.authorization[0].to_str().unwrap(),
            format!("Bearer {}", key.secret)
        );
        assert!(close.status.is_none() && close.query.is_none());
    }

    #[test]
    fn chance_is_never_for_zero_and_always_for_a_hundred() {
        let mut rng = fastrand::Rng::with_seed(3);
        assert!((0..1000).all(|_| !chance(&mut rng, 0)));
        assert!((0..1000).all(|_| chance(&mut rng, 100)));
    }
}
