//! HTTP framing for the emulator: hyper on a loopback listener, one task per
//! connection, every request handed to [`Emulator::handle`] (which is synchronous
//! and does the ARM part). A reply marked `reset` closes the connection without a
//! response, the way a lost connection looks to the client.
//!
//! Like ARM's front door it refuses before the ARM part sees anything: a
//! request without the emulator's token (401), a body over 4 MiB (413, read no
//! further), headers that do not arrive within 30 s (the connection is closed).
//! Accept errors (out of file descriptors) back off instead of spinning.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request as HttpRequest, Response as HttpResponse};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::arm::{Emulator, Reply, Request};

/// ARM refuses request bodies over 4 MB; so does the emulator (and never
/// buffers more).
pub const MAX_BODY: usize = 4 * 1024 * 1024;
/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

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
    let authorization = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let identity = match emu.config().authenticate(authorization) {
        Ok(identity) => identity,
        Err(refused) => return Ok(respond(&emu, refused)),
    };
    let declared = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let too_large = || {
        respond(
            &emu,
            Reply::error(
                413,
                "RequestEntityTooLarge",
                "The request content size exceeds the maximum allowed size of 4 MB.",
            ),
        )
    };
    if declared.is_some_and(|n| n > MAX_BODY) {
        return Ok(too_large());
    }
    let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Ok(too_large());
        }
        Err(_) => return Err(Reset),
    };
    let request = Request {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        identity,
        body,
        base,
    };
    let reply = tokio::task::block_in_place(|| emu.handle(&request));
    if reply.reset {
        return Err(Reset);
    }
    Ok(respond(&emu, reply))
}

/// Every answer, refusals included, says this is the emulator and how fast its
/// clock runs, so a client scales its waits for it and never for Azure.
fn respond(emu: &Emulator, reply: Reply) -> HttpResponse<Full<Bytes>> {
    let mut resp = HttpResponse::builder().status(reply.status).header(
        lifeboat_core::api::TIME_SCALE_HEADER,
        emu.config().time_scale.to_string(),
    );
    for (k, v) in &reply.headers {
        resp = resp.header(k, v);
    }
    resp.body(Full::new(Bytes::from(reply.body)))
        .expect("valid response parts")
}

/// Serve until the task is dropped.
pub async fn serve(listener: TcpListener, emu: Arc<Emulator>) -> std::io::Result<Infallible> {
    let addr: SocketAddr = listener.local_addr()?;
    let base = format!("http://{addr}");
    let mut backoff = std::time::Duration::from_millis(10);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => {
                backoff = std::time::Duration::from_millis(10);
                s
            }
            // Out of file descriptors and the like: wait for some to close
            // (never spin), then keep serving the rest.
            Err(_) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(1));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let emu = emu.clone();
        let base = base.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| answer(emu.clone(), base.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
