//! A server on 127.0.0.1:0 with the core and test plugins, and a tiny HTTP/1.1 client on
//! `std::net::TcpStream` (so the tests exercise the wire format, not a client library's view).

#![allow(dead_code)] // each test file uses a different part

use serde_json::Value as J;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stylegraph_core::exec::{CancelToken, SessionConfig};
use stylegraph_server::{Server, ServerConfig};

pub fn workspace_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// A loopback config on a free port, small limits where tests need them.
pub fn config() -> ServerConfig {
    ServerConfig {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..ServerConfig::default()
    }
}

pub fn start(config: ServerConfig) -> Server {
    let host = Arc::new(stylegraph_tests::host_with_test_plugins());
    let session = SessionConfig {
        cache_budget_bytes: 64 << 20,
        threads: 2,
    };
    Server::start(config, host, session, CancelToken::new()).expect("server starts")
}

/// A parsed response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> J {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads a response head from `r`: status and headers.
pub fn read_head(r: &mut impl BufRead) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).expect("header line");
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (n, v) = h.split_once(':').expect("header has a colon");
        headers.push((n.trim().to_owned(), v.trim().to_owned()));
    }
    (status, headers)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Reads one chunk of a chunked body; `None` after the last chunk.
pub fn read_chunk(r: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut size = String::new();
    r.read_line(&mut size).expect("chunk size line");
    let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
    let mut data = vec![0u8; size];
    r.read_exact(&mut data).expect("chunk data");
    let mut crlf = [0u8; 2];
    r.read_exact(&mut crlf).expect("chunk end");
    assert_eq!(&crlf, b"\r\n");
    (size > 0).then_some(data)
}

/// Reads a response (head and body) from `r`.
pub fn read_response(r: &mut impl BufRead) -> Resp {
    let (status, headers) = read_head(r);
    let mut body = Vec::new();
    if header(&headers, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        while let Some(c) = read_chunk(r) {
            body.extend_from_slice(&c);
        }
    } else if let Some(n) = header(&headers, "content-length") {
        body.resize(n.parse().expect("content-length"), 0);
        r.read_exact(&mut body).expect("body");
    } else {
        r.read_to_end(&mut body).expect("body to close");
    }
    Resp {
        status,
        headers,
        body,
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    s
}

/// Sends one request on a fresh connection and reads the response.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut s = connect(addr);
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("send head");
    s.write_all(body).expect("send body");
    read_response(&mut BufReader::new(s))
}

pub fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, &[], b"")
}

pub fn post_json(addr: SocketAddr, path: &str, body: &J) -> Resp {
    request(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
}

/// Submits a run, expecting 202; returns its id.
pub fn submit(addr: SocketAddr, body: &J) -> String {
    let r = post_json(addr, "/v1/runs", body);
    assert_eq!(r.status, 202, "submit: {}", r.text());
    let v = r.json();
    assert_eq!(v["status"], "queued");
    assert_eq!(
        r.header("location"),
        Some(format!("/v1/runs/{}", v["id"].as_str().unwrap_or("")).as_str())
    );
    v["id"].as_str().expect("id").to_owned()
}

/// Polls a run until its status satisfies `done`.
pub fn wait_for(addr: SocketAddr, id: &str, what: &str, done: impl Fn(&str) -> bool) -> J {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = get(addr, &format!("/v1/runs/{id}"));
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        if done(v["status"].as_str().unwrap_or("")) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "run {id} never became {what}: {v:#}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls until the run has ended.
pub fn wait_ended(addr: SocketAddr, id: &str) -> J {
    wait_for(addr, id, "ended", |s| {
        matches!(s, "finished" | "failed" | "cancelled")
    })
}

/// A graph of one `test.slow` node.
pub fn slow_graph(steps: i64, step_ms: i64) -> String {
    format!(
        r#"(version: 1, nodes: [(id: "slow", type: "test.slow",
            params: {{"steps": {steps}, "step_ms": {step_ms}}})])"#
    )
}
