//! HTTP framing for the emulator: hyper on a loopback listener, one task per
//! connection, every request handed to [`Emulator::handle`] (which is synchronous
//! and does the ARM part). A reply marked `reset` closes the connection without a
//! response, the way a lost connection looks to the client.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request as HttpRequest, Response as HttpResponse};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::arm::{Emulator, Request};

#[derive(Debug)]
struct Reset;

impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("injected connection reset")
    }
}
impl std::error::Error for Reset {}

async fn answer(
    emu: Arc<Emulator>,
    base: String,
    req: HttpRequest<Incoming>,
) -> Result<HttpResponse<Full<Bytes>>, Reset> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => return Err(Reset),
    };
    let request = Request {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        identity: parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("anonymous")
            .to_string(),
        body,
        base,
    };
    let reply = tokio::task::block_in_place(|| emu.handle(&request));
    if reply.reset {
        return Err(Reset);
    }
    let mut resp = HttpResponse::builder().status(reply.status);
    for (k, v) in &reply.headers {
        resp = resp.header(k, v);
    }
    Ok(resp
        .body(Full::new(Bytes::from(reply.body)))
        .expect("valid response parts"))
}

/// Serve until the task is dropped.
pub async fn serve(listener: TcpListener, emu: Arc<Emulator>) -> std::io::Result<Infallible> {
    let addr: SocketAddr = listener.local_addr()?;
    let base = format!("http://{addr}");
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            // Out of file descriptors and the like: keep serving the rest.
            Err(_) => continue,
        };
        let _ = stream.set_nodelay(true);
        let emu = emu.clone();
        let base = base.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| answer(emu.clone(), base.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
