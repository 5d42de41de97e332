//! Serving the API: connections accepted under the caps ([`conns`]), TLS handshakes, one
//! HTTP/1.1 connection per task, and the listener bound with its loopback check. What a
//! request does is the router's business, not this file's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use axum::Router;

use super::auth::Tokens;
use super::conns;

/// Serves `router` on `listener`, one task per connection (HTTP/1.1). A client must send its
/// request's headers within `header_timeout` (and its body within the request timeout), so
/// slow or idle-but-open connections cannot pile up; and at most `limits` connections are
/// open (see [`conns`]): beyond, an idle one gives way or the newcomer gets a 503.
///
/// With `tls`, every connection is HTTPS: the handshake must also end within
/// `header_timeout` (a silent client holds its place no longer than one that sends no
/// headers), and a connection counts against the caps from its accept, handshake included.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    header_timeout: StdDuration,
    limits: conns::Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let registry = conns::Registry::new(limits);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, say (the caps should keep us from it): back off
                // instead of spinning.
                tracing::warn!("accepting an API connection: {e}");
                tokio::time::sleep(StdDuration::from_millis(100)).await;
                continue;
            }
        };
        let Some(ticket) = registry.admit(peer.ip()) else {
            // Every connection is busy: say so and close this one now. (A TLS client could
            // not read a plain answer before its handshake: it is just closed.)
            if acceptor.is_none() {
                let _ = stream.try_write(conns::BUSY_RESPONSE);
            }
            continue;
        };
        // An evicted connection closes its socket when its task runs: let it run before the
        // next accept, so descriptors are freed as fast as they are taken.
        let evicted_another = ticket.evicted_another;
        let router = router.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Some(acceptor) = acceptor else {
                serve_connection(stream, router, &ticket.conn, header_timeout).await;
                return;
            };
            // Evicted while shaking hands: the connection is idle, it just closes.
            let stream = tokio::select! {
                stream = tokio::time::timeout(header_timeout, handshake(&acceptor, stream)) => stream,
                () = ticket.conn.evicted.notified() => return,
            };
            match stream {
                Ok(Some(stream)) => {
                    serve_connection(stream, router, &ticket.conn, header_timeout).await;
                }
                Ok(None) => {}
                Err(_) => tracing::debug!("an API client did not finish its TLS handshake in time"),
            }
            drop(ticket);
        });
        if evicted_another {
            tokio::task::yield_now().await;
        }
    }
}

/// What a plain-HTTP request to the HTTPS port reads before it is closed.
const HTTPS_ONLY_RESPONSE: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
content-type: application/json\r\n\
connection: close\r\n\
content-length: 95\r\n\
\r\n\
{\"error\":{\"code\":\"bad_request\",\"message\":\"this server speaks HTTPS only: use an https:// URL\"}}";

/// The TLS handshake of an accepted connection; `None` if it failed. A client that speaks
/// plain HTTP to the HTTPS port (its first byte is not a TLS handshake record's) is answered
/// a plain 400 that says so, rather than a closed socket.
async fn handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// A TLS record of type "handshake" starts every ClientHello.
    const TLS_HANDSHAKE: u8 = 0x16;
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await.ok()? == 0 {
        return None;
    }
    if first[0] != TLS_HANDSHAKE {
        // Read the request's head first: closing a socket with unread bytes resets it, and
        // the client would never see the answer.
        let mut stream = stream;
        let mut head = Vec::with_capacity(1024);
        let mut buf = [0u8; 1024];
        while head.len() < 16 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let _ = stream.write_all(HTTPS_ONLY_RESPONSE).await;
        let _ = stream.shutdown().await;
        return None;
    }
    match acceptor.accept(stream).await {
        Ok(stream) => Some(stream),
        Err(e) => {
            tracing::debug!("an API client's TLS handshake failed: {e}");
            None
        }
    }
}

/// Serves one connection (plain or TLS) until it ends or is evicted while idle.
async fn serve_connection<I>(
    io: I,
    router: Router,
    conn: &Arc<conns::Conn>,
    header_timeout: StdDuration,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use hyper_util::rt::{TokioIo, TokioTimer};
    let inner = hyper_util::service::TowerToHyperService::new(router);
    let busy_conn = conn.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
        let busy = conns::Busy::enter(&busy_conn);
        let (parts, body) = request.into_parts();
        let (body, read) = conns::ReadBody::new(body);
        let answer = hyper::service::Service::call(&inner, hyper::Request::from_parts(parts, body));
        async move {
            let mut response = answer.await?;
            if !read.load(std::sync::atomic::Ordering::Acquire) {
                response.headers_mut().insert(
                    axum::http::header::CONNECTION,
                    axum::http::HeaderValue::from_static("close"),
                );
            }
            Ok::<_, std::convert::Infallible>(
                response.map(|body| conns::BusyBody { body, _busy: busy }),
            )
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        () = conn.evicted.notified() => {
            if !conn.is_busy() {
                // Idle: dropping the connection closes its socket now.
                return;
            }
            // A request arrived meanwhile: answer it, then close.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!("an API connection ended: {e}");
    }
}

/// Why the API's listener could not be bound; each message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("--listen `{listen}` is not ADDRESS:PORT: {reason}")]
    Address {
        listen: String,
        reason: std::io::Error,
    },
    #[error("--listen `{listen}` names no address")]
    NoAddress { listen: String },
    #[error(
        "refusing to serve the API on {address}, which is not loopback, with no token configured: \
         give --token-file or JOBS_TOKEN, or --insecure if something in front of it authenticates"
    )]
    NoToken { address: SocketAddr },
    #[error("cannot listen on {address}: {reason}")]
    Listen {
        address: SocketAddr,
        reason: std::io::Error,
    },
}

/// Binds `listen`, refusing a non-loopback address with no tokens unless `insecure`.
///
/// # Errors
///
/// [`BindError`]: `listen` is not an address, or is not loopback while no token is
/// configured (and not `insecure`), or cannot be listened on.
pub async fn bind(
    listen: &str,
    tokens: &Tokens,
    insecure: bool,
) -> Result<tokio::net::TcpListener, BindError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(listen)
        .await
        .map_err(|reason| BindError::Address {
            listen: listen.to_string(),
            reason,
        })?
        .collect();
    let Some(&address) = addrs.first() else {
        return Err(BindError::NoAddress {
            listen: listen.to_string(),
        });
    };
    if !address.ip().is_loopback() && tokens.is_empty() && !insecure {
        return Err(BindError::NoToken { address });
    }
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|reason| BindError::Listen { address, reason })
}

#[cfg(test)]
mod tests {
    use super::{Tokens, bind};

    /// Each refusal says what to change, naming the flag or the address.
    #[tokio::test]
    async fn bind_says_what_to_change() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = taken.local_addr().unwrap().to_string();
        let cases = [
            ("nonsense", "--listen `nonsense` is not ADDRESS:PORT: "),
            (
                "0.0.0.0:0",
                "refusing to serve the API on 0.0.0.0:0, which is not loopback, with no token \
                 configured: give --token-file or JOBS_TOKEN, or --insecure if something in front \
                 of it authenticates",
            ),
            (&taken, &format!("cannot listen on {taken}: ")),
        ];
        for (listen, want) in cases {
            let error = bind(listen, &Tokens::default(), false)
                .await
                .expect_err(listen)
                .to_string();
            assert!(error.starts_with(want), "{listen}: {error}");
        }
    }

    #[test]
    fn the_https_only_answer_is_the_api_error_shape_with_its_length() {
        let text = std::str::from_utf8(super::HTTPS_ONLY_RESPONSE).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], "bad_request");
    }
}
