//! How the layer's costs grow with the work, for `bench/scale.sh`.
//!
//! ```sh
//! cargo run --release -p bench-drivers --bin scale -- hits               # hit cost at 10², 10⁴, 10⁶ cached keys
//! cargo run --release -p bench-drivers --bin scale -- sqlite /tmp/k.db   # the SQL rows on a fresh SQLite file
//! cargo run --release -p bench-drivers --bin scale -- postgres postgres://postgres@127.0.0.1:5432/test
//! cargo run --release -p bench-drivers --bin scale -- fill-sqlite /tmp/k.db 1000000   # a file for start-up timing
//! ```
//!
//! Each measurement prints one line starting `row:` with its figures, and
//! one starting `figure:` (name, x, y) for `bench/plot.py`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use http::HeaderValue;
use tower::{Layer, Service};
use tower_api_keys::key::{KeyHash, KeyHasher};
use tower_api_keys::record::KeyId;
use tower_api_keys::store::{ChangeCursor, KeyStore, LastUsed, PostgresStore, SqliteStore, sqlx};
use tower_api_keys::{ApiKeys, MemoryStore, NewKey};

use bench_drivers::lookups;
use bench_drivers::{Ok200, request};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["hits"] => hits(&runtime, &[100, 10_000, 1_000_000]),
        ["hits", sizes @ ..] => {
            let sizes: Vec<usize> = sizes.iter().map(|s| s.parse()).collect::<Result<_, _>>()?;
            hits(&runtime, &sizes)
        }
        ["sqlite", path] => runtime.block_on(async { sql(SqlStore::sqlite(path).await?).await }),
        ["postgres", url] => runtime.block_on(async { sql(SqlStore::postgres(url).await?).await }),
        ["fill-sqlite", path, n] => runtime.block_on(async {
            let store = SqlStore::sqlite(path).await?;
            let started = Instant::now();
            store.fill(0, n.parse()?).await?;
            println!(
                "filled {n} keys in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }),
        _ => Err("use: hits [N ...] | sqlite PATH | postgres URL | fill-sqlite PATH N".into()),
    }
}

/// A small xorshift: the order of keys, the same every run.
struct Order(u64);

impl Order {
    fn next(&mut self, below: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % below as u64) as usize
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The hit cost with N distinct keys cached, each request a key picked at
/// random among them (the worst case for the CPU's caches), against the same
/// requests to the bare service; and the memory the cached keys take.
fn hits(
    runtime: &tokio::runtime::Runtime,
    sizes: &[usize],
) -> Result<(), Box<dyn std::error::Error>> {
    const REQUESTS: usize = 300_000;
    const ROUNDS: usize = 5;
    let mut first = None;
    for &n in sizes {
        let keys = {
            let _guard = runtime.enter();
            ApiKeys::builder(MemoryStore::new())
                .cache_capacity(n as u64 + 1024)
                .cache_ttl(Duration::from_secs(3600))
                .last_used_interval(Duration::from_secs(3600))
                .max_pending_last_used(n + 1024)
                .build()?
        };
        let started = Instant::now();
        let mut headers = Vec::with_capacity(n);
        for i in 0..n {
            let created = runtime
                .block_on(keys.create(NewKey::new(format!("owner-{}", i % 1000), "scale")))?;
            headers.push(HeaderValue::from_str(&format!(
                "Bearer {}",
                created.secret.expose_secret()
            ))?);
        }
        let created_in = started.elapsed();
        let mut ours = keys.layer().layer(Ok200);
        let mut bare = Ok200;
        let before = lookups::rss_kb().unwrap_or(0);
        // Twice: the first pass loads every key, the second lets the cache
        // finish its bookkeeping; both must answer 200.
        for _ in 0..2 {
            for header in &headers {
                let status = runtime.block_on(ours.call(request(header)))?.status();
                assert_eq!(status, 200, "every key is valid");
            }
        }
        let per_key =
            (lookups::rss_kb().unwrap_or(0).saturating_sub(before) * 1024) as f64 / n as f64;
        let order: Vec<usize> = {
            let mut order = Order(0x9E37_79B9_7F4A_7C15);
            (0..REQUESTS).map(|_| order.next(n)).collect()
        };
        let mut costs = Vec::new();
        for _ in 0..ROUNDS {
            let started = Instant::now();
            for &i in &order {
                let response = runtime.block_on(bare.call(request(&headers[i])))?;
                std::hint::black_box(response);
            }
            let bare_ns = started.elapsed().as_nanos() as f64 / REQUESTS as f64;
            let started = Instant::now();
            for &i in &order {
                let response = runtime.block_on(ours.call(request(&headers[i])))?;
                std::hint::black_box(response);
            }
            let ours_ns = started.elapsed().as_nanos() as f64 / REQUESTS as f64;
            costs.push(ours_ns - bare_ns);
        }
        let cost = median(costs);
        let floor = floor_cost(runtime, &headers, &order);
        let base = *first.get_or_insert(cost);
        println!(
            "row: hit cost with {n} keys cached: {cost:.0} ns over the bare service \
             ({:.2} x the {} -key figure); resident memory {per_key:.0} B per cached key \
             (created in {:.1} s)",
            cost / base,
            sizes[0],
            created_in.as_secs_f64()
        );
        println!(
            "row: floor with {n} keys cached (SHA-256 of the key and one read of a moka cache \
             holding {n} keys, configured like the layer's): {floor:.0} ns; hit / floor {:.2}",
            cost / floor
        );
        println!("figure: hit_ns {n} {cost:.1}");
        println!("figure: floor_ns {n} {floor:.1}");
        println!("figure: bytes_per_key {n} {per_key:.1}");
        drop(ours);
        runtime.block_on(keys.shutdown());
    }
    Ok(())
}

/// The least a hit takes with these keys cached: each request's key hashed
/// and read from a moka cache that holds them all, in the same order, less
/// the same loop that only reads the header.
fn floor_cost(runtime: &tokio::runtime::Runtime, headers: &[HeaderValue], order: &[usize]) -> f64 {
    use futures_util::FutureExt as _;
    let hasher = KeyHasher::sha256();
    // The key a request carries, hashed: the floor's work on each request.
    let hash_of = |header: &HeaderValue| {
        let token = &header.as_bytes()["Bearer ".len()..];
        hasher.hash(std::str::from_utf8(token).unwrap_or(""))
    };
    let cache = moka::future::Cache::builder()
        .max_capacity(headers.len() as u64 + 1024)
        .time_to_live(Duration::from_secs(3600))
        .build_with_hasher(foldhash::fast::RandomState::default());
    for header in headers {
        runtime.block_on(cache.insert(hash_of(header), Arc::new(())));
    }
    for header in headers {
        assert!(runtime.block_on(cache.get(&hash_of(header))).is_some());
    }
    let mut costs = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        for &i in order {
            std::hint::black_box(headers[i].as_bytes());
        }
        let bare = started.elapsed().as_nanos() as f64;
        let started = Instant::now();
        for &i in order {
            let hash = hash_of(&headers[i]);
            let mut read = std::pin::pin!(cache.get(&hash));
            let found = match read.as_mut().now_or_never() {
                Some(found) => found,
                None => runtime.block_on(read),
            };
            std::hint::black_box(found);
        }
        costs.push((started.elapsed().as_nanos() as f64 - bare) / order.len() as f64);
    }
    median(costs)
}

/// The secret of the i-th generated key; its SHA-256 is what is stored.
fn secret(i: usize) -> String {
    format!("bmc_scale_{i:012}")
}

/// A SQL store under measurement.
enum SqlStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl SqlStore {
    /// A store on a new SQLite file at `path`.
    async fn sqlite(path: &str) -> Result<Self, Box<dyn std::error::Error>> {
        let _ = std::fs::remove_file(path);
        let store = SqliteStore::connect(&format!("sqlite:{path}")).await?;
        store.migrate().await?;
        Ok(Self::Sqlite(store))
    }

    /// A store in a fresh schema of its own, dropped at the end of the run:
    /// nothing lands in the database's default schema.
    async fn postgres(url: &str) -> Result<Self, Box<dyn std::error::Error>> {
        let pool = PostgresStore::pool_options().connect(url).await?;
        sqlx::query("DROP SCHEMA IF EXISTS scale_bench CASCADE")
            .execute(&pool)
            .await?;
        let store = PostgresStore::from_pool(pool).in_schema("scale_bench")?;
        store.migrate().await?;
        Ok(Self::Postgres(store))
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "SQLite",
            Self::Postgres(_) => "PostgreSQL",
        }
    }

    fn store(&self) -> &dyn KeyStore {
        match self {
            Self::Sqlite(store) => store,
            Self::Postgres(store) => store,
        }
    }

    /// Fresh planner statistics.
    async fn analyze(&self) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(store) => {
                sqlx::query("ANALYZE").execute(store.pool()).await?;
            }
            Self::Postgres(store) => {
                sqlx::query("ANALYZE").execute(store.pool()).await?;
            }
        }
        Ok(())
    }

    /// Stores keys FROM..TO in batches, each batch one statement in one
    /// transaction, through the stores' own triggers (so the change log
    /// grows by one row per key, as it does in service).
    async fn fill(&self, from: usize, to: usize) -> Result<Vec<KeyId>, Box<dyn std::error::Error>> {
        let hasher = KeyHasher::sha256();
        let now = Utc::now();
        let mut ids = Vec::with_capacity(to - from);
        const BATCH: usize = 5_000;
        let mut start = from;
        while start < to {
            let end = (start + BATCH).min(to);
            let batch: Vec<(KeyId, KeyHash)> = (start..end)
                .map(|i| (KeyId::new(), hasher.hash(&secret(i))))
                .collect();
            match self {
                Self::Postgres(store) => {
                    let pool = store.pool();
                    let ids: Vec<uuid::Uuid> = batch.iter().map(|(id, _)| *id.as_uuid()).collect();
                    let hashes: Vec<Vec<u8>> =
                        batch.iter().map(|(_, h)| h.as_bytes().to_vec()).collect();
                    // The store qualifies its tables with its schema; so does this.
                    sqlx::query(
                    "INSERT INTO scale_bench.api_keys (id, owner, name, display_prefix, key_hash, created_at) \
                     SELECT id, 'owner-' || (ord % 1000), 'scale', 'bmc_scale', hash, $3 \
                     FROM unnest($1::uuid[], $2::bytea[]) WITH ORDINALITY AS t(id, hash, ord)",
                )
                .bind(&ids)
                .bind(&hashes)
                .bind(now)
                .execute(pool)
                .await?;
                }
                Self::Sqlite(store) => {
                    let pool = store.pool();
                    let mut query = sqlx::QueryBuilder::new(
                        "INSERT INTO api_keys (id, owner, name, display_prefix, key_hash, created_at) ",
                    );
                    query.push_values(batch.iter().enumerate(), |mut row, (ord, (id, hash))| {
                        row.push_bind(id.to_string())
                            .push_bind(format!("owner-{}", ord % 1000))
                            .push_bind("scale")
                            .push_bind("bmc_scale")
                            .push_bind(hash.as_bytes().to_vec())
                            .push_bind(now.timestamp_micros());
                    });
                    query.build().execute(pool).await?;
                }
            }
            ids.extend(batch.into_iter().map(|(id, _)| id));
            start = end;
        }
        Ok(ids)
    }
}

/// Mean and 99th percentile, in microseconds, of LOOKUPS lookups of keys
/// picked at random among the first N.
async fn miss_cost(
    store: &dyn KeyStore,
    n: usize,
) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    const LOOKUPS: usize = 5_000;
    let hasher = KeyHasher::sha256();
    let mut order = Order(0xD1B5_4A32_D192_ED03);
    let mut times = Vec::with_capacity(LOOKUPS);
    // Connections opened and statements prepared before anything is timed.
    for _ in 0..500 {
        store
            .find_by_hash(&hasher.hash(&secret(order.next(n))))
            .await?;
    }
    for _ in 0..LOOKUPS {
        let hash = hasher.hash(&secret(order.next(n)));
        let started = Instant::now();
        let found = store.find_by_hash(&hash).await?;
        times.push(started.elapsed().as_secs_f64() * 1e6);
        assert!(found.is_some(), "every key looked up is stored");
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    times.sort_by(f64::total_cmp);
    Ok((mean, times[times.len() * 99 / 100]))
}

/// The mean time of a caught-up follower's read of the change log.
async fn follower_poll(store: &dyn KeyStore) -> Result<(f64, i64), Box<dyn std::error::Error>> {
    let head = store.changes(None, 1).await?.head;
    let started = Instant::now();
    const POLLS: u32 = 200;
    for _ in 0..POLLS {
        let batch = store.changes(Some(head), 256).await?;
        assert!(batch.changes.is_empty(), "nothing changed since the head");
    }
    Ok((
        started.elapsed().as_secs_f64() * 1e6 / f64::from(POLLS),
        head.position(),
    ))
}

async fn sql(which: SqlStore) -> Result<(), Box<dyn std::error::Error>> {
    let name = which.name();
    let store = which.store();

    let small = 1_000;
    let large = 1_000_000;
    let mut ids = which.fill(0, small).await?;
    which.analyze().await?;
    let (small_mean, small_p99) = miss_cost(store, small).await?;

    let started = Instant::now();
    ids.extend(which.fill(small, large).await?);
    let fill_secs = started.elapsed().as_secs_f64();
    which.analyze().await?;
    println!(
        "row: {name}: {} keys stored in {fill_secs:.1} s (batches of 5,000, triggers on)",
        large - small
    );
    let (large_mean, large_p99) = miss_cost(store, large).await?;
    println!(
        "row: {name}: cache miss (find_by_hash) with {small} keys {small_mean:.1} µs mean, \
         {small_p99:.1} µs p99; with {large} keys {large_mean:.1} µs mean, {large_p99:.1} µs p99; \
         ratio {:.2}",
        large_mean / small_mean
    );
    println!(
        "figure: miss_us_{} {small} {small_mean:.2}",
        name.to_lowercase()
    );
    println!(
        "figure: miss_us_{} {large} {large_mean:.2}",
        name.to_lowercase()
    );

    let at = Utc::now();
    let batch: Vec<LastUsed> = ids
        .iter()
        .step_by(ids.len() / 100_000)
        .take(100_000)
        .map(|id| LastUsed { id: *id, at })
        .collect();
    let started = Instant::now();
    store.record_last_used(&batch).await?;
    let batch_ms = started.elapsed().as_secs_f64() * 1e3;
    let started = Instant::now();
    store.record_last_used(&batch).await?;
    let again_ms = started.elapsed().as_secs_f64() * 1e3;
    println!(
        "row: {name}: one last-used batch of {} keys (one statement): {batch_ms:.0} ms; \
         the same batch again (nothing moves forward): {again_ms:.0} ms",
        batch.len()
    );
    let sample = store
        .find_by_id(&batch[batch.len() / 2].id)
        .await?
        .ok_or("a key of the batch is stored")?;
    assert!(sample.last_used_at.is_some(), "the batch was written");

    let (poll_before, head) = follower_poll(store).await?;
    let started = Instant::now();
    let mut pruned = 0;
    loop {
        let gone = store
            .prune_changes(Utc::now() + chrono::Duration::seconds(1), 100_000)
            .await?;
        if gone == 0 {
            break;
        }
        pruned += gone;
    }
    let prune_secs = started.elapsed().as_secs_f64();
    which.analyze().await?;
    let (poll_after, _) = follower_poll(store).await?;
    let tail = store
        .changes(Some(ChangeCursor::from_position(0)), 1)
        .await?
        .tail;
    // PostgreSQL keeps the deleted rows' index entries until a vacuum, and
    // min(seq) steps over them; autovacuum comes by on its own schedule.
    if let SqlStore::Postgres(pg) = &which {
        sqlx::query("VACUUM scale_bench.api_key_changes")
            .execute(pg.pool())
            .await?;
        let (vacuumed, _) = follower_poll(store).await?;
        println!(
            "row: {name}: change follower's read after pruning and a VACUUM: {vacuumed:.1} µs"
        );
    }
    println!(
        "row: {name}: change follower's read when caught up, {head} rows in the log: {poll_before:.1} µs; \
         after pruning {pruned} rows in {prune_secs:.1} s (tail now at {}): {poll_after:.1} µs",
        tail.position()
    );
    if let SqlStore::Postgres(pg) = &which {
        sqlx::query("DROP SCHEMA scale_bench CASCADE")
            .execute(pg.pool())
            .await?;
    }
    Ok(())
}
