//! # stylegraph-server
//!
//! The HTTP automation server behind `stylegraph serve`: submit a graph, queue it, stream its
//! events, fetch its outputs. The API is described in `docs/server.md`.
//!
//! - One [`Session`](stylegraph_core::exec::Session) (one output cache) serves every request;
//!   runs execute one at a time from a bounded FIFO queue on a worker thread.
//! - Loopback only by default. Binding any other address needs a token, and when a token is set
//!   every request must carry `Authorization: Bearer <token>`.
//! - Request heads and bodies are size-limited, bad input gets a JSON error, and no part of a
//!   URL ever reaches the file system: files are written only where a graph's nodes say.
//!
//! ```no_run
//! use std::sync::Arc;
//! use stylegraph_core::{exec::{CancelToken, SessionConfig}, plugin::PluginHost};
//! use stylegraph_server::{serve, ServerConfig};
//! let host = Arc::new(PluginHost::discover(&[], true, true));
//! let shutdown = CancelToken::new(); // cancel it (e.g. on Ctrl-C) to stop
//! serve(ServerConfig::default(), host, SessionConfig::default(), shutdown).unwrap();
//! ```

mod api;
mod http;
mod job;
mod runs;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use stylegraph_core::exec::{CancelToken, Session, SessionConfig};
use stylegraph_core::plugin::PluginHost;

/// The address `stylegraph serve` listens on by default.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7870";
/// Environment variable the CLI reads the token from (so it stays out of `ps` output).
pub const TOKEN_ENV: &str = "STYLEGRAPH_TOKEN";

/// Settings of a server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Where to listen. A non-loopback address needs a `token`. Port 0 picks a free port
    /// (see [`Server::addr`]).
    pub addr: SocketAddr,
    /// When set, every request must send `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Most runs waiting in the queue (the running one not counted); more get 429.
    pub queue_limit: usize,
    /// Most ended runs remembered; the oldest are forgotten first.
    pub history_limit: usize,
    /// Largest request body in bytes; larger ones get 413.
    pub body_limit: usize,
    /// Most bytes of output tensors kept for fetching, over all runs; beyond it the oldest are
    /// dropped (their fetch answers 410).
    pub retain_budget_bytes: usize,
    /// Most connections served at once; more get 503.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 7870)),
            token: None,
            queue_limit: 16,
            history_limit: 100,
            body_limit: 16 << 20,
            retain_budget_bytes: 1 << 30,
            max_connections: 64,
        }
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{addr} is not a loopback address: serving it needs a token (--token or {TOKEN_ENV}), which every request must then send")]
    TokenRequired { addr: SocketAddr },
    #[error(
        "the token must be 1 to 4096 visible ASCII characters (no spaces or control characters)"
    )]
    BadToken,
    #[error("invalid server setting: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start a server thread: {0}")]
    Thread(#[source] std::io::Error),
}

fn check_config(config: &ServerConfig) -> Result<(), ServerError> {
    if let Some(t) = &config.token {
        if t.is_empty() || t.len() > 4096 || !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ServerError::BadToken);
        }
    } else if !config.addr.ip().is_loopback() {
        return Err(ServerError::TokenRequired { addr: config.addr });
    }
    let positive = [
        ("queue_limit", config.queue_limit),
        ("history_limit", config.history_limit),
        ("body_limit", config.body_limit),
        ("max_connections", config.max_connections),
    ];
    for (name, v) in positive {
        if v == 0 {
            return Err(ServerError::Config(format!("{name} must be at least 1")));
        }
    }
    Ok(())
}

/// A running server. Dropping it stops it (like [`Server::stop`]).
pub struct Server {
    addr: SocketAddr,
    shutdown: CancelToken,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds and starts serving in background threads. The server stops when `shutdown` is
    /// cancelled (or on [`Server::stop`]): the running run is cancelled, queued runs are
    /// cancelled, and open connections are closed.
    pub fn start(
        config: ServerConfig,
        host: Arc<PluginHost>,
        session_config: SessionConfig,
        shutdown: CancelToken,
    ) -> Result<Server, ServerError> {
        check_config(&config)?;
        let listener = TcpListener::bind(config.addr).map_err(|source| ServerError::Bind {
            addr: config.addr,
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.addr,
            source,
        })?;
        // Accepting polls, so that the loop notices `shutdown` without a wake-up connection.
        listener
            .set_nonblocking(true)
            .map_err(|source| ServerError::Bind { addr, source })?;
        let registry = Arc::new(runs::Registry::new(runs::RegistryLimits {
            queue_limit: config.queue_limit,
            history_limit: config.history_limit,
            retain_budget: config.retain_budget_bytes,
        }));
        let api = Arc::new(api::Api {
            host: host.clone(),
            registry: registry.clone(),
            token_digest: config.token.as_deref().map(api::token_digest),
            loopback: addr.ip().is_loopback(),
            started: Instant::now(),
        });
        let worker = {
            let registry = registry.clone();
            std::thread::Builder::new()
                .name("stylegraph-runs".into())
                .spawn(move || {
                    let session = Session::new(host, session_config);
                    registry.work(&session);
                })
                .map_err(ServerError::Thread)?
        };
        let acceptor = Acceptor {
            listener,
            api,
            registry: registry.clone(),
            limits: http::Limits {
                body_limit: config.body_limit,
            },
            max_connections: config.max_connections,
            shutdown: shutdown.clone(),
            stop: Arc::new(AtomicBool::new(false)),
            active: Arc::new(AtomicUsize::new(0)),
        };
        let thread = std::thread::Builder::new()
            .name("stylegraph-http".into())
            .spawn(move || acceptor.run(worker));
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                registry.stop();
                return Err(ServerError::Thread(e));
            }
        };
        tracing::info!(
            "serving the Stylegraph API on http://{addr}/v1/ ({})",
            if config.token.is_some() {
                "token required"
            } else {
                "loopback, no token"
            }
        );
        Ok(Server {
            addr,
            shutdown,
            thread: Some(thread),
        })
    }

    /// The address the server listens on (with the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancelToken {
        self.shutdown.clone()
    }

    /// Stops the server and waits until its threads have finished.
    pub fn stop(mut self) {
        self.shutdown.cancel();
        self.join();
    }

    /// Blocks until the shutdown token is cancelled and the server has stopped.
    pub fn wait(mut self) {
        self.join();
    }

    fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the server thread panicked");
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shutdown.cancel();
            self.join();
        }
    }
}

/// Serves until `shutdown` is cancelled. This is what `stylegraph serve` calls.
pub fn serve(
    config: ServerConfig,
    host: Arc<PluginHost>,
    session_config: SessionConfig,
    shutdown: CancelToken,
) -> Result<(), ServerError> {
    Server::start(config, host, session_config, shutdown)?.wait();
    Ok(())
}

/// The accepting thread: hands each connection to a thread of its own, and tears the server
/// down when asked to stop.
struct Acceptor {
    listener: TcpListener,
    api: Arc<api::Api>,
    registry: Arc<runs::Registry>,
    limits: http::Limits,
    max_connections: usize,
    shutdown: CancelToken,
    /// Tells connection threads to finish.
    stop: Arc<AtomicBool>,
    active: Arc<AtomicUsize>,
}

/// Decrements the connection count when a connection thread ends, however it ends.
struct ActiveGuard(Arc<AtomicUsize>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Acceptor {
    fn run(self, worker: JoinHandle<()>) {
        const ACCEPT_POLL: Duration = Duration::from_millis(20);
        while !self.shutdown.is_cancelled() {
            match self.listener.accept() {
                Ok((stream, peer)) => self.connection(stream, peer),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(ACCEPT_POLL)
                }
                Err(e) => {
                    // E.g. out of file descriptors: back off and keep serving.
                    tracing::warn!("accepting a connection failed: {e}");
                    std::thread::sleep(ACCEPT_POLL);
                }
            }
        }
        tracing::info!("server stopping");
        // Runs end first, so that event streams deliver their last events and finish; then
        // idle connections are told to close.
        self.registry.stop();
        if worker.join().is_err() {
            tracing::error!("the run worker panicked");
        }
        self.stop.store(true, Ordering::SeqCst);
        // Connection threads notice `stop` within a fraction of a second.
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        tracing::info!("server stopped");
    }

    fn connection(&self, stream: TcpStream, peer: SocketAddr) {
        if stream.set_nonblocking(false).is_err() {
            return;
        }
        if self.active.load(Ordering::SeqCst) >= self.max_connections {
            tracing::warn!(%peer, "too many connections; refusing one");
            http::refuse_connection(
                stream,
                503,
                "too_many_connections",
                "the server is serving as many connections as it allows; try again",
            );
            return;
        }
        self.active.fetch_add(1, Ordering::SeqCst);
        let guard = ActiveGuard(self.active.clone());
        let api = self.api.clone();
        let stop = self.stop.clone();
        let limits = self.limits;
        let spawned = std::thread::Builder::new()
            .name("stylegraph-conn".into())
            .spawn(move || {
                let _guard = guard;
                http::serve_connection(stream, &*api, limits, &stop);
            });
        if let Err(e) = spawned {
            // The closure (with the stream and the guard) was dropped: the client sees a close.
            tracing::warn!(%peer, "cannot start a connection thread: {e}");
        }
    }
}
