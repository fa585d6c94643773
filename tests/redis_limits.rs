//! Rate limits counted in Redis, over real HTTP and a real Redis: instances
//! sharing the server share one allowance per key and per owner; keys
//! without limits never reach Redis; a Redis that stops answering gets the
//! configured policy, and its return needs no restart.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use futures_util::future::join_all;
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use tower_api_keys::limit::{RateLimit, RedisLimits, UncheckedAllowance, WhenUnavailable};
use tower_api_keys::rejection::RejectionReason;
use tower_api_keys::{ApiKeys, ApiKeysBuilder, MemoryStore, NewKey};

use test_support::redis::{OwnRedis, command_calls, redis_url, reset_stats, unique_prefix};
use test_support::serve;

/// A window long enough that nothing refills during a test.
const HOUR: Duration = Duration::from_secs(3600);

struct Instance {
    keys: ApiKeys,
    url: String,
}

/// An instance: its own `ApiKeys`, cache and server, on the shared store.
/// The Redis timeout of the tests that count admissions exactly: long
/// enough that a loaded machine never turns a slow call into a request
/// admitted uncounted (the fail-open default after 100 ms), which would
/// count as a request past the allowance.
const COUNTED: Duration = Duration::from_secs(10);

async fn instance(
    store: &Arc<MemoryStore>,
    redis: RedisLimits,
    configure: impl FnOnce(ApiKeysBuilder) -> ApiKeysBuilder,
) -> Instance {
    let keys = configure(ApiKeys::builder(Arc::clone(store)).redis_rate_limits(redis))
        .build()
        .unwrap();
    let router = Router::new()
        .route("/", get(|| async { "ok" }))
        .route_layer(keys.layer());
    let addr = serve(router).await;
    Instance {
        keys,
        url: format!("http://{addr}/"),
    }
}

async fn status_of(url: &str, key: &str) -> reqwest::Response {
    test_support::get_with_key(url, key).await
}

/// Sends `per_key` requests for each key to each instance, all at once, and
/// returns the responses' statuses and `RateLimit-Policy` headers.
async fn flood(instances: &[Instance], keys: &[String], per_key: usize) -> Vec<(u16, String)> {
    let mut requests = Vec::new();
    for round in 0..per_key {
        for (i, key) in keys.iter().enumerate() {
            let instance = &instances[(round + i) % instances.len()];
            requests.push(async move {
                let response = status_of(&instance.url, key).await;
                let policy = response
                    .headers()
                    .get("ratelimit-policy")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                (response.status().as_u16(), policy)
            });
        }
    }
    join_all(requests).await
}

fn count(results: &[(u16, String)], status: u16) -> usize {
    results.iter().filter(|(s, _)| *s == status).count()
}

async fn shared_key_allowance(instances: usize) {
    let Some(url) = redis_url() else { return };
    const N: u32 = 20;
    let store = Arc::new(MemoryStore::new());
    let limits = RedisLimits::new(&url)
        .unwrap()
        .prefix(unique_prefix("key"))
        .timeout(COUNTED);
    let mut all = Vec::new();
    for _ in 0..instances {
        all.push(instance(&store, limits.clone(), |b| b).await);
    }
    let key = all[0]
        .keys
        .create(NewKey::new("o", "limited").rate_limit(RateLimit::new(N, HOUR)))
        .await
        .unwrap();
    let key = key.secret.expose_secret().to_owned();
    // Every instance would admit N on its own: 8N requests go far past it.
    let results = flood(&all, &[key], 8 * N as usize).await;
    let admitted = count(&results, 200);
    let refused = count(&results, 429);
    assert_eq!(admitted + refused, results.len(), "only 200s and 429s");
    assert!(
        (N as usize..=N as usize + instances).contains(&admitted),
        "{instances} instances admitted {admitted}, allowance {N}"
    );
    assert!(
        results
            .iter()
            .filter(|(s, _)| *s == 429)
            .all(|(_, policy)| policy == &format!("\"key\";q={N};w=3600"))
    );
    let checks: u64 = all
        .iter()
        .map(|i| i.keys.shared_limit_stats().unwrap().checks)
        .sum();
    assert_eq!(checks, results.len() as u64, "one check per request");
}

#[tokio::test]
async fn two_instances_share_one_keys_allowance() {
    shared_key_allowance(2).await;
}

#[tokio::test]
async fn four_instances_share_one_keys_allowance() {
    shared_key_allowance(4).await;
}

#[tokio::test]
async fn an_owners_allowance_is_shared_by_its_keys_across_instances() {
    let Some(url) = redis_url() else { return };
    const N: u32 = 15;
    let store = Arc::new(MemoryStore::new());
    let limits = RedisLimits::new(&url)
        .unwrap()
        .prefix(unique_prefix("owner"))
        .timeout(COUNTED);
    let configure = |b: ApiKeysBuilder| {
        b.owner_rate_limit(RateLimit::new(N, HOUR))
            .owner_rate_limit_for("big", RateLimit::new(1000, HOUR))
    };
    let a = instance(&store, limits.clone(), configure).await;
    let b = instance(&store, limits, configure).await;
    let mut secrets = Vec::new();
    for name in ["one", "two"] {
        let created = a.keys.create(NewKey::new("acct", name)).await.unwrap();
        secrets.push(created.secret.expose_secret().to_owned());
    }
    let other = a.keys.create(NewKey::new("big", "x")).await.unwrap();
    let all = [a, b];
    let results = flood(&all, &secrets, 4 * N as usize).await;
    let admitted = count(&results, 200);
    assert_eq!(admitted + count(&results, 429), results.len());
    assert!(
        (N as usize..=N as usize + 2).contains(&admitted),
        "two keys of one owner on two instances admitted {admitted}, allowance {N}"
    );
    assert!(
        results
            .iter()
            .filter(|(s, _)| *s == 429)
            .all(|(_, policy)| policy == &format!("\"owner\";q={N};w=3600"))
    );
    // The refusal carries Retry-After; another owner is not affected.
    let refused = status_of(&all[1].url, &secrets[0]).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        refused.headers()[RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    for instance in &all {
        let r = status_of(&instance.url, other.secret.expose_secret()).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn a_keys_own_limit_is_checked_before_its_owners_and_counts_nothing_there() {
    let Some(url) = redis_url() else { return };
    let store = Arc::new(MemoryStore::new());
    let prefix = unique_prefix("order");
    let limits = RedisLimits::new(&url)
        .unwrap()
        .prefix(prefix.clone())
        .timeout(COUNTED);
    let a = instance(&store, limits, |b| {
        b.owner_rate_limit(RateLimit::new(5, HOUR))
    })
    .await;
    let small = a
        .keys
        .create(NewKey::new("acct", "small").rate_limit(RateLimit::new(2, HOUR)))
        .await
        .unwrap();
    let other = a.keys.create(NewKey::new("acct", "other")).await.unwrap();
    let small = small.secret.expose_secret();
    let statuses = [
        status_of(&a.url, small).await,
        status_of(&a.url, small).await,
        status_of(&a.url, small).await,
        status_of(&a.url, small).await,
    ];
    let codes: Vec<u16> = statuses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(codes, [200, 200, 429, 429]);
    assert_eq!(
        statuses[2].headers()["ratelimit-policy"],
        "\"key\";q=2;w=3600"
    );
    // The key's refusals took nothing from the owner: three are left.
    for expected in [200, 200, 200, 429] {
        let r = status_of(&a.url, other.secret.expose_secret()).await;
        assert_eq!(r.status().as_u16(), expected);
    }
    let r = status_of(&a.url, other.secret.expose_secret()).await;
    assert_eq!(r.headers()["ratelimit-policy"], "\"owner\";q=5;w=3600");
    // The limited key's entry and the owner's (the other key has no limit
    // of its own), under the prefix, each expiring once its allowance is
    // whole again (within the hour).
    let mut connection = test_support::redis::connect(&url).await.unwrap();
    let names: Vec<String> = ::redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(names.len(), 2, "{names:?}");
    for name in names {
        let ttl: i64 = ::redis::cmd("PTTL")
            .arg(&name)
            .query_async(&mut connection)
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= 3_601_000, "{name}: {ttl}");
    }
}

/// Commands other than those of the test's own connections.
fn limiter_commands(calls: &std::collections::BTreeMap<String, u64>) -> u64 {
    calls
        .iter()
        .filter(|(name, _)| {
            !matches!(
                name.as_str(),
                "info" | "config|resetstat" | "client|setinfo" | "hello"
            )
        })
        .map(|(_, calls)| calls)
        .sum()
}

#[tokio::test]
async fn a_key_without_limits_never_calls_redis_and_a_limited_one_calls_once() {
    let Some(redis) = OwnRedis::start().await else {
        return;
    };
    let store = Arc::new(MemoryStore::new());
    let a = instance(&store, RedisLimits::new(&redis.url()).unwrap(), |b| {
        b.owner_rate_limit_for("limited", RateLimit::new(1000, HOUR))
    })
    .await;
    let free = a.keys.create(NewKey::new("free", "f")).await.unwrap();
    let limited = a.keys.create(NewKey::new("limited", "l")).await.unwrap();
    let (free, limited) = (free.secret.expose_secret(), limited.secret.expose_secret());
    // The limiter's connection and script are set up by its first call.
    assert_eq!(status_of(&a.url, limited).await.status(), StatusCode::OK);
    assert_eq!(status_of(&a.url, free).await.status(), StatusCode::OK);
    reset_stats(&redis.url()).await;
    for _ in 0..50 {
        assert_eq!(status_of(&a.url, free).await.status(), StatusCode::OK);
    }
    let calls = command_calls(&redis.url()).await;
    assert_eq!(
        limiter_commands(&calls),
        0,
        "an unlimited key called Redis: {calls:?}"
    );
    for _ in 0..7 {
        assert_eq!(status_of(&a.url, limited).await.status(), StatusCode::OK);
    }
    let calls = command_calls(&redis.url()).await;
    // One round trip each: the script, whose own commands count apart.
    assert_eq!(calls.get("evalsha"), Some(&7), "{calls:?}");
    assert_eq!(calls.get("eval"), None, "{calls:?}");
    assert_eq!(calls.get("script|load"), None, "{calls:?}");
    assert_eq!(calls.get("time"), Some(&7), "{calls:?}");
}

async fn outage(policy: WhenUnavailable) {
    let Some(mut redis) = OwnRedis::start().await else {
        return;
    };
    const N: u32 = 5;
    let store = Arc::new(MemoryStore::new());
    let limits = RedisLimits::new(&redis.url())
        .unwrap()
        .timeout(Duration::from_millis(200))
        .when_unavailable(policy);
    let a = instance(&store, limits, |b| b.rate_limit(RateLimit::new(N, HOUR))).await;
    let key = a.keys.create(NewKey::new("o", "k")).await.unwrap();
    let key = key.secret.expose_secret();
    for _ in 0..N {
        assert_eq!(status_of(&a.url, key).await.status(), StatusCode::OK);
    }
    assert_eq!(
        status_of(&a.url, key).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );

    // Paused: connections stay open and answers never come, so the
    // timeout decides; then killed: connections are refused.
    let url = a.url.as_str();
    // Under fail open, this instance counts the key itself meanwhile: a
    // fresh allowance of N, then 429.
    let during = |phase: &'static str, first: u32| async move {
        for n in first..first + 3 {
            let r = status_of(url, key).await;
            match policy {
                WhenUnavailable::FailOpen => {
                    let expected = if n < N {
                        StatusCode::OK
                    } else {
                        StatusCode::TOO_MANY_REQUESTS
                    };
                    assert_eq!(r.status(), expected, "fail open, Redis {phase}, {n}");
                }
                _ => {
                    assert_eq!(
                        r.status(),
                        StatusCode::SERVICE_UNAVAILABLE,
                        "fail closed, Redis {phase}"
                    );
                    assert_eq!(r.headers()[RETRY_AFTER], "1");
                    let body: serde_json::Value = r.json().await.unwrap();
                    assert_eq!(body["error"], "temporarily_unavailable");
                }
            }
        }
    };
    redis.signal("STOP");
    during("paused", 0).await;
    redis.signal("CONT");
    redis.kill();
    during("down", 3).await;
    let stats = a.keys.shared_limit_stats().unwrap();
    assert_eq!(stats.failures, 6);
    match policy {
        WhenUnavailable::FailOpen => {
            assert_eq!((stats.admitted_unchecked, stats.refused_unchecked), (5, 1));
        }
        _ => assert_eq!(stats.refused_unavailable, 6),
    }

    // Back, empty: counting resumes without a restart of the instance.
    redis.restart().await;
    let before = a.keys.shared_limit_stats().unwrap();
    let mut statuses = Vec::new();
    for _ in 0..250 {
        let status = status_of(&a.url, key).await.status();
        statuses.push(status.as_u16());
        if status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        statuses.last(),
        Some(&429),
        "counting never resumed: {statuses:?}"
    );
    let allowed: &[u16] = match policy {
        WhenUnavailable::FailOpen => &[200, 429],
        _ => &[200, 429, 503],
    };
    assert!(
        statuses.iter().all(|s| allowed.contains(s)),
        "{policy:?}: {statuses:?}"
    );
    // Of the requests checked in the new Redis, exactly a fresh allowance
    // was admitted, then one refused.
    let after = a.keys.shared_limit_stats().unwrap();
    let checked = (after.checks - before.checks) - (after.failures - before.failures);
    let refused = after.refused - before.refused;
    assert_eq!(
        (checked - refused, refused),
        (u64::from(N), 1),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_failed_redis_fails_open_by_default_and_recovers() {
    assert_eq!(WhenUnavailable::default(), WhenUnavailable::FailOpen);
    outage(WhenUnavailable::FailOpen).await;
}

#[tokio::test]
async fn a_failed_redis_fails_closed_with_503_when_configured_and_recovers() {
    outage(WhenUnavailable::FailClosed).await;
}

#[tokio::test]
async fn an_unreachable_redis_at_start_up_is_no_error_and_the_policy_holds() {
    let Some(mut redis) = OwnRedis::start().await else {
        return;
    };
    // A port where nothing answers any more.
    redis.kill();
    let store = Arc::new(MemoryStore::new());
    let limits = RedisLimits::new(&redis.url())
        .unwrap()
        .when_unavailable(WhenUnavailable::FailClosed);
    let a = instance(&store, limits, |b| b.rate_limit(RateLimit::new(5, HOUR))).await;
    let limited = a.keys.create(NewKey::new("o", "k")).await.unwrap();
    let r = status_of(&a.url, limited.secret.expose_secret()).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let rejection = a
        .keys
        .authenticate(limited.secret.expose_secret())
        .await
        .unwrap_err();
    assert_eq!(rejection.reason(), RejectionReason::RateLimiterUnavailable);
    redis.restart().await;
    let mut recovered = false;
    for _ in 0..250 {
        if status_of(&a.url, limited.secret.expose_secret())
            .await
            .status()
            == StatusCode::OK
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(recovered, "the limiter never connected");
}

#[test]
fn a_malformed_redis_url_is_a_clear_error_without_the_password() {
    for url in [
        "http://127.0.0.1:6379",
        "redis://:hunter2@127.0.0.1:notaport",
        "",
    ] {
        let error = RedisLimits::new(url).unwrap_err().to_string();
        assert!(error.starts_with("invalid Redis URL"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }
    let limits = RedisLimits::new("redis://:hunter2@127.0.0.1:6379").unwrap();
    assert!(!format!("{limits:?}").contains("hunter2"));
}

/// A server that speaks enough RESP to be connected to (`CLIENT` and
/// `SCRIPT` are answered as Redis would) and answers every script call with
/// `reply`, as raw bytes.
async fn lying_redis(reply: &'static [u8]) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut read = [0; 4096];
                loop {
                    let Ok(n) = socket.read(&mut read).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&read[..n]);
                    while let Some((name, used)) = command(&buffer) {
                        buffer.drain(..used);
                        let answer: &[u8] = match name.as_str() {
                            "EVALSHA" | "EVAL" => reply,
                            "SCRIPT" => b"$40\r\n0123456789012345678901234567890123456789\r\n",
                            _ => b"+OK\r\n",
                        };
                        if socket.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    format!("redis://{addr}")
}

/// The name of the first whole command in `buffer` (a RESP array of bulk
/// strings), and how many bytes it takes.
fn command(buffer: &[u8]) -> Option<(String, usize)> {
    fn line(buffer: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let end = buffer[at..].windows(2).position(|w| w == b"\r\n")? + at;
        Some((&buffer[at..end], end + 2))
    }
    let (head, mut at) = line(buffer, 0)?;
    let count: usize = std::str::from_utf8(head.strip_prefix(b"*")?)
        .ok()?
        .parse()
        .ok()?;
    let mut name = None;
    for _ in 0..count {
        let (head, next) = line(buffer, at)?;
        let len: usize = std::str::from_utf8(head.strip_prefix(b"$")?)
            .ok()?
            .parse()
            .ok()?;
        let arg = buffer.get(next..next + len)?;
        name.get_or_insert_with(|| String::from_utf8_lossy(arg).to_uppercase());
        at = next + len + 2;
        if buffer.len() < at {
            return None;
        }
    }
    Some((name?, at))
}

/// A Redis that answers the limiter's script with the wrong types, the
/// wrong shapes, errors, half an answer or nothing: under fail closed, not
/// one request is admitted and nothing panics; each is a 503. Answers of
/// the right shape that refuse, with waits out of range, are 429s.
#[tokio::test]
async fn a_redis_that_answers_garbage_never_admits_under_fail_closed() {
    let panics = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&panics);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        previous(info);
    }));
    let garbage: &[&[u8]] = &[
        b"+OK\r\n",
        b":0\r\n",
        b"$-1\r\n",
        b"*-1\r\n",
        b"*0\r\n",
        b"*1\r\n:0\r\n",
        b"*3\r\n:0\r\n:0\r\n:0\r\n",
        b"*2\r\n$-1\r\n$-1\r\n",
        b"*2\r\n$1\r\n0\r\n$1\r\n0\r\n",
        b"*2\r\n+0\r\n+0\r\n",
        b"*2\r\n,0.5\r\n,0\r\n",
        b"*2\r\n,nan\r\n,nan\r\n",
        b"%1\r\n:0\r\n:0\r\n",
        b"~2\r\n:0\r\n:0\r\n",
        b"*2\r\n#f\r\n#f\r\n",
        b"|1\r\n+ttl\r\n:1\r\n*2\r\n:0\r\n:0\r\n",
        b">2\r\n+message\r\n:0\r\n",
        b"*2\r\n:-1\r\n:0\r\n",
        b"*2\r\n:3\r\n:0\r\n",
        b"*2\r\n:2\r\n:5\r\n",
        b"-ERR boom\r\n",
        b"-NOSCRIPT No matching script\r\n",
        b"\x00\xff\xfe not RESP\r\n",
        b"*2\r\n:0\r\n",
        b"",
    ];
    let refusals: &[&[u8]] = &[
        b"*2\r\n:1\r\n:9223372036854775807\r\n",
        b"*2\r\n:1\r\n:-9223372036854775808\r\n",
    ];
    let store = Arc::new(MemoryStore::new());
    for (reply, expected) in garbage
        .iter()
        .map(|r| (*r, StatusCode::SERVICE_UNAVAILABLE))
        .chain(refusals.iter().map(|r| (*r, StatusCode::TOO_MANY_REQUESTS)))
    {
        let limits = RedisLimits::new(&lying_redis(reply).await)
            .unwrap()
            .timeout(Duration::from_millis(300))
            .when_unavailable(WhenUnavailable::FailClosed);
        let a = instance(&store, limits, |b| b.rate_limit(RateLimit::new(5, HOUR))).await;
        let key = a.keys.create(NewKey::new("o", "k")).await.unwrap();
        for _ in 0..2 {
            let status = status_of(&a.url, key.secret.expose_secret()).await.status();
            assert_eq!(status, expected, "{}", String::from_utf8_lossy(reply));
        }
    }
    assert_eq!(panics.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// Under fail open, a client that makes Redis slow (or waits for it to
/// be) must not get unlimited requests: while it does not answer, each
/// instance counts the key's and the owner's allowances itself, so an
/// outage lets through at most one allowance per instance; past it, 429.
#[tokio::test]
async fn an_outage_under_fail_open_admits_at_most_one_allowance_per_instance() {
    let Some(redis) = OwnRedis::start().await else {
        return;
    };
    const N: u32 = 5;
    const OWNER: u32 = 4;
    let store = Arc::new(MemoryStore::new());
    let limits = RedisLimits::new(&redis.url())
        .unwrap()
        .timeout(Duration::from_millis(200));
    let a = instance(&store, limits, |b| {
        b.rate_limit(RateLimit::new(N, HOUR))
            .owner_rate_limit_for("shared", RateLimit::new(OWNER, HOUR))
    })
    .await;
    let key = a.keys.create(NewKey::new("o", "k")).await.unwrap();
    let key = key.secret.expose_secret().to_owned();
    let mut shared = Vec::new();
    for name in ["one", "two"] {
        let created = a
            .keys
            .create(NewKey::new("shared", name).rate_limit(RateLimit::new(1000, HOUR)))
            .await
            .unwrap();
        shared.push(created.secret.expose_secret().to_owned());
    }
    for _ in 0..N {
        assert_eq!(status_of(&a.url, &key).await.status(), StatusCode::OK);
    }
    assert_eq!(
        status_of(&a.url, &key).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );

    redis.signal("STOP");
    let results = flood(std::slice::from_ref(&a), &[key], 40).await;
    let admitted = count(&results, 200);
    assert_eq!(
        admitted + count(&results, 429),
        results.len(),
        "{results:?}"
    );
    assert!(
        admitted <= N as usize,
        "{admitted} of 40 admitted uncounted"
    );
    // The owner's allowance holds across its keys.
    let results = flood(std::slice::from_ref(&a), &shared, 10).await;
    let admitted = count(&results, 200);
    assert_eq!(
        admitted + count(&results, 429),
        results.len(),
        "{results:?}"
    );
    assert!(
        admitted <= OWNER as usize,
        "{admitted} of 20 admitted uncounted"
    );
    let stats = a.keys.shared_limit_stats().unwrap();
    assert_eq!(stats.admitted_unchecked + stats.refused_unchecked, 60);
    assert!(
        stats.admitted_unchecked <= u64::from(N + OWNER),
        "{stats:?}"
    );
    redis.signal("CONT");
}

/// The allowance fail open counts here is the application's to choose: a
/// fixed share for every key and owner, or none at all (unbounded).
#[tokio::test]
async fn the_allowance_admitted_while_redis_fails_is_configurable() {
    let Some(mut redis) = OwnRedis::start().await else {
        return;
    };
    redis.kill();
    let store = Arc::new(MemoryStore::new());
    for (allowance, admitted) in [
        (UncheckedAllowance::Fixed(RateLimit::new(2, HOUR)), 2),
        (UncheckedAllowance::Unbounded, 10),
        (UncheckedAllowance::Own, 5),
    ] {
        let limits = RedisLimits::new(&redis.url())
            .unwrap()
            .unchecked_allowance(allowance);
        let a = instance(&store, limits, |b| b.rate_limit(RateLimit::new(5, HOUR))).await;
        let key = a.keys.create(NewKey::new("o", "k")).await.unwrap();
        let mut statuses = Vec::new();
        for _ in 0..10 {
            statuses.push(status_of(&a.url, key.secret.expose_secret()).await.status());
        }
        let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        assert_eq!(ok, admitted, "{allowance:?}: {statuses:?}");
        assert!(
            statuses[ok..]
                .iter()
                .all(|s| *s == StatusCode::TOO_MANY_REQUESTS)
        );
        let stats = a.keys.shared_limit_stats().unwrap();
        assert_eq!(stats.refused_unchecked, 10 - admitted as u64);
    }
}

/// Owner ids are the application's text, and the Redis names hold them:
/// an owner named like another's key entry, or with the separators and
/// braces of the names, still counts apart from everyone else.
#[tokio::test]
async fn owners_named_like_keys_or_with_separators_share_nothing_in_redis() {
    let Some(url) = redis_url() else { return };
    let store = Arc::new(MemoryStore::new());
    let prefix = unique_prefix("names");
    let limits = RedisLimits::new(&url)
        .unwrap()
        .prefix(prefix.clone())
        .timeout(COUNTED);
    let a = instance(&store, limits, |b| {
        b.owner_rate_limit(RateLimit::new(2, HOUR))
            .rate_limit(RateLimit::new(100, HOUR))
    })
    .await;
    let first = a.keys.create(NewKey::new("a", "k")).await.unwrap();
    let id = first.record.id;
    let mut owners = vec![
        format!("a}}:key:{id}"),
        format!("a}}:key:{id}}}:owner"),
        "a}:owner".to_owned(),
        "{a}".to_owned(),
        "a:owner".to_owned(),
        "a}".to_owned(),
        "{a".to_owned(),
        format!("{prefix}{{a}}"),
    ];
    let mut secrets = vec![first.secret.expose_secret().to_owned()];
    for owner in &owners {
        let created = a
            .keys
            .create(NewKey::new(owner.as_str(), "k"))
            .await
            .unwrap();
        secrets.push(created.secret.expose_secret().to_owned());
    }
    owners.insert(0, "a".to_owned());
    // Each owner in turn uses up its allowance: none of the others' is touched.
    for (owner, secret) in owners.iter().zip(&secrets) {
        let statuses: Vec<u16> = join_all((0..3).map(|_| status_of(&a.url, secret)))
            .await
            .iter()
            .map(|r| r.status().as_u16())
            .collect();
        let mut sorted = statuses.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [200, 200, 429], "{owner}: {statuses:?}");
    }
    let mut connection = test_support::redis::connect(&url).await.unwrap();
    let names: Vec<String> = ::redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(names.len(), 2 * owners.len(), "{names:?}");
}
