//! The keys of the run, made before it as an operator would: valid ones
//! (some to be revoked during the run), ones revoked before it, ones that
//! expire a few seconds into it, and unknown ones never issued.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use tower_api_keys::key::KeyFormat;

use crate::keys::{EXPIRY_RESOLUTION, Key, Keys, REVOCATION_GRACE};
use crate::server::Operator;
use crate::traffic::error_chain;

/// Valid keys from `keys create`, besides the bootstrap key.
const VALID: usize = 14;
/// Valid keys revoked two at a time at 25%, 50% and 75% of the run.
const REVOKED_DURING: usize = 6;
/// Keys revoked before the run.
const REVOKED_BEFORE: usize = 5;
/// Keys made with `--expires-in`, expiring this many seconds after.
const EXPIRES_IN_SECS: [i64; 2] = [5, 8];
/// Keys made with `--expires-at`, this many seconds ahead (whole seconds).
const EXPIRES_AT_SECS: [i64; 3] = [11, 14, 17];
/// Well-formed keys never issued, sent again and again.
const UNKNOWN: usize = 64;
/// How long a new key may take to pass.
const NEW_KEY_WITHIN: Duration = Duration::from_secs(2);

/// The keys, and those of the valid pool the operator revokes during the
/// run.
#[derive(Debug)]
pub(crate) struct Population {
    pub(crate) keys: Keys,
    pub(crate) revoke_during: Vec<Arc<Key>>,
}

/// Makes every key with `operator`, and sends each once to the server at
/// `base` so it has it cached before it is revoked or expires; returns once
/// every revocation made here is past its grace. `bootstrap` is the key the
/// server printed, when the driver started it.
pub(crate) async fn make(
    operator: &Operator,
    client: &reqwest::Client,
    base: &str,
    bootstrap: Option<&str>,
) -> Result<Population, String> {
    let mut valid = Vec::new();
    if let Some(bootstrap) = bootstrap {
        valid.push(Arc::new(Key::new(
            "bootstrap".into(),
            "-".into(),
            bootstrap.to_owned(),
        )));
    }
    for i in 0..VALID {
        valid.push(Arc::new(
            operator.create(&format!("soak-valid-{i:02}"), &[]).await?,
        ));
    }
    let mut revoke_during = Vec::new();
    for i in 0..REVOKED_DURING {
        let key = Arc::new(
            operator
                .create(&format!("soak-revoke-during-{i}"), &[])
                .await?,
        );
        revoke_during.push(Arc::clone(&key));
        valid.push(key);
    }
    let mut revoked = Vec::new();
    for i in 0..REVOKED_BEFORE {
        revoked.push(Arc::new(
            operator
                .create(
                    &format!("soak-revoked-before-{i}"),
                    &["--scope", "projects:read", "--scope", "mcp"],
                )
                .await?,
        ));
    }
    for key in valid.iter().chain(&revoked) {
        wait_status(client, base, &key.secret, 200, NEW_KEY_WITHIN)
            .await
            .map_err(|e| format!("new key {}: {e}", key.name))?;
    }
    for key in &revoked {
        operator.revoke(key).await?;
    }
    // Expiring keys, made last: two with --expires-in (the instant is known
    // to within the command's run), three with --expires-at.
    let mut expiring = Vec::new();
    for (i, secs) in EXPIRES_IN_SECS.into_iter().enumerate() {
        let before = Utc::now();
        let mut key = operator
            .create(
                &format!("soak-expires-in-{i}"),
                &["--expires-in", &format!("{secs}s")],
            )
            .await?;
        let after = Utc::now();
        key.expiry_from = Some(before + TimeDelta::seconds(secs) - EXPIRY_RESOLUTION);
        key.expired_from = Some(after + TimeDelta::seconds(secs) + EXPIRY_RESOLUTION);
        expiring.push(Arc::new(key));
    }
    for (i, secs) in EXPIRES_AT_SECS.into_iter().enumerate() {
        let at = Utc::now() + TimeDelta::seconds(secs);
        let at = DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at);
        let mut key = operator
            .create(
                &format!("soak-expires-at-{i}"),
                &[
                    "--expires-at",
                    &at.to_rfc3339_opts(SecondsFormat::Secs, true),
                ],
            )
            .await?;
        key.expiry_from = Some(at);
        key.expired_from = Some(at + EXPIRY_RESOLUTION);
        expiring.push(Arc::new(key));
    }
    for key in &expiring {
        wait_status(client, base, &key.secret, 200, NEW_KEY_WITHIN)
            .await
            .map_err(|e| format!("new key {}: {e}", key.name))?;
    }
    // The run starts once every pre-run revocation is past its grace.
    if let Some(last) = revoked.iter().filter_map(|k| k.revoke_returned.get()).max() {
        let wait = (*last + REVOCATION_GRACE - Utc::now())
            .to_std()
            .unwrap_or_default();
        tokio::time::sleep(wait + Duration::from_millis(10)).await;
    }
    let unknown = (0..UNKNOWN)
        .map(|_| {
            KeyFormat::default()
                .generate()
                .map(|k| k.expose_secret().to_owned())
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Population {
        keys: Keys {
            valid: RwLock::new(valid),
            expiring,
            revoked,
            unknown,
        },
        revoke_during,
    })
}

/// Sends `key` to the server until it answers `want` (at most `within`).
async fn wait_status(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    want: u16,
    within: Duration,
) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let status = client
            .get(format!("{base}/api/v2/projects"))
            .bearer_auth(key)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| error_chain(&e))?;
        if status == want {
            return Ok(());
        }
        if start.elapsed() > within {
            return Err(format!("still {status} after {within:?}, wanted {want}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
