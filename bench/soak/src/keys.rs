//! What the driver knows of each key, and the class of a request sent with
//! it: whether it must pass, must be refused, or may fairly be either.

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, OnceLock, RwLock};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

/// After a revocation command returns, the server has this long to refuse
/// the key (its cache follows the change log every 500 ms).
pub(crate) const REVOCATION_GRACE: TimeDelta = TimeDelta::seconds(1);
/// The finest step of a stored expiry (microseconds); the system clock is
/// finer, so from the expiry instant plus this a key can no longer pass.
pub(crate) const EXPIRY_RESOLUTION: TimeDelta = TimeDelta::microseconds(1);

/// A key the driver made, and what it knows of its state.
#[derive(Debug)]
pub(crate) struct Key {
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) secret: String,
    /// From here a refusal is acceptable: the key may have expired.
    pub(crate) expiry_from: Option<DateTime<Utc>>,
    /// From here a 2xx is wrong: the key has surely expired.
    pub(crate) expired_from: Option<DateTime<Utc>>,
    pub(crate) revoke_started: OnceLock<DateTime<Utc>>,
    pub(crate) revoke_returned: OnceLock<DateTime<Utc>>,
    /// When the last request answered 2xx was sent (µs since the epoch).
    pub(crate) last_accepted_sent: AtomicI64,
}

impl Key {
    pub(crate) fn new(name: String, id: String, secret: String) -> Self {
        Self {
            name,
            id,
            secret,
            expiry_from: None,
            expired_from: None,
            revoke_started: OnceLock::new(),
            revoke_returned: OnceLock::new(),
            last_accepted_sent: AtomicI64::new(i64::MIN),
        }
    }

    /// The class of a request sent with this key at `at`.
    pub(crate) fn class_at(&self, at: DateTime<Utc>) -> Class {
        if let Some(returned) = self.revoke_returned.get() {
            if at >= *returned + REVOCATION_GRACE {
                return Class::Revoked;
            }
            return Class::Revoking;
        }
        if self.revoke_started.get().is_some_and(|s| at >= *s) {
            return Class::Revoking;
        }
        if self.expired_from.is_some_and(|t| at >= t) {
            return Class::Expired;
        }
        if self.expiry_from.is_some_and(|t| at >= t) {
            return Class::AtExpiry;
        }
        Class::Valid
    }

    /// A valid request whose answer came after a revocation began or the
    /// expiry drew near may fairly have been either.
    pub(crate) fn settle(&self, class: Class, received: DateTime<Utc>) -> Class {
        if class != Class::Valid {
            return class;
        }
        if self.revoke_started.get().is_some_and(|s| *s <= received) {
            Class::Revoking
        } else if self.expiry_from.is_some_and(|t| t <= received) {
            Class::AtExpiry
        } else {
            Class::Valid
        }
    }

    /// The key and the instants the driver noted, for an incident.
    pub(crate) fn describe(&self) -> String {
        let at = |t: Option<&DateTime<Utc>>| {
            t.map_or_else(
                || "-".to_owned(),
                |t| t.to_rfc3339_opts(SecondsFormat::Micros, true),
            )
        };
        format!(
            "key {} (id {}): revoke started {}, returned {}, expires from {}",
            self.name,
            self.id,
            at(self.revoke_started.get()),
            at(self.revoke_returned.get()),
            at(self.expired_from.as_ref()),
        )
    }
}

/// Whether `text` has the shape of a key the proxy issues.
pub(crate) fn is_key(text: &str) -> bool {
    text.starts_with("bmc_") && text.len() == 47
}

/// The keys the clients use.
#[derive(Debug, Default)]
pub(crate) struct Keys {
    /// Valid at the start; some are revoked during the run, and keys created
    /// during the run join.
    pub(crate) valid: RwLock<Vec<Arc<Key>>>,
    /// Expiring a few seconds into the run.
    pub(crate) expiring: Vec<Arc<Key>>,
    /// Revoked before the run.
    pub(crate) revoked: Vec<Arc<Key>>,
    /// Well-formed, never issued (a flood of the same bad keys).
    pub(crate) unknown: Vec<String>,
}

impl Keys {
    pub(crate) fn pick_valid(&self, rng: &mut fastrand::Rng) -> Arc<Key> {
        let valid = self.valid.read().unwrap_or_else(|e| e.into_inner());
        Arc::clone(&valid[rng.usize(..valid.len())])
    }

    /// Adds a key created during the run to the valid pool.
    pub(crate) fn add_valid(&self, key: Arc<Key>) {
        self.valid
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(key);
    }

    /// The keys whose last 2xx the report gives: the valid ones revoked
    /// during the run, then the expiring ones, then those revoked before it.
    pub(crate) fn revoked_or_expiring(&self) -> Vec<Arc<Key>> {
        let mut keys: Vec<Arc<Key>> = self
            .valid
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|k| k.revoke_returned.get().is_some())
            .cloned()
            .collect();
        keys.extend(self.expiring.iter().cloned());
        keys.extend(self.revoked.iter().cloned());
        keys
    }
}

/// What the driver expects of a request, known when it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// An active key: must get a 2xx.
    Valid,
    /// A well-formed key never issued: must be refused.
    Unknown,
    /// A token or request shape the contract refuses: must be refused.
    Malformed,
    /// Past its expiry: must be refused.
    Expired,
    /// Revoked at least [`REVOCATION_GRACE`] ago: must be refused.
    Revoked,
    /// Between the start of a revocation and the end of its grace: either.
    Revoking,
    /// Answered across the expiry instant: either.
    AtExpiry,
}

impl Class {
    /// Every class, in the order of the report's table.
    pub(crate) const ALL: [Class; 7] = [
        Class::Valid,
        Class::Unknown,
        Class::Malformed,
        Class::Expired,
        Class::Revoked,
        Class::Revoking,
        Class::AtExpiry,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Class::Valid => "valid",
            Class::Unknown => "unknown",
            Class::Malformed => "malformed",
            Class::Expired => "expired",
            Class::Revoked => "revoked",
            Class::Revoking => "revoking (grace)",
            Class::AtExpiry => "at expiry (edge)",
        }
    }

    /// Its place in [`Class::ALL`].
    pub(crate) fn index(self) -> usize {
        Class::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }

    pub(crate) fn must_refuse(self) -> bool {
        matches!(
            self,
            Class::Unknown | Class::Malformed | Class::Expired | Class::Revoked
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn key() -> Key {
        Key::new("k".into(), "id".into(), format!("bmc_{}", "A".repeat(43)))
    }

    #[test]
    fn an_expiring_key_is_valid_then_at_its_edge_then_expired() {
        let mut key = key();
        key.expiry_from = Some(t(10));
        key.expired_from = Some(t(10) + EXPIRY_RESOLUTION);
        assert_eq!(key.class_at(t(9)), Class::Valid);
        assert_eq!(key.class_at(t(10)), Class::AtExpiry);
        assert_eq!(key.class_at(t(10) + EXPIRY_RESOLUTION), Class::Expired);
        assert_eq!(key.class_at(t(11)), Class::Expired);
        // Sent before the edge, answered after it: either answer is fair.
        assert_eq!(key.settle(Class::Valid, t(9)), Class::Valid);
        assert_eq!(key.settle(Class::Valid, t(10)), Class::AtExpiry);
    }

    #[test]
    fn a_revoked_key_has_a_grace_from_the_start_of_its_command() {
        let key = key();
        key.revoke_started.set(t(5)).unwrap();
        assert_eq!(key.class_at(t(4)), Class::Valid);
        assert_eq!(key.class_at(t(5)), Class::Revoking);
        assert_eq!(key.settle(Class::Valid, t(5)), Class::Revoking);
        key.revoke_returned.set(t(6)).unwrap();
        assert_eq!(key.class_at(t(6)), Class::Revoking);
        assert_eq!(key.class_at(t(6) + REVOCATION_GRACE), Class::Revoked);
        assert!(Class::Revoked.must_refuse() && !Class::Revoking.must_refuse());
        // A class other than valid is never softened.
        assert_eq!(key.settle(Class::Revoked, t(9)), Class::Revoked);
    }

    #[test]
    fn classes_know_their_place_in_the_table() {
        for (i, class) in Class::ALL.iter().enumerate() {
            assert_eq!(class.index(), i);
        }
        assert!(is_key(&key().secret));
        assert!(!is_key("bmc_short"));
    }
}
