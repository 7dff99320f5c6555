//! An outage of any loopback TCP service, for tests: a forwarder in front of it that can be
//! stopped and started again on the same port. Clients pointed at the forwarder see refused
//! connections while it is stopped, and the service behind it keeps its state (an S3 test
//! server's objects), which killing the service itself would lose.

use std::net::SocketAddr;
use std::sync::Mutex;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP forwarder on `127.0.0.1` that can be taken down and brought back on the same port.
pub struct OutageProxy {
    listen: SocketAddr,
    upstream: SocketAddr,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl OutageProxy {
    /// Forwards a free loopback port to `upstream` (`http://HOST:PORT` or `HOST:PORT`).
    pub async fn new(upstream: &str) -> std::io::Result<Self> {
        let hostport = upstream.trim_start_matches("http://").trim_end_matches('/');
        let upstream = tokio::net::lookup_host(hostport)
            .await?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("{hostport} does not resolve")))?;
        let listener = crate::server::listen(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let proxy = Self {
            listen: listener.local_addr()?,
            upstream,
            task: Mutex::new(None),
        };
        proxy.serve(listener);
        Ok(proxy)
    }

    /// `http://127.0.0.1:PORT`, the address to give clients.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// Starts the outage: the port stops accepting, and open connections are dropped.
    pub async fn stop(&self) {
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = task {
            t.abort();
            let _ = t.await;
        }
    }

    /// Ends the outage, on the same port.
    pub async fn start(&self) -> std::io::Result<()> {
        let listener = crate::server::listen(self.listen)?;
        self.serve(listener);
        Ok(())
    }

    fn serve(&self, listener: TcpListener) {
        let upstream = self.upstream;
        let task = tokio::spawn(async move {
            // Owned here, so aborting this task drops every open connection with it.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut down, _)) = listener.accept().await else {
                    continue;
                };
                conns.spawn(async move {
                    if let Ok(mut up) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
            }
        });
        if let Ok(mut slot) = self.task.lock() {
            *slot = Some(task);
        }
    }
}
