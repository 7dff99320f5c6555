//! The execute request's HTTP client: hyper's pooled client over rustls, with no layer between.
//!
//! Key design decision: the execute request is the one a run sends tens of thousands of times,
//! and reqwest spent a large share of the client's CPU on it around hyper itself (issue 22's
//! profile, 64 in flight, `--audit none`): its redirect layer parses every request's URL
//! again even with `redirect::Policy::none()`, each response's URL is parsed back into a
//! `Url`, and the connector and client are cloned and dropped per request; URL parsing alone
//! was 5.5% of samples. Those are reqwest's internals in 0.12 and 0.13 alike, so this path
//! builds the same request (same headers, same timeouts, same TLS roots) on the same
//! hyper-util pool that reqwest wraps, minus the wrapping.
//!
//! Token requests and CXone discovery stay on reqwest (a handful per run). So does an execute
//! URL that a proxy applies to: [`Direct::proxied`] reads `HTTPS_PROXY`, `HTTP_PROXY`,
//! `ALL_PROXY` and `NO_PROXY` with hyper-util's matcher, the one reqwest itself uses on this
//! platform, and such a request goes through reqwest, which tunnels through the proxy.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// The pool and the proxy settings read at start.
pub(crate) struct Direct {
    client: hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    proxies: Matcher,
    /// The whole exchange's limit, body included (reqwest's `timeout`).
    pub(crate) timeout: Duration,
}

/// How long an idle pooled connection is kept (reqwest's default).
const POOL_IDLE: Duration = Duration::from_secs(90);

impl Direct {
    /// A pool keeping up to `idle` connections per host, with `timeout` for a whole exchange
    /// and `connect_timeout` for a connection.
    pub(crate) fn new(
        timeout: Duration,
        connect_timeout: Duration,
        idle: usize,
    ) -> Result<Direct, String> {
        // The roots reqwest's `rustls-tls` uses (webpki-roots).
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        Self::with(timeout, connect_timeout, idle, roots, Matcher::from_env())
    }

    /// [`Direct::new`] with the roots and proxies given (the tests' own CA and proxies).
    fn with(
        timeout: Duration,
        connect_timeout: Duration,
        idle: usize,
        roots: rustls::RootCertStore,
        proxies: Matcher,
    ) -> Result<Direct, String> {
        let mut tcp = HttpConnector::new();
        tcp.set_connect_timeout(Some(connect_timeout));
        // reqwest's default: a request is one small write, sent at once.
        tcp.set_nodelay(true);
        tcp.enforce_http(false);
        // reqwest's crypto provider (ring), named here rather than taken from a process
        // default another crate may have set.
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp);
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(idle)
            .build(https);
        Ok(Direct {
            client,
            proxies,
            timeout,
        })
    }

    /// Whether a proxy from the environment applies to `uri` (then reqwest sends it).
    pub(crate) fn proxied(&self, uri: &http::Uri) -> bool {
        self.proxies.intercept(uri).is_some()
    }

    /// Sends the request `make` builds and returns the answer's head with its body still to
    /// read. A request the server refused at the protocol level before processing it (an
    /// HTTP/2 stream reset with REFUSED_STREAM, or a graceful GOAWAY that did not take it,
    /// RFC 9113 §8.7) is sent again at once, up to [`PROTOCOL_RETRIES`] times, as reqwest's
    /// default retry policy does: it is neither ambiguous nor worth a backoff.
    pub(crate) async fn send(
        &self,
        make: impl Fn() -> http::Request<Full<Bytes>>,
    ) -> Result<http::Response<Incoming>, hyper_util::client::legacy::Error> {
        let mut refused = 0;
        loop {
            match self.client.request(make()).await {
                Err(e) if refused < PROTOCOL_RETRIES && not_processed(&e) => refused += 1,
                answer => return answer,
            }
        }
    }
}

/// How often a request refused unprocessed is sent again (reqwest's default: 2).
pub(crate) const PROTOCOL_RETRIES: u32 = 2;

/// Whether the server said it did not process the request: an HTTP/2 REFUSED_STREAM, or a
/// GOAWAY with NO_ERROR (a graceful shutdown) for a stream it did not take.
fn not_processed(err: &hyper_util::client::legacy::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(e) = cur {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return h2.is_remote()
                && ((h2.is_go_away() && h2.reason() == Some(h2::Reason::NO_ERROR))
                    || (h2.is_reset() && h2.reason() == Some(h2::Reason::REFUSED_STREAM)));
        }
        cur = e.source();
    }
    false
}

#[cfg(test)]
mod tests;
