//! Binding, routing and stopping.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::{MockConfig, Provider, CXONE_ACCESS_KEY_TOKEN_PATH};
use crate::execute;
use crate::respond;
use crate::state::{Recorded, Shared};
use crate::token;

/// A running mock server; dropping it stops the server task.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    state: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

fn router(state: Arc<Shared>) -> Router {
    let provider = state.config.provider;
    let common = Router::new()
        .route("/__mock/recorded", get(recorded))
        .route("/healthz", get(|| async { "ok" }));
    let routes = match provider {
        Provider::Tutorial => common
            .route(provider.token_path(), post(token::token))
            .route("/api/v2/data-actions/{id}/execute", post(execute::tutorial))
            .fallback(execute::fallback),
        Provider::Genesys => common
            .route(provider.token_path(), post(token::token))
            .route(
                "/api/v2/integrations/actions/{id}/execute",
                post(execute::genesys_execute),
            )
            .route(
                "/api/v2/integrations/actions/{id}/test",
                post(execute::genesys_test),
            )
            .fallback(execute::fallback)
            .layer(middleware::from_fn(genesys_correlation)),
        Provider::Cxone => common
            .route(provider.token_path(), post(token::token))
            .route(CXONE_ACCESS_KEY_TOKEN_PATH, post(token::access_key_token))
            .route(
                "/.well-known/openid-configuration",
                get(token::openid_configuration),
            )
            .route(
                "/.well-known/cxone-configuration",
                get(token::cxone_configuration),
            )
            .fallback(execute::cxone_fallback),
    };
    routes.with_state(state)
}

/// Every Genesys response carries `ININ-Correlation-Id` (shown in Genesys's normalized-429
/// example; the Java SDK reads it in `ApiResponseWrapper.getCorrelationId()`), and error bodies
/// repeat it as `contextId`.
async fn genesys_correlation(req: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().hyphenated().to_string();
    let mut resp = respond::CORRELATION.scope(id.clone(), next.run(req)).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("inin-correlation-id", v);
    }
    resp
}

async fn recorded(
    axum::extract::State(state): axum::extract::State<Arc<Shared>>,
) -> axum::Json<Recorded> {
    axum::Json(state.snapshot())
}

impl MockServer {
    /// Binds (use "127.0.0.1:0" for an ephemeral port) and serves in a tokio task.
    pub async fn start(config: MockConfig, bind: SocketAddr) -> std::io::Result<MockServer> {
        let listener = listen(bind)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Shared::new(config, base_url_of(addr)));
        let app = router(state.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        tracing::debug!(%addr, provider = %state.config.provider, "mock server listening");
        Ok(MockServer {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://HOST:PORT`; an unspecified bind address (0.0.0.0, ::) is shown as loopback,
    /// the address a local client can reach.
    pub fn base_url(&self) -> String {
        self.state.base_url.clone()
    }

    /// The token endpoint of the configured provider.
    pub fn token_url(&self) -> String {
        format!(
            "{}{}",
            self.state.base_url,
            self.state.config.provider.token_path()
        )
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &MockConfig {
        &self.state.config
    }

    /// A snapshot of what was received so far.
    pub fn recorded(&self) -> Recorded {
        self.state.snapshot()
    }

    /// A handle that takes a snapshot like [`MockServer::recorded`] and outlives a borrow of
    /// the server: what a metrics endpoint serving the mock's counts calls on each scrape.
    pub fn recorder(&self) -> impl Fn() -> Recorded + Send + Sync + 'static {
        let state = self.state.clone();
        move || state.snapshot()
    }

    /// The access tokens issued so far, for tests that scan output and audit files for a
    /// leaked token. (Tokens are secrets everywhere else: nothing here logs them.)
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state.issued_tokens()
    }

    /// Stops accepting, lets in-flight requests finish (up to 5 s), then stops.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Connections the kernel queues for `accept` before it drops a new one's SYN.
///
/// `TcpListener::bind` asks for 128 (std's and mio's value). A client that opens 256
/// connections at once (`run --concurrency 256`, or a load generator) overflowed that queue
/// on the 2-core VM: the dropped SYNs are sent again only after the kernel's one-second
/// retransmission timeout, so a run that should take half a second took one and a half, now
/// and then (`nstat`: `TcpExtListenOverflows`). Real platforms sit behind load balancers that
/// take such bursts; the stand-in asks for what nginx and tokio used to (the kernel caps it at
/// `net.core.somaxconn`).
const BACKLOG: u32 = 1024;

/// Binds a listener with [`BACKLOG`] (and `SO_REUSEADDR`, as `TcpListener::bind` sets).
pub(crate) fn listen(bind: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match bind {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(bind)?;
    socket.listen(BACKLOG)
}

fn base_url_of(addr: SocketAddr) -> String {
    let ip = addr.ip();
    let shown = if ip.is_unspecified() {
        match ip {
            std::net::IpAddr::V4(_) => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            std::net::IpAddr::V6(_) => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        }
    } else {
        ip
    };
    format!("http://{}", SocketAddr::new(shown, addr.port()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::{SocketAddr, TcpStream};
    use std::time::Duration;

    /// 256 connections opened at once, none accepted yet, all complete their handshake: with
    /// `TcpListener::bind`'s 128 the 130th SYN was dropped and its connect waited a second.
    /// (A kernel whose `net.core.somaxconn` is below 256, Linux's default before 5.4, caps
    /// any listener's queue there; the burst is cut to fit it.)
    #[tokio::test]
    async fn a_burst_of_connections_waits_in_the_accept_queue() {
        let cap = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(4096);
        let burst = cap.min(256);
        let listener = super::listen(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let addr = listener.local_addr().unwrap();
        let opened = tokio::task::spawn_blocking(move || {
            (0..burst)
                .map(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(500)))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .unwrap();
        assert_eq!(opened.map(|s| s.len()).unwrap(), burst);
        drop(listener);
    }
}
