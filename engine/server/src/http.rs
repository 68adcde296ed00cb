//! A deliberately small HTTP/1.1 server over `std::net`, with `httparse` parsing request heads.
//!
//! Why not an HTTP crate: the popular synchronous server crate drains an unread request body into
//! a buffer sized by the client's `Content-Length` (an unauthenticated client can make the
//! process allocate gigabytes), buffers chunked responses so events would not stream live, and
//! queues whole responses in memory for slow readers. The part of HTTP this API needs is small:
//! bodies with a `Content-Length`, keep-alive, fixed-length and chunked responses. Here every
//! limit is explicit: head size, header count, body size, idle and write timeouts, connections.

use std::io::{self, BufWriter, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stylegraph_core::value::HostTensor;

/// Largest request head (request line + headers) accepted.
pub(crate) const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most headers in one request.
const MAX_HEADERS: usize = 64;
/// How long a connection may sit between requests, or take to send a head or body.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one write to a client may block (a reader that stops reading is dropped).
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Granularity at which blocked reads notice a server shutdown.
const POLL: Duration = Duration::from_millis(250);

/// A request head, read before the body so that it can be refused without reading the body.
#[derive(Debug)]
pub(crate) struct Head {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// The query string without `?` (empty when absent).
    pub query: String,
    /// HTTP minor version (0 or 1).
    pub minor: u8,
    /// Header names in lower case, values as sent.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A complete request.
#[derive(Debug)]
pub(crate) struct Request {
    pub head: Head,
    pub body: Vec<u8>,
}

/// One step of a streamed response.
pub(crate) enum StreamStep {
    /// Lines to send (each is sent followed by `\n`).
    Lines(Vec<Arc<str>>),
    /// Nothing new yet; the writer checks the client and the server are still there.
    Idle,
    /// The stream is complete.
    End,
}

/// Produces the lines of a streamed response; `next` blocks for at most about a second.
pub(crate) type LineSource = Box<dyn FnMut() -> StreamStep + Send>;

/// A response body.
pub(crate) enum Body {
    Bytes(Vec<u8>),
    /// A `.npy` header followed by a tensor's bytes, written without copying the tensor.
    Tensor {
        prefix: Vec<u8>,
        tensor: Arc<HostTensor>,
    },
    /// Newline-delimited lines, sent chunked as they come.
    Stream(LineSource),
}

/// A response.
pub(crate) struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_else(|_| b"null".to_vec());
        bytes.push(b'\n');
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: Body::Bytes(bytes),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: String) -> Response {
        self.headers.push((name, value));
        self
    }

    fn error(status: u16, code: &str, message: &str) -> Response {
        Response::json(
            status,
            &serde_json::json!({ "error": code, "message": message }),
        )
    }
}

/// What the connection layer asks of the application.
pub(crate) trait Handler: Send + Sync {
    /// Checks a request head before its body is read (authentication, origin). A response
    /// returned here is sent instead of handling the request.
    fn precheck(&self, head: &Head) -> Option<Response>;
    /// Handles a complete request.
    fn handle(&self, request: Request) -> Response;
}

/// Limits of the connection layer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub body_limit: usize,
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Why reading a request stopped.
enum ReadEnd {
    /// The client closed, went idle, or the server is stopping: close quietly.
    Close,
    /// The request is malformed: send this and close.
    Reject(Response),
}

/// Reads from the stream into `buf`, waiting in `POLL` steps until `deadline`. Returns the number
/// of bytes read (0 at end of stream).
fn fill(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
    stop: &AtomicBool,
) -> Result<usize, ReadEnd> {
    let mut chunk = [0u8; 8192];
    loop {
        if stop.load(Ordering::SeqCst) {
            return Err(ReadEnd::Close);
        }
        match stream.read(&mut chunk) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(n);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if Instant::now() >= deadline {
                    return Err(ReadEnd::Close);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(ReadEnd::Close),
        }
    }
}

/// Reads and parses one request head; leaves any bytes after it in `buf`.
fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    stop: &AtomicBool,
) -> Result<Head, ReadEnd> {
    let deadline = Instant::now() + IDLE_TIMEOUT;
    loop {
        // Parse what we have (possibly left over from a pipelined previous request).
        if !buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let head = to_head(&req)?;
                    buf.drain(..len);
                    return Ok(head);
                }
                Ok(httparse::Status::Partial) => {}
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(ReadEnd::Reject(Response::error(
                        431,
                        "headers_too_large",
                        &format!("more than {MAX_HEADERS} headers"),
                    )))
                }
                Err(e) => {
                    return Err(ReadEnd::Reject(Response::error(
                        400,
                        "bad_request",
                        &format!("malformed HTTP request: {e}"),
                    )))
                }
            }
            if buf.len() >= MAX_HEAD_BYTES {
                return Err(ReadEnd::Reject(Response::error(
                    431,
                    "headers_too_large",
                    &format!("the request head is over {MAX_HEAD_BYTES} bytes"),
                )));
            }
        }
        if fill(stream, buf, deadline, stop)? == 0 {
            return Err(ReadEnd::Close);
        }
    }
}

fn to_head(req: &httparse::Request<'_, '_>) -> Result<Head, ReadEnd> {
    let bad = |m: &str| ReadEnd::Reject(Response::error(400, "bad_request", m));
    let method = req.method.ok_or_else(|| bad("no method"))?.to_owned();
    let target = req.path.ok_or_else(|| bad("no request target"))?;
    let minor = req.version.ok_or_else(|| bad("no HTTP version"))?;
    if !target.starts_with('/') {
        return Err(bad("the request target must be a path starting with '/'"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| bad(&format!("header {:?} is not valid UTF-8", h.name)))?;
        headers.push((h.name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    Ok(Head {
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        minor,
        headers,
    })
}

/// The declared body length, or the response refusing the request.
fn content_length(head: &Head) -> Result<usize, Response> {
    if head.header("transfer-encoding").is_some() {
        return Err(Response::error(
            411,
            "length_required",
            "send the body with a Content-Length header (chunked request bodies are not accepted)",
        ));
    }
    let mut length: Option<usize> = None;
    for (_, v) in head.headers.iter().filter(|(n, _)| n == "content-length") {
        let parsed = (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .then(|| v.parse::<usize>().ok())
            .flatten();
        match (parsed, length) {
            (None, _) => {
                return Err(Response::error(
                    400,
                    "bad_request",
                    &format!("Content-Length {v:?} is not a number"),
                ))
            }
            (Some(a), Some(b)) if a != b => {
                return Err(Response::error(
                    400,
                    "bad_request",
                    "conflicting Content-Length headers",
                ))
            }
            (Some(a), _) => length = Some(a),
        }
    }
    Ok(length.unwrap_or(0))
}

/// Serves one client connection until it closes, goes idle, misbehaves or the server stops.
pub(crate) fn serve_connection(
    mut stream: TcpStream,
    handler: &dyn Handler,
    limits: Limits,
    stop: &AtomicBool,
) {
    let _ = stream.set_nodelay(true);
    if stream.set_read_timeout(Some(POLL)).is_err()
        || stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err()
    {
        return;
    }
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let head = match read_head(&mut stream, &mut buf, stop) {
            Ok(h) => h,
            Err(ReadEnd::Close) => return,
            Err(ReadEnd::Reject(resp)) => {
                let _ = write_response(&mut stream, resp, CLOSE, stop);
                lingering_close(&mut stream);
                return;
            }
        };
        let http11 = head.minor == 1;
        let is_head = head.method == "HEAD";
        let keep_alive = http11
            && !head
                .header("connection")
                .is_some_and(|v| v.to_ascii_lowercase().contains("close"));
        let closing = Conn {
            keep_alive: false,
            http11,
            is_head,
        };
        let length = match content_length(&head) {
            Ok(n) => n,
            Err(resp) => {
                let _ = write_response(&mut stream, resp, closing, stop);
                lingering_close(&mut stream);
                return;
            }
        };
        if let Some(resp) = handler.precheck(&head) {
            // The body was not read: the connection cannot be reused unless there is none.
            let reusable = keep_alive && length == 0;
            log_request(&head, resp.status);
            let conn = Conn {
                keep_alive: reusable,
                ..closing
            };
            if write_response(&mut stream, resp, conn, stop).is_err() || !reusable {
                lingering_close(&mut stream);
                return;
            }
            continue;
        }
        if length > limits.body_limit {
            let resp = Response::error(
                413,
                "body_too_large",
                &format!(
                    "the request body is {length} bytes; this server accepts at most {}",
                    limits.body_limit
                ),
            );
            log_request(&head, 413);
            let _ = write_response(&mut stream, resp, closing, stop);
            lingering_close(&mut stream);
            return;
        }
        if length > 0
            && head
                .header("expect")
                .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
            && buf.is_empty()
            && stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err()
        {
            return;
        }
        while buf.len() < length {
            // A slow upload may take long as long as it keeps moving.
            let deadline = Instant::now() + IDLE_TIMEOUT;
            match fill(&mut stream, &mut buf, deadline, stop) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        let rest = buf.split_off(length);
        let body = std::mem::replace(&mut buf, rest);
        let request = Request { head, body };
        let method = request.head.method.clone();
        let path = request.head.path.clone();
        let resp = handler.handle(request);
        tracing::debug!(%method, %path, status = resp.status, "request");
        let conn = Conn {
            keep_alive,
            ..closing
        };
        if write_response(&mut stream, resp, conn, stop).is_err() || !keep_alive {
            close(&stream);
            return;
        }
    }
}

fn log_request(head: &Head, status: u16) {
    tracing::debug!(method = %head.method, path = %head.path, status, "request refused");
}

fn close(stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Both);
}

/// Closes after a response sent without reading the request body. Closing a socket with unread
/// input makes the kernel reset the connection, and the client may then lose the response; so
/// stop sending, then discard what the client still sends, for a bounded time and amount.
fn lingering_close(stream: &mut TcpStream) {
    const LINGER: Duration = Duration::from_secs(2);
    const LINGER_BYTES: usize = 64 << 20;
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let start = Instant::now();
    let mut discarded = 0usize;
    let mut sink = [0u8; 16 * 1024];
    while start.elapsed() < LINGER && discarded < LINGER_BYTES {
        match stream.read(&mut sink) {
            Ok(0) => break,
            Ok(n) => discarded += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => break,
        }
    }
    close(stream);
}

/// How a response is to be written.
#[derive(Clone, Copy)]
struct Conn {
    /// Keep the connection open afterwards.
    keep_alive: bool,
    /// The client speaks HTTP/1.1 (chunked encoding allowed).
    http11: bool,
    /// The request was HEAD: headers only.
    is_head: bool,
}

/// A response after which the connection closes.
const CLOSE: Conn = Conn {
    keep_alive: false,
    http11: true,
    is_head: false,
};

/// Writes a response. A streamed body is sent with chunked encoding to HTTP/1.1 clients and as
/// raw lines up to the close to HTTP/1.0 ones.
fn write_response(
    stream: &mut TcpStream,
    resp: Response,
    conn: Conn,
    stop: &AtomicBool,
) -> io::Result<()> {
    let Conn {
        keep_alive,
        http11,
        is_head,
    } = conn;
    let mut out = BufWriter::with_capacity(16 * 1024, &*stream);
    write!(out, "HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status))?;
    write!(out, "Content-Type: {}\r\n", resp.content_type)?;
    out.write_all(b"Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n")?;
    for (name, value) in &resp.headers {
        write!(out, "{name}: {value}\r\n")?;
    }
    let connection = if keep_alive { "keep-alive" } else { "close" };
    write!(out, "Connection: {connection}\r\n")?;
    match resp.body {
        Body::Bytes(bytes) => {
            write!(out, "Content-Length: {}\r\n\r\n", bytes.len())?;
            if !is_head {
                out.write_all(&bytes)?;
            }
            out.flush()
        }
        Body::Tensor { prefix, tensor } => {
            let data = tensor.bytes();
            write!(out, "Content-Length: {}\r\n\r\n", prefix.len() + data.len())?;
            if !is_head {
                out.write_all(&prefix)?;
                out.write_all(data)?;
            }
            out.flush()
        }
        Body::Stream(mut source) => {
            // Chunked whenever the client speaks HTTP/1.1: the final empty chunk tells a
            // complete stream from one cut short.
            let chunked = http11;
            if chunked {
                out.write_all(b"Transfer-Encoding: chunked\r\n")?;
            }
            out.write_all(b"\r\n")?;
            out.flush()?;
            if is_head {
                return Ok(());
            }
            loop {
                match source() {
                    StreamStep::Lines(lines) => {
                        for line in lines {
                            if chunked {
                                write!(out, "{:x}\r\n", line.len() + 1)?;
                            }
                            out.write_all(line.as_bytes())?;
                            out.write_all(b"\n")?;
                            if chunked {
                                out.write_all(b"\r\n")?;
                            }
                        }
                        out.flush()?;
                    }
                    StreamStep::Idle => {
                        if stop.load(Ordering::SeqCst) || client_gone(stream) {
                            return Err(io::Error::new(
                                io::ErrorKind::ConnectionAborted,
                                "stream abandoned",
                            ));
                        }
                    }
                    StreamStep::End => break,
                }
            }
            if chunked {
                out.write_all(b"0\r\n\r\n")?;
            }
            out.flush()
        }
    }
}

/// True when the client has closed its side (so a stream waiting for events can stop).
fn client_gone(stream: &TcpStream) -> bool {
    if stream
        .set_read_timeout(Some(Duration::from_millis(1)))
        .is_err()
    {
        return true;
    }
    let mut probe = [0u8; 1];
    let gone = match stream.peek(&mut probe) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
    };
    let _ = stream.set_read_timeout(Some(POLL));
    gone
}

/// Sends a short response on a connection the server will not serve (too many connections).
/// It runs on the accepting thread, so it waits only briefly: it reads what the client has
/// already sent (so that closing does not reset the connection before the client reads the
/// answer), answers, and closes.
pub(crate) fn refuse_connection(stream: TcpStream, status: u16, code: &str, message: &str) {
    let mut stream = stream;
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let mut sink = [0u8; 16 * 1024];
    let _ = stream.read(&mut sink);
    let stop = AtomicBool::new(false);
    let _ = write_response(
        &mut stream,
        Response::error(status, code, message).with_header("Retry-After", "1".into()),
        CLOSE,
        &stop,
    );
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.read(&mut sink);
    close(&stream);
}

/// An error response in the API's error format.
pub(crate) fn error_response(status: u16, code: &str, message: &str) -> Response {
    Response::error(status, code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(headers: &[(&str, &str)]) -> Head {
        Head {
            method: "POST".into(),
            path: "/v1/runs".into(),
            query: String::new(),
            minor: 1,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn content_lengths() {
        assert_eq!(content_length(&head(&[])).ok(), Some(0));
        assert_eq!(
            content_length(&head(&[("content-length", "42")])).ok(),
            Some(42)
        );
        assert_eq!(
            content_length(&head(&[("content-length", "7"), ("content-length", "7")])).ok(),
            Some(7)
        );
        let status = |h: &[(&str, &str)]| content_length(&head(h)).err().map(|r| r.status);
        assert_eq!(status(&[("content-length", "+5")]), Some(400));
        assert_eq!(status(&[("content-length", "-1")]), Some(400));
        assert_eq!(status(&[("content-length", "")]), Some(400));
        assert_eq!(status(&[("content-length", "1, 2")]), Some(400));
        assert_eq!(
            status(&[("content-length", "99999999999999999999999")]),
            Some(400)
        );
        assert_eq!(
            status(&[("content-length", "1"), ("content-length", "2")]),
            Some(400)
        );
        assert_eq!(status(&[("transfer-encoding", "chunked")]), Some(411));
    }

    #[test]
    fn heads_split_path_and_query_and_refuse_absolute_targets() {
        let mut headers = [httparse::EMPTY_HEADER; 4];
        let mut req = httparse::Request::new(&mut headers);
        let text = b"GET /v1/runs/r1/outputs/a/b?seed=3 HTTP/1.1\r\nHoSt: x\r\n\r\n";
        assert!(matches!(req.parse(text), Ok(httparse::Status::Complete(_))));
        let h = to_head(&req).ok().expect("head");
        assert_eq!(
            (h.path.as_str(), h.query.as_str(), h.minor),
            ("/v1/runs/r1/outputs/a/b", "seed=3", 1)
        );
        assert_eq!(h.header("host"), Some("x"));

        let mut headers = [httparse::EMPTY_HEADER; 4];
        let mut req = httparse::Request::new(&mut headers);
        let text = b"GET http://elsewhere/v1/health HTTP/1.1\r\n\r\n";
        assert!(matches!(req.parse(text), Ok(httparse::Status::Complete(_))));
        assert!(matches!(to_head(&req), Err(ReadEnd::Reject(r)) if r.status == 400));
    }
}
