//! Reverse proxy to an HTTP upstream, WebSocket (and any `Upgrade`) included.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::time::Duration;

pub type ProxyClient = Client<HttpConnector, Body>;

pub fn client() -> ProxyClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(10)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector)
}

/// Headers that belong to one connection and are never forwarded (RFC 9110 7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What the proxy needs to know about the client side.
pub struct Forwarding<'a> {
    pub upstream: &'a Uri,
    pub peer: SocketAddr,
    pub secure: bool,
    pub preserve_host: bool,
    pub timeout: Duration,
}

/// Why the upstream gave no answer.
#[derive(Debug)]
pub enum ProxyError {
    Unreachable(String),
    Timeout,
}

/// The upgrade protocol a request asks for (`Connection: upgrade` + `Upgrade: X`).
fn upgrade_of(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        });
    if asks {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    }
}

/// Removes hop-by-hop headers, including those the Connection header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| {
            v.split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

/// Builds the upstream request: same method, path and query, on the upstream's authority,
/// with X-Forwarded-For/-Proto/-Host and Forwarded.
pub fn upstream_request(
    mut req: Request<Body>,
    f: &Forwarding<'_>,
) -> Result<Request<Body>, String> {
    let upgrade = upgrade_of(req.headers());
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_owned();
    let authority = f
        .upstream
        .authority()
        .ok_or("upstream has no host")?
        .clone();
    let uri = Uri::builder()
        .scheme("http")
        .authority(authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| e.to_string())?;
    let client_host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    *req.uri_mut() = uri;
    *req.version_mut() = axum::http::Version::HTTP_11;
    let headers = req.headers_mut();
    strip_hop_by_hop(headers);
    let ip = f.peer.ip().to_string();
    let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prior) => format!("{prior}, {ip}"),
        None => ip.clone(),
    };
    let proto = if f.secure { "https" } else { "http" };
    let set = |h: &mut HeaderMap, name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set(headers, "x-forwarded-for", &xff);
    set(headers, "x-forwarded-proto", proto);
    if let Some(host) = &client_host {
        set(headers, "x-forwarded-host", host);
        let for_ = if f.peer.is_ipv6() {
            format!("\"[{ip}]\"")
        } else {
            ip.clone()
        };
        set(
            headers,
            "forwarded",
            &format!("for={for_};host=\"{host}\";proto={proto}"),
        );
    }
    if !f.preserve_host || client_host.is_none() {
        set(headers, "host", authority.as_str());
    }
    if let Some(protocol) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol);
    }
    Ok(req)
}

/// Forwards `req` and returns the upstream's answer; a `101 Switching Protocols` is spliced:
/// the client's and the upstream's connections are copied into each other until either ends.
pub async fn forward(
    client: &ProxyClient,
    mut req: Request<Body>,
    f: Forwarding<'_>,
) -> Result<Response<Body>, ProxyError> {
    let wants_upgrade = upgrade_of(req.headers()).is_some();
    let client_upgrade = wants_upgrade.then(|| hyper::upgrade::on(&mut req));
    let up = upstream_request(req, &f).map_err(ProxyError::Unreachable)?;
    let mut answer = match tokio::time::timeout(f.timeout, client.request(up)).await {
        Err(_) => return Err(ProxyError::Timeout),
        Ok(Err(e)) => {
            let mut reason = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                reason = format!("{reason}: {s}");
                source = s.source();
            }
            return Err(ProxyError::Unreachable(reason));
        }
        Ok(Ok(r)) => r,
    };
    if answer.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_side) = client_upgrade {
            let upstream_side = hyper::upgrade::on(&mut answer);
            tokio::spawn(async move {
                match (client_side.await, upstream_side.await) {
                    (Ok(c), Ok(u)) => {
                        let (mut c, mut u) = (TokioIo::new(c), TokioIo::new(u));
                        let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
                    }
                    (Err(e), _) | (_, Err(e)) => {
                        tracing::debug!(target: "serval_web", error = %e, "upgrade failed")
                    }
                }
            });
            let (parts, _) = answer.into_parts();
            return Ok(Response::from_parts(parts, Body::empty()));
        }
    }
    let (mut parts, body) = answer.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, Body::new(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_headers_and_hop_by_hop() {
        let upstream: Uri = "http://127.0.0.1:3000".parse().unwrap();
        let req = Request::builder()
            .uri("/app/x?q=1")
            .header("host", "www.example.test")
            .header("connection", "keep-alive, x-secret")
            .header("x-secret", "1")
            .header("x-forwarded-for", "10.0.0.9")
            .header("te", "trailers")
            .body(Body::empty())
            .unwrap();
        let f = Forwarding {
            upstream: &upstream,
            peer: "192.168.1.7:5555".parse().unwrap(),
            secure: true,
            preserve_host: false,
            timeout: Duration::from_secs(1),
        };
        let up = upstream_request(req, &f).unwrap();
        assert_eq!(up.uri().to_string(), "http://127.0.0.1:3000/app/x?q=1");
        let h = up.headers();
        assert_eq!(h["host"], "127.0.0.1:3000");
        assert_eq!(h["x-forwarded-for"], "10.0.0.9, 192.168.1.7");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "www.example.test");
        assert!(
            h.get("x-secret").is_none() && h.get("te").is_none() && h.get("connection").is_none()
        );
    }

    #[test]
    fn websocket_upgrade_headers_survive() {
        let upstream: Uri = "http://127.0.0.1:3000".parse().unwrap();
        let req = Request::builder()
            .uri("/ws")
            .header("host", "a.test")
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-key", "k")
            .body(Body::empty())
            .unwrap();
        let f = Forwarding {
            upstream: &upstream,
            peer: "127.0.0.1:1".parse().unwrap(),
            secure: false,
            preserve_host: true,
            timeout: Duration::from_secs(1),
        };
        let up = upstream_request(req, &f).unwrap();
        assert_eq!(up.headers()["connection"], "upgrade");
        assert_eq!(up.headers()["upgrade"], "websocket");
        assert_eq!(up.headers()["host"], "a.test");
        assert_eq!(up.headers()["sec-websocket-key"], "k");
    }
}
