//! `--metrics-listen`: the library's figures in Prometheus text format on
//! `GET /metrics`, on a listener of its own (so they are never public on
//! the API's address).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

/// How often histograms are folded into their summaries.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Installs the Prometheus recorder (before any `ApiKeys` is built, so the
/// library registers its figures with it), binds `addr` and serves
/// `/metrics` there until `stop`. Returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    stop: CancellationToken,
) -> Result<SocketAddr, Box<dyn std::error::Error>> {
    let handle = PrometheusBuilder::new().install_recorder()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let upkeep = handle.clone();
    let stopped = stop.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            tokio::select! {
                _ = ticks.tick() => upkeep.run_upkeep(),
                () = stopped.cancelled() => break,
            }
        }
    });
    tokio::spawn(async move {
        let served = axum::serve(listener, router(handle))
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "the metrics listener failed");
        }
    });
    Ok(local)
}

/// `GET /metrics`: the scrape.
pub fn router(handle: PrometheusHandle) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let text = handle.render();
            async move {
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    text,
                )
            }
        }),
    )
}
