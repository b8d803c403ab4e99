//! The one HTTP client of the workspace: reqwest on a tokio runtime of its own, behind
//! blocking calls. Connect and read timeouts, retries with exponential backoff on what a
//! retry can cure (connection errors, timeouts, 5xx, truncated bodies; never 404 or 403),
//! a size bound per download and bounded concurrency.
//!
//! The policy is shared with compose's registry client, which speaks its own protocol
//! over the same kind of reqwest client: [`ClientOptions::http_client`], [`Backoff`],
//! [`is_transient_status`], [`is_transient_error`] and [`upload_body`].

use std::io::{self, Seek, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use reqwest::header::{HeaderMap, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::StatusCode;

use crate::progress::{Outcome, Reporter};

/// Every request says who asks: downloads and registry pushes alike.
pub const USER_AGENT: &str = concat!("distroless-rs/", env!("CARGO_PKG_VERSION"));

/// How patient and how large requests may be.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    /// Longest silence while waiting for headers or body bytes.
    pub read_timeout: Duration,
    /// How often a request is tried, and the pauses between tries.
    pub backoff: Backoff,
    /// Upper bound on one download.
    pub max_bytes: u64,
    /// Requests in flight at once (`get_all`, blob uploads).
    pub concurrency: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(20),
            read_timeout: Duration::from_secs(60),
            backoff: Backoff::default(),
            // Packages and indexes; sources are bounded separately (see source.rs).
            max_bytes: 2 << 30,
            concurrency: 8,
        }
    }
}

impl ClientOptions {
    /// A reqwest client with these timeouts and [`USER_AGENT`].
    pub fn http_client(&self) -> Result<reqwest::Client, reqwest::Error> {
        reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.read_timeout)
            .user_agent(USER_AGENT)
            .build()
    }
}

/// The retry schedule: up to `attempts` tries, pausing `first_pause` before the second
/// and twice as long before each further one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Tries, the first included.
    pub attempts: u32,
    pub first_pause: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            attempts: 4,
            first_pause: Duration::from_millis(500),
        }
    }
}

impl Backoff {
    /// The pause after try `attempt` (counted from 1) failed transiently, or `None` when
    /// that was the last try.
    pub fn pause_after(&self, attempt: u32) -> Option<Duration> {
        (attempt < self.attempts.max(1))
            .then(|| self.first_pause.saturating_mul(1 << (attempt - 1).min(20)))
    }
}

/// Whether a status may be gone when asked again: a failing or overloaded server (5xx,
/// 408, 429). Never 404 or 403: those are answers.
pub fn is_transient_status(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// Whether a transport error may be gone on another try: the connection failed, was cut
/// or timed out, or the body stopped short. Not a bad URL or a redirect loop.
pub fn is_transient_error(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_request() || e.is_body() || e.is_decode()
}

/// A request body of `bytes` that tells `progress` under `key` how much of it has been
/// sent, in chunks, as the connection takes them. Its length is announced.
pub fn upload_body(bytes: Bytes, key: &str, progress: &Reporter) -> reqwest::Body {
    reqwest::Body::wrap(Upload {
        rest: bytes,
        key: key.to_string(),
        progress: progress.clone(),
    })
}

/// The body behind [`upload_body`].
struct Upload {
    rest: Bytes,
    key: String,
    progress: Reporter,
}

impl http_body::Body for Upload {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        // Chunks small enough for a bar to move, large enough not to matter.
        const CHUNK: usize = 256 << 10;
        if self.rest.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.rest.len().min(CHUNK);
        let chunk = self.rest.split_to(n);
        self.progress.advanced(&self.key, n as u64);
        Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.rest.len() as u64)
    }
}

/// A failed download: the URL and why, e.g. `https://x/y.apk: HTTP 500 Internal Server
/// Error after 4 attempts`.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {cause}")]
pub struct HttpError {
    pub url: String,
    pub cause: String,
    /// The server answered with this status (the last attempt's).
    pub status: Option<u16>,
}

/// What a previous response said about its body, to ask whether it changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Validators {
    fn from_headers(headers: &HeaderMap) -> Self {
        let text = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Validators {
            etag: text(ETAG),
            last_modified: text(LAST_MODIFIED),
        }
    }

    fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// The answer to a conditional request.
#[derive(Debug)]
pub enum Fetched {
    /// A new body (in the sink) with its validators.
    Body(Validators),
    /// 304: the copy the validators came from is current.
    NotModified,
}

/// Where a body goes. A retry starts over, so a sink can be emptied.
pub trait Sink: Send {
    fn reset(&mut self) -> io::Result<()>;
    fn write(&mut self, chunk: &[u8]) -> io::Result<()>;
}

impl Sink for Vec<u8> {
    fn reset(&mut self) -> io::Result<()> {
        self.clear();
        Ok(())
    }
    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.extend_from_slice(chunk);
        Ok(())
    }
}

impl Sink for std::fs::File {
    fn reset(&mut self) -> io::Result<()> {
        self.set_len(0)?;
        self.rewind()
    }
    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.write_all(chunk)
    }
}

/// Why one attempt failed, and whether another could succeed.
struct Failure {
    cause: String,
    retry: bool,
    status: Option<u16>,
}

/// An HTTP client with its runtime. Cheap to share by reference across threads.
pub struct Client {
    http: reqwest::Client,
    runtime: Arc<tokio::runtime::Runtime>,
    opts: ClientOptions,
    progress: Reporter,
}

impl Client {
    pub fn new(opts: ClientOptions, progress: Reporter) -> Result<Self, HttpError> {
        let setup = |cause: String| HttpError {
            url: "(client setup)".into(),
            cause,
            status: None,
        };
        let http = opts.http_client().map_err(|e| setup(cause_chain(&e)))?;
        // Two workers suffice: downloads wait on the network, not the CPU.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("remote-http")
            .enable_all()
            .build()
            .map_err(|e| setup(e.to_string()))?;
        Ok(Client {
            http,
            runtime: Arc::new(runtime),
            opts,
            progress,
        })
    }

    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    /// The body of `url`, whole.
    pub fn get(&self, url: &str) -> Result<Vec<u8>, HttpError> {
        self.runtime.block_on(self.fetch_body(url))
    }

    /// `url` into `sink`, unless `known` still describes it (then `NotModified`).
    pub fn get_if_changed(
        &self,
        url: &str,
        known: Option<&Validators>,
        max_bytes: u64,
        sink: &mut dyn Sink,
    ) -> Result<Fetched, HttpError> {
        self.runtime
            .block_on(self.fetch(url, known, max_bytes, sink))
    }

    /// `url` into `sink`, at most `max_bytes` of it.
    pub fn download(
        &self,
        url: &str,
        max_bytes: u64,
        sink: &mut dyn Sink,
    ) -> Result<(), HttpError> {
        self.get_if_changed(url, None, max_bytes, sink).map(|_| ())
    }

    /// The bodies of `urls`, downloaded `concurrency` at a time; results in order.
    pub fn get_all(&self, urls: &[String]) -> Vec<Result<Vec<u8>, HttpError>> {
        self.runtime.block_on(
            stream::iter(urls)
                .map(|url| self.fetch_body(url))
                .buffered(self.opts.concurrency.max(1))
                .collect(),
        )
    }

    /// The body of `url`, whole, up to the client's size bound.
    async fn fetch_body(&self, url: &str) -> Result<Vec<u8>, HttpError> {
        let mut body = Vec::new();
        self.fetch(url, None, self.opts.max_bytes, &mut body)
            .await?;
        Ok(body)
    }

    async fn fetch(
        &self,
        url: &str,
        known: Option<&Validators>,
        max_bytes: u64,
        sink: &mut dyn Sink,
    ) -> Result<Fetched, HttpError> {
        let backoff = self.opts.backoff;
        let mut attempt = 1;
        loop {
            let failure = match self.attempt(url, known, max_bytes, sink).await {
                Ok(fetched) => {
                    return Ok(fetched);
                }
                Err(failure) => failure,
            };
            let pause = backoff.pause_after(attempt).filter(|_| failure.retry);
            let Some(pause) = pause else {
                self.progress.finished(url, &Outcome::Failed);
                let cause = if failure.retry && attempt > 1 {
                    format!("{} after {attempt} attempts", failure.cause)
                } else {
                    failure.cause
                };
                return Err(HttpError {
                    url: url.to_string(),
                    cause,
                    status: failure.status,
                });
            };
            self.progress.retrying(url, attempt, &failure.cause);
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }

    async fn attempt(
        &self,
        url: &str,
        known: Option<&Validators>,
        max_bytes: u64,
        sink: &mut dyn Sink,
    ) -> Result<Fetched, Failure> {
        let local = |e: io::Error| Failure {
            cause: format!("writing the download: {e}"),
            retry: false,
            status: None,
        };
        sink.reset().map_err(local)?;
        let mut request = self.http.get(url);
        if let Some(v) = known {
            if let Some(etag) = &v.etag {
                request = request.header(IF_NONE_MATCH, etag);
            }
            if let Some(date) = &v.last_modified {
                request = request.header(IF_MODIFIED_SINCE, date);
            }
        }
        let mut response = request.send().await.map_err(|e| network(e, &self.opts))?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED && known.is_some_and(|v| !v.is_empty()) {
            self.progress.finished(url, &Outcome::NotModified);
            return Ok(Fetched::NotModified);
        }
        if !status.is_success() {
            return Err(Failure {
                cause: format!("HTTP {status}"),
                retry: is_transient_status(status),
                status: Some(status.as_u16()),
            });
        }
        let announced = response.content_length();
        if let Some(n) = announced.filter(|&n| n > max_bytes) {
            return Err(Failure {
                cause: format!("{n} bytes announced, more than the limit of {max_bytes}"),
                retry: false,
                status: None,
            });
        }
        let validators = Validators::from_headers(response.headers());
        self.progress.started(url, announced);
        let mut received = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(|e| network(e, &self.opts))? {
            received += chunk.len() as u64;
            if received > max_bytes {
                return Err(Failure {
                    cause: format!("more than the limit of {max_bytes} bytes"),
                    retry: false,
                    status: None,
                });
            }
            sink.write(&chunk).map_err(local)?;
            self.progress.advanced(url, chunk.len() as u64);
        }
        // hyper reports a short body as an error already; this guards the contract.
        if let Some(n) = announced.filter(|&n| n != received) {
            return Err(Failure {
                cause: format!("truncated body: {received} of {n} bytes"),
                retry: true,
                status: None,
            });
        }
        self.progress
            .finished(url, &Outcome::Downloaded { bytes: received });
        Ok(Fetched::Body(validators))
    }
}

/// A transport error, described; most are worth another try (the connection, a timeout,
/// a cut body).
fn network(e: reqwest::Error, opts: &ClientOptions) -> Failure {
    let cause = if e.is_connect() && e.is_timeout() {
        format!("cannot connect within {:?}", opts.connect_timeout)
    } else if e.is_timeout() {
        format!("timed out: nothing received for {:?}", opts.read_timeout)
    } else if e.is_connect() {
        format!("cannot connect: {}", root_cause(&e))
    } else if e.is_body() || e.is_decode() {
        format!("body cut short: {}", root_cause(&e))
    } else {
        cause_chain(&e)
    };
    Failure {
        cause,
        retry: is_transient_error(&e),
        status: None,
    }
}

/// The innermost cause: "end of file before message length reached", "Connection
/// refused (os error 111)".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(s) = inner.source() {
        inner = s;
    }
    inner.to_string()
}

/// reqwest's own message is terse ("error sending request"); the causes below it say
/// what happened ("connection refused", "end of file before message length reached").
/// The URL is left out: the error names it once.
fn cause_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![without_url(&e.to_string())];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

fn without_url(text: &str) -> String {
    match text.find(" for url (") {
        Some(i) => text[..i].to_string(),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_its_pause_until_the_last_attempt() {
        let backoff = Backoff {
            attempts: 4,
            first_pause: Duration::from_millis(100),
        };
        let pauses: Vec<_> = (1..=5).map(|a| backoff.pause_after(a)).collect();
        let ms = |n| Some(Duration::from_millis(n));
        assert_eq!(pauses, [ms(100), ms(200), ms(400), None, None]);
        let once = Backoff {
            attempts: 0,
            ..backoff
        };
        assert_eq!(once.pause_after(1), None);
    }

    #[test]
    fn failing_and_overloaded_servers_are_transient_answers_are_not() {
        for code in [500, 502, 503, 504, 408, 429] {
            assert!(
                is_transient_status(StatusCode::from_u16(code).unwrap()),
                "{code}"
            );
        }
        for code in [400, 401, 403, 404, 409] {
            assert!(
                !is_transient_status(StatusCode::from_u16(code).unwrap()),
                "{code}"
            );
        }
    }
}
