//! One soak from start to end: the server started (or found), the keys
//! made, the clients, the memory sampler, the progress lines and the
//! operator run side by side until the deadline, then the server stopped
//! and the summary printed.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::task::JoinHandle;

use crate::args::Args;
use crate::keys::Key;
use crate::memory::{self, Samples, cpu_secs, load_average, mib, rss_kib};
use crate::population;
use crate::report::{self, Summary};
use crate::server::{LogTally, Operator, ServerProcess};
use crate::stats::Stats;
use crate::traffic::{REQUEST_TIMEOUT, Shared, error_chain, run_client};

/// The whole soak; `Ok(passed)`.
pub(crate) async fn soak(args: Args) -> Result<bool, String> {
    let seed = args.seed();
    let proxy_bin = args.proxy_bin()?;
    // The binary runs from a copy, so a rebuild cannot swap it mid-run.
    let dir = tempfile::Builder::new()
        .prefix("soak-")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    let bin = dir
        .path()
        .join(proxy_bin.file_name().unwrap_or("mcp-proxy".as_ref()));
    std::fs::copy(&proxy_bin, &bin)
        .map_err(|e| format!("cannot copy {}: {e}", proxy_bin.display()))?;
    let logs = Arc::new(Mutex::new(LogTally::default()));

    let (server, base, db, pid) = match &args.url {
        Some(url) => {
            let db = args.db.clone().ok_or("--url needs --db")?;
            (
                None,
                url.trim_end_matches('/').to_owned(),
                db,
                args.server_pid,
            )
        }
        None => {
            let db = format!("sqlite:{}", dir.path().join("keys.db").display());
            let server =
                ServerProcess::start(&bin, &db, &args.server_log, Arc::clone(&logs)).await?;
            let (base, pid) = (server.url.clone(), Some(server.pid));
            (Some(server), base, db, pid)
        }
    };
    if !base.starts_with("http://127.0.0.1:") {
        return Err(format!("{base} is not on 127.0.0.1"));
    }
    let operator = Operator {
        bin: bin.clone(),
        db,
    };
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| e.to_string())?;
    let health = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .map_err(|e| error_chain(&e))?;
    if !health.status().is_success() {
        return Err(format!("{base}/healthz answered {}", health.status()));
    }
    eprintln!("soak: server at {base}; making keys with `keys create` ...");

    let population = population::make(
        &operator,
        &client,
        &base,
        server.as_ref().map(|s| s.bootstrap.as_str()),
    )
    .await?;

    let rss_before = pid.and_then(rss_kib);
    let server_cpu_before = pid.and_then(|p| cpu_secs(&p.to_string()));
    let own_cpu_before = cpu_secs("self");
    let load_before = load_average();
    let duration = Duration::from_secs(args.duration_secs);
    let shared = Arc::new(Shared::new(
        client,
        base,
        population.keys,
        duration,
        args.mcp_percent,
        args.abandon_percent,
        args.max_requests,
    ));
    let epoch = shared.epoch;
    let started_at = Utc::now();
    eprintln!(
        "soak: {} s at concurrency {}, seed {seed}, load average {load_before}",
        args.duration_secs, args.concurrency
    );

    let interrupted = spawn_interrupt(&shared);
    let samples: Samples = Arc::default();
    let sampler = pid.map(|pid| {
        memory::spawn_sampler(
            pid,
            Arc::clone(&samples),
            shared.epoch,
            shared.deadline,
            shared.stop.clone(),
            Duration::from_secs(args.sample_secs),
            args.duration_secs,
        )
    });
    let progress = spawn_progress(Arc::clone(&shared), Arc::clone(&samples), duration);
    let during = spawn_operator(
        Arc::clone(&shared),
        operator.clone(),
        population.revoke_during,
        duration,
    );

    let clients: Vec<_> = (0..args.concurrency)
        .map(|i| {
            let shared = Arc::clone(&shared);
            tokio::spawn(run_client(
                shared,
                seed.wrapping_add(i as u64 * 0x1000_0001),
            ))
        })
        .collect();
    let mut stats = Stats::new();
    // Clients stop at the deadline; each request is cut off at 30 s.
    let hard_stop = epoch + duration + REQUEST_TIMEOUT + Duration::from_secs(30);
    let mut stuck = 0;
    for handle in clients {
        let abort = handle.abort_handle();
        match tokio::time::timeout_at(hard_stop.into(), handle).await {
            Ok(Ok(client_stats)) => stats.merge(&client_stats),
            Ok(Err(error)) => return Err(format!("a client failed: {error}")),
            Err(_) => {
                abort.abort();
                stuck += 1;
            }
        }
    }
    let elapsed = epoch.elapsed();
    shared.stop.cancel();
    let load_after = load_average();
    let cpu_share = |before: Option<f64>, after: Option<f64>| match (before, after) {
        (Some(b), Some(a)) => format!("{:.0}% of a core", (a - b) / elapsed.as_secs_f64() * 100.0),
        _ => "?".to_owned(),
    };
    let server_cpu = cpu_share(
        server_cpu_before,
        pid.and_then(|p| cpu_secs(&p.to_string())),
    );
    let own_cpu = cpu_share(own_cpu_before, cpu_secs("self"));
    let operator_log = match during.await {
        Ok(Ok(log)) => log,
        Ok(Err(error)) => return Err(format!("the operator failed during the run: {error}")),
        Err(error) => return Err(format!("the operator task failed: {error}")),
    };
    let _ = progress.await;
    if let Some(sampler) = sampler {
        let _ = sampler.await;
    }
    let server_alive = match &server {
        Some(_) => pid.and_then(rss_kib).is_some(),
        None => true,
    };
    let listed = operator.run(&["list"]).await.map(|(stdout, _)| stdout);
    let shutdown = match server {
        Some(server) => Some(server.terminate().await),
        None => None,
    };

    let samples = samples.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let logs = logs.lock().unwrap_or_else(|e| e.into_inner());
    let summary = Summary {
        args: &args,
        seed,
        elapsed,
        started_at,
        load_before,
        load_after,
        server_cpu,
        own_cpu,
        stats,
        shared: &shared,
        operator_log,
        rss_before,
        samples,
        logs: &logs,
        listed: listed.ok(),
        shutdown,
        server_alive,
        stuck,
        interrupted: interrupted.load(Relaxed),
    };
    Ok(report::print(&summary))
}

/// Ctrl-C or SIGTERM ends the run early (the summary still prints, and the
/// server is stopped); the flag says whether that happened.
fn spawn_interrupt(shared: &Shared) -> Arc<AtomicBool> {
    let interrupted = Arc::new(AtomicBool::new(false));
    let (stop, flag) = (shared.stop.clone(), Arc::clone(&interrupted));
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term = async {
            match term.as_mut() {
                Some(term) => {
                    term.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = term => {}
            () = stop.cancelled() => return,
        }
        flag.store(true, Relaxed);
        stop.cancel();
    });
    interrupted
}

/// A progress line on stderr every 10 s until the run ends.
fn spawn_progress(shared: Arc<Shared>, samples: Samples, duration: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        tick.tick().await;
        for _ in 0..(duration.as_secs() / 10 + 1) {
            tokio::select! {
                _ = tick.tick() => {}
                () = shared.stop.cancelled() => break,
            }
            if Instant::now() >= shared.deadline {
                break;
            }
            let rss = samples
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .last()
                .map_or_else(|| "-".into(), |(_, kib)| format!("{:.1} MiB", mib(*kib)));
            let requests = shared.requests.load(Relaxed);
            eprintln!(
                "[{:5.0} s] {requests} requests ({:.0}/s), wrongly accepted {}, 5xx {}, wrongly refused {}, transport errors {}, server RSS {rss}, load {}",
                shared.since_start(),
                requests as f64 / shared.since_start(),
                shared.wrongly_accepted.load(Relaxed),
                shared.server_errors.load(Relaxed),
                shared.wrongly_refused.load(Relaxed),
                shared.transport_errors.load(Relaxed),
                load_average(),
            );
        }
    })
}

/// The operator during the run: at 25%, 50% and 75%, revokes two of
/// `revoke_during` and creates a key that joins the valid pool. What it did,
/// for the report.
fn spawn_operator(
    shared: Arc<Shared>,
    operator: Operator,
    revoke_during: Vec<Arc<Key>>,
    duration: Duration,
) -> JoinHandle<Result<Vec<String>, String>> {
    tokio::spawn(async move {
        let mut log = Vec::new();
        for (step, pair) in revoke_during.chunks(2).enumerate() {
            let at = duration.mul_f64(0.25 * (step + 1) as f64);
            tokio::select! {
                () = tokio::time::sleep_until((shared.epoch + at).into()) => {}
                () = shared.stop.cancelled() => break,
            }
            for key in pair {
                let took = operator.revoke(key).await?;
                log.push(format!(
                    "revoked {} at +{:.1} s ({} ms)",
                    key.name,
                    shared.since_start() - took.as_secs_f64(),
                    took.as_millis()
                ));
            }
            let name = format!("soak-created-during-{step}");
            let key = operator.create(&name, &[]).await?;
            log.push(format!("created {name} at +{:.1} s", shared.since_start()));
            shared.keys.add_valid(Arc::new(key));
        }
        Ok(log)
    })
}
