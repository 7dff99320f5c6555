//! The execute path's own client against a loopback TLS server with a CA of the test's own:
//! what reqwest did for it (verify the certificate, offer HTTP/2 by ALPN, send the headers,
//! keep the timeout) this client must do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::PrivateKeyDer;

use super::*;
use crate::error::{Error, ErrorKind};
use crate::http::exchange_direct;
use crate::http::Answer;

/// What the server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    version: http::Version,
    authorization: Option<String>,
    body: Vec<u8>,
}

/// Accepts TLS connections on loopback under `tls` and hands each handshaken stream to
/// `serve`; the address.
async fn listen<F, Fut>(tls: Arc<rustls::ServerConfig>, serve: F) -> SocketAddr
where
    F: Fn(tokio_rustls::server::TlsStream<tokio::net::TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serve = Arc::new(serve);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let serve = serve.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to serve.
                if let Ok(stream) = acceptor.accept(tcp).await {
                    serve(stream).await;
                }
            });
        }
    });
    addr
}

/// A TLS server on loopback for `localhost`, offering `alpn`, answering every request with
/// `{"ok":true}` after `delay`; its CA root, and what it saw.
async fn server(
    alpn: &[&[u8]],
    delay: Duration,
) -> (SocketAddr, rustls::RootCertStore, Arc<Mutex<Vec<Seen>>>) {
    let (tls, roots) = tls_config(alpn);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let addr = listen(tls, move |stream| {
        let log = log.clone();
        async move {
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let log = log.clone();
                async move {
                    let version = req.version();
                    let authorization = req
                        .headers()
                        .get("authorization")
                        .map(|v| v.to_str().unwrap().to_string());
                    let body = req.into_body().collect().await?.to_bytes().to_vec();
                    log.lock().unwrap().push(Seen {
                        version,
                        authorization,
                        body,
                    });
                    tokio::time::sleep(delay).await;
                    Ok::<_, hyper::Error>(http::Response::new(Full::new(Bytes::from_static(
                        br#"{"ok":true}"#,
                    ))))
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
    .await;
    (addr, roots, seen)
}

fn client(roots: rustls::RootCertStore, timeout: Duration) -> Direct {
    Direct::with(
        timeout,
        Duration::from_secs(5),
        4,
        roots,
        Matcher::builder().build(),
    )
    .unwrap()
}

/// The execute URL on `addr`, and a builder of its request (sent again after a refusal).
fn request(addr: SocketAddr) -> (String, impl Fn() -> http::Request<Full<Bytes>>) {
    let url = format!("https://localhost:{}/execute", addr.port());
    let uri: http::Uri = url.parse().unwrap();
    let make = move || {
        let mut bearer = http::HeaderValue::from_static("Bearer t0ken");
        bearer.set_sensitive(true);
        http::Request::post(uri.clone())
            .header("authorization", bearer)
            .body(Full::new(Bytes::from_static(b"{\"uuid\":1}")))
            .unwrap()
    };
    (url, make)
}

/// A server config for `localhost` with a fresh self-signed certificate, offering `alpn`; and
/// the root a client needs to trust it.
fn tls_config(alpn: &[&[u8]]) -> (Arc<rustls::ServerConfig>, rustls::RootCertStore) {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(key.cert.der().clone()).unwrap();
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![key.cert.der().clone()],
        PrivateKeyDer::try_from(key.signing_key.serialize_der()).unwrap(),
    )
    .unwrap();
    tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    (Arc::new(tls), roots)
}

/// An HTTP/2 server that resets the first `refuse` streams with REFUSED_STREAM, then answers
/// `{"ok":true}`; its root, and how many streams it saw.
async fn refusing_server(refuse: usize) -> (SocketAddr, rustls::RootCertStore, Arc<Mutex<usize>>) {
    let (tls, roots) = tls_config(&[b"h2"]);
    let seen = Arc::new(Mutex::new(0usize));
    let count = seen.clone();
    let addr = listen(tls, move |stream| {
        let count = count.clone();
        async move {
            let Ok(mut conn) = h2::server::handshake(stream).await else {
                return;
            };
            while let Some(Ok((_req, mut respond))) = conn.accept().await {
                let n = {
                    let mut c = count.lock().unwrap();
                    *c += 1;
                    *c
                };
                if n <= refuse {
                    respond.send_reset(h2::Reason::REFUSED_STREAM);
                } else {
                    let mut body = respond
                        .send_response(http::Response::new(()), false)
                        .unwrap();
                    body.send_data(Bytes::from_static(br#"{"ok":true}"#), true)
                        .unwrap();
                }
            }
        }
    })
    .await;
    (addr, roots, seen)
}

/// One execute request to `addr` through a pool trusting `roots`.
async fn send_one(addr: SocketAddr, roots: rustls::RootCertStore) -> Result<Answer, Error> {
    let direct = client(roots, Duration::from_secs(5));
    let (url, req) = request(addr);
    exchange_direct(&direct, req, "execute request to", &url).await
}

#[tokio::test]
async fn a_refused_stream_is_sent_again_at_once() {
    let (addr, roots, seen) = refusing_server(PROTOCOL_RETRIES as usize).await;
    let answer = send_one(addr, roots).await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, br#"{"ok":true}"#);
    assert_eq!(*seen.lock().unwrap(), PROTOCOL_RETRIES as usize + 1);
}

#[tokio::test]
async fn refusals_past_the_retries_end_as_a_transport_error() {
    let (addr, roots, seen) = refusing_server(usize::MAX).await;
    let err = send_one(addr, roots).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    assert!(!err.to_string().contains("connection failed"), "{err}");
    assert_eq!(*seen.lock().unwrap(), PROTOCOL_RETRIES as usize + 1);
}

#[tokio::test]
async fn speaks_http2_over_tls_when_the_server_offers_it() {
    let (addr, roots, seen) = server(&[b"h2", b"http/1.1"], Duration::ZERO).await;
    let direct = client(roots, Duration::from_secs(5));
    for _ in 0..3 {
        let (url, req) = request(addr);
        let answer = exchange_direct(&direct, req, "execute request to", &url)
            .await
            .unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, br#"{"ok":true}"#);
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert_eq!(s.version, http::Version::HTTP_2);
        assert_eq!(s.authorization.as_deref(), Some("Bearer t0ken"));
        assert_eq!(s.body, b"{\"uuid\":1}");
    }
}

#[tokio::test]
async fn speaks_http1_over_tls_when_the_server_offers_only_that() {
    let (addr, roots, seen) = server(&[b"http/1.1"], Duration::ZERO).await;
    let answer = send_one(addr, roots).await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(seen.lock().unwrap()[0].version, http::Version::HTTP_11);
}

#[tokio::test]
async fn refuses_a_certificate_no_root_vouches_for() {
    // The server's certificate is signed by the test's CA; the bundled roots do not hold it.
    let (addr, _, seen) = server(&[b"h2", b"http/1.1"], Duration::ZERO).await;
    let direct = Direct::new(Duration::from_secs(5), Duration::from_secs(5), 4).unwrap();
    let (url, req) = request(addr);
    let err = exchange_direct(&direct, req, "execute request to", &url)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport);
    let msg = err.to_string();
    assert!(
        msg.contains("connection failed") && msg.contains("certificate"),
        "{msg}"
    );
    // Nothing reached the server, and the token is in no message.
    assert!(seen.lock().unwrap().is_empty());
    assert!(!msg.contains("t0ken"), "{msg}");
}

#[tokio::test]
async fn a_slow_answer_times_out_as_reqwest_did() {
    let (addr, roots, seen) = server(&[b"http/1.1"], Duration::from_secs(30)).await;
    let direct = client(roots, Duration::from_millis(300));
    let (url, req) = request(addr);
    let err = exchange_direct(&direct, req, "execute request to", &url)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.to_string().ends_with(": timed out"), "{err}");
    // The request was written: the server saw it (a timeout is ambiguous).
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn a_url_a_proxy_applies_to_goes_through_reqwest() {
    let direct = Direct::with(
        Duration::from_secs(5),
        Duration::from_secs(5),
        4,
        rustls::RootCertStore::empty(),
        Matcher::builder()
            .https("http://127.0.0.1:3128")
            .no("internal.example")
            .build(),
    )
    .unwrap();
    let uri = |u: &str| u.parse::<http::Uri>().unwrap();
    assert!(direct.proxied(&uri("https://api.mypurecloud.com/api/v2/x")));
    assert!(!direct.proxied(&uri("https://internal.example/api")));
    // HTTPS_PROXY is for https only.
    assert!(!direct.proxied(&uri("http://127.0.0.1:8080/api")));
}
