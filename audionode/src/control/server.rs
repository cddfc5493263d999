//! The HTTP side of the control surface: axum on a small tokio runtime in
//! its own thread (the audio path never waits on it). Routes:
//!
//! | route | what |
//! |---|---|
//! | `GET /`, `/app.js`, `/style.css` | the mixing desk (embedded) |
//! | `GET /api/state` | the whole state |
//! | `GET /api/master` | the master strip: volume, output peaks, node counters |
//! | `PUT /api/master` | `{"volume": 0.5}` or `{"volume_db": -6}` |
//! | `GET /api/sources/{id}` | one source (404 when not active) |
//! | `PUT /api/sources/{id}` | `{"volume"? \| "volume_db"?, "balance"?, "mute"?, "solo"?}` |
//! | `GET /api/outputs` | the mix's destinations |
//! | `POST /api/outputs` | `{"kind": "rtp"\|"udp-stereo", "addr": "IP:PORT"}` |
//! | `DELETE /api/outputs/{kind}/{addr}` | stop sending there |
//! | `GET /mix.sdp[?dest=IP:PORT]` | SDP of an RTP output (the first by default) |
//! | `GET /ws` | WebSocket: state, then deltas and meters |
//! | `GET /send` | the Send page: a browser's microphone as a source |
//! | `GET /ws/send` | WebSocket: a browser sender's stream ([`super::send`]) |
//! | `GET /listen`, `/player.js`, `/listen.js`, `/listen-worklet.js` | the Listen page (embedded) |
//! | `GET /ws/listen` | WebSocket: the live mix as PCM ([`super::listen`]) |
//! | `GET /metrics` | Prometheus text format |
//!
//! With a token, every route but the page's assets needs it, as
//! `Authorization: Bearer TOKEN` or `?token=TOKEN`. Before any route, every
//! request passes the Host, Origin and content-type checks of
//! [`super::security`]; connections are capped and timed out by
//! [`super::connections`].

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{broadcast, oneshot, Semaphore};

use super::outputs::{OutputRegistry, OutputRequest};
use crate::config::HttpSettings;

use super::connections;
use super::hub::{Hub, Tick};
use super::listen::{self, Listeners};
use super::send;
use crate::outbox::StatsReader;
use crate::web_source::WebSenders;

/// How often the mixer's latest stats frame is taken to the desk (20 Hz).
const TICK: Duration = Duration::from_millis(50);
use super::metrics;
use super::security::Guard;
use super::state::{ApiError, ClientMessage, MasterPatch, ServerMessage, SourcePatch};

/// Largest request body accepted.
pub const MAX_BODY: usize = 16 * 1024;
/// Largest WebSocket message accepted from a client.
pub const MAX_WS_MESSAGE: usize = 4 * 1024;
/// A WebSocket's read buffer: room for the largest message, instead of
/// tungstenite's default 128 KiB per client.
const WS_READ_BUFFER: usize = 2 * MAX_WS_MESSAGE;

const INDEX_HTML: &str = include_str!("../../assets/index.html");
const APP_JS: &str = include_str!("../../assets/app.js");
const STYLE_CSS: &str = include_str!("../../assets/style.css");

#[derive(Clone)]
struct AppState {
    hub: Arc<Hub>,
    outputs: Arc<OutputRegistry>,
    token: Option<Arc<str>>,
    /// One permit per WebSocket client allowed (`--http-max-ws-clients`).
    ws_slots: Arc<Semaphore>,
    max_ws_clients: usize,
    listeners: Arc<Listeners>,
    /// Browser senders' way into the mixer.
    senders: Arc<WebSenders>,
}

impl axum::extract::FromRef<AppState> for Arc<WebSenders> {
    fn from_ref(app: &AppState) -> Self {
        Arc::clone(&app.senders)
    }
}

/// A running control surface.
pub struct HttpServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `settings.addr` (errors at once, e.g. an occupied port) and
    /// serves the control surface on its own thread; it polls the mixer's
    /// `stats` 20 times a second (the mixer never waits for or wakes it).
    /// `listen` is where the node receives sources; the desk shows it.
    /// Browser senders' streams go into `senders`.
    /// `listeners` are fed the mix by the tap thread and served on
    /// `/ws/listen`.
    pub fn start(
        settings: &HttpSettings,
        hub: Arc<Hub>,
        stats: StatsReader,
        outputs: Arc<OutputRegistry>,
        listen: SocketAddr,
        senders: Arc<WebSenders>,
        listeners: Arc<Listeners>,
    ) -> std::io::Result<Self> {
        hub.set_listen(listen);
        let listener = TcpListener::bind(settings.addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let guard = Guard::new(addr, &settings.allowed_hosts);
        let limits = settings.limits;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("control-http")
            .enable_io()
            .enable_time()
            .build()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let state = AppState {
            hub: Arc::clone(&hub),
            outputs,
            token: settings.token.as_deref().map(Arc::from),
            ws_slots: Arc::new(Semaphore::new(limits.max_ws_clients)),
            max_ws_clients: limits.max_ws_clients,
            senders,
            listeners: Arc::clone(&listeners),
        };
        let thread = thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            log::error!("control surface: {e}");
                            return;
                        }
                    };
                    tokio::spawn(async move {
                        let mut interval = tokio::time::interval(TICK);
                        let mut last = None;
                        loop {
                            interval.tick().await;
                            let tick = stats.read(|frame| {
                                (last != Some(frame.at)).then(|| {
                                    last = Some(frame.at);
                                    Tick::from_frame(frame)
                                })
                            });
                            if let Some(mut tick) = tick {
                                tick.listeners = listeners.counts();
                                hub.on_tick(tick);
                            }
                        }
                    });
                    let app = router(state);
                    tokio::select! {
                        () = connections::serve(listener, app, guard, limits) => {}
                        _ = stopped => {}
                    }
                });
                // Open WebSockets would keep a graceful shutdown waiting forever.
                runtime.shutdown_timeout(Duration::from_millis(500));
            })?;
        Ok(Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route("/api/state", get(get_state))
        .route("/api/master", get(get_master).put(put_master))
        .route("/api/sources/{id}", get(get_source).put(put_source))
        .route("/api/outputs", get(get_outputs).post(post_output))
        .route("/api/outputs/{kind}/{addr}", delete(delete_output))
        .route("/mix.sdp", get(get_sdp))
        .route("/ws", get(websocket))
        .route("/ws/listen", get(listen_websocket))
        .route("/metrics", get(get_metrics))
        .merge(send::stream_routes())
        .layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route(
            "/",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                    INDEX_HTML,
                )
            }),
        )
        .route(
            "/app.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    APP_JS,
                )
            }),
        )
        .route(
            "/style.css",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
                    STYLE_CSS,
                )
            }),
        )
        .merge(send::page_routes())
        .route("/listen", get(|| asset("text/html", listen::LISTEN_HTML)))
        .route(
            "/listen.js",
            get(|| asset("text/javascript", listen::LISTEN_JS)),
        )
        .route(
            "/player.js",
            get(|| asset("text/javascript", listen::PLAYER_JS)),
        )
        .route(
            "/listen-worklet.js",
            get(|| asset("text/javascript", listen::WORKLET_JS)),
        )
        .merge(protected)
        .fallback(|| async { error_response(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .method_not_allowed_fallback(|| async {
            error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed here".into(),
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// An embedded page asset of type `kind` (UTF-8 text).
async fn asset(kind: &str, body: &'static str) -> Response {
    (
        [(header::CONTENT_TYPE, format!("{kind}; charset=utf-8"))],
        body,
    )
        .into_response()
}

fn error_response(status: StatusCode, message: String) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        error_response(status, self.message())
    }
}

fn json(message: &ServerMessage) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        message.to_json(),
    )
        .into_response()
}

/// The body as JSON of type `T`, with a clear message when it is not.
fn parse_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::BadRequest(e.body_text())
        }
    })?;
    serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))
}

async fn get_state(State(app): State<AppState>) -> Response {
    json(&app.hub.full_state())
}

async fn get_master(State(app): State<AppState>) -> Response {
    let body = serde_json::to_string(&app.hub.master()).expect("plain data serialises");
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn get_source(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let body = serde_json::to_string(&app.hub.source(&id)?).expect("plain data serialises");
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn put_master(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let patch: MasterPatch = parse_body(body)?;
    Ok(json(&app.hub.set_master(patch, peer)?))
}

async fn put_source(
    State(app): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let patch: SourcePatch = parse_body(body)?;
    Ok(json(&app.hub.set_source(&id, patch, peer)?))
}

async fn get_outputs(State(app): State<AppState>) -> Response {
    axum::Json(app.outputs.view()).into_response()
}

async fn post_output(
    State(app): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: OutputRequest = parse_body(body)?;
    let view = app.outputs.add(&request)?;
    app.hub.publish_outputs(&view);
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

async fn delete_output(
    State(app): State<AppState>,
    Path((kind, addr)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let view = app.outputs.remove(&kind, &addr)?;
    app.hub.publish_outputs(&view);
    Ok(axum::Json(view).into_response())
}

#[derive(serde::Deserialize)]
struct SdpQuery {
    dest: Option<String>,
}

async fn get_sdp(
    State(app): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<SdpQuery>,
) -> Result<Response, ApiError> {
    let sdp = app.outputs.sdp(query.dest.as_deref())?;
    Ok(([(header::CONTENT_TYPE, "application/sdp")], sdp).into_response())
}

async fn get_metrics(State(app): State<AppState>) -> Response {
    let (snapshot, names) = app.hub.snapshot_and_names();
    let text = metrics::render(&snapshot, app.listeners.counts(), |id| {
        names.get(&id).cloned().unwrap_or_default()
    });
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn require_token(
    State(app): State<AppState>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = &app.token else {
        return next.run(request).await;
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let query = request
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("token=")));
    let given = bearer.or(query).unwrap_or("");
    if constant_time_eq(given.as_bytes(), token.as_bytes()) {
        next.run(request).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}

/// Compares without an early exit, so timing does not reveal a prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn websocket(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    upgrade: WebSocketUpgrade,
) -> Response {
    // Taken before the upgrade so that a refused client gets a status, and
    // held by the client's task until it ends.
    let Ok(slot) = Arc::clone(&app.ws_slots).try_acquire_owned() else {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "too many WebSocket clients ({} at most); close one or try again later",
                app.max_ws_clients
            ),
        );
    };
    upgrade
        .max_message_size(MAX_WS_MESSAGE)
        .max_frame_size(MAX_WS_MESSAGE)
        .read_buffer_size(WS_READ_BUFFER)
        // Every send is flushed at once anyway; buffering more only costs memory.
        .write_buffer_size(0)
        .on_upgrade(move |socket| async move {
            serve_client(socket, app.hub, peer).await;
            drop(slot);
        })
}

/// A listener of the mix: refused with 503 and the reason before the
/// upgrade when `--max-listeners` are connected.
async fn listen_websocket(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    socket: Option<axum::Extension<connections::ConnectionSocket>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let slot = match app.listeners.try_slot() {
        Ok(slot) => slot,
        Err(full) => return error_response(StatusCode::SERVICE_UNAVAILABLE, full.to_string()),
    };
    if let Some(axum::Extension(socket)) = socket {
        socket.limit_send_buffer(listen::SEND_BUFFER);
    }
    upgrade
        .max_message_size(MAX_WS_MESSAGE)
        .max_frame_size(MAX_WS_MESSAGE)
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |socket| app.listeners.serve(socket, peer, slot))
}

/// One WebSocket client: the state, then every broadcast message; changes
/// it sends are applied like REST calls (errors come back to it alone).
async fn serve_client(socket: WebSocket, hub: Arc<Hub>, peer: SocketAddr) {
    let (mut tx, mut rx) = socket.split();
    let (initial, mut updates) = hub.subscribe();
    if tx
        .send(Message::Text(initial.to_json().into()))
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            update = updates.recv() => {
                let text: String = match update {
                    Ok(text) => text.to_string(),
                    // Too slow to keep up: start again from the whole state.
                    Err(broadcast::error::RecvError::Lagged(_)) => hub.full_state().to_json(),
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if tx.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
            incoming = rx.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                let result = serde_json::from_str::<ClientMessage>(&text)
                    .map_err(|e| ApiError::BadRequest(format!("malformed message: {e}")))
                    .and_then(|m| match m {
                        ClientMessage::SetMaster { volume } => hub.set_master(MasterPatch { volume: Some(volume), volume_db: None }, peer),
                        ClientMessage::SetSource { id, name, volume, balance, mute, solo } => {
                            hub.set_source(&id, SourcePatch { name, volume, volume_db: None, balance, mute, solo }, peer)
                        }
                    });
                if let Err(e) = result {
                    let reply = serde_json::json!({ "type": "error", "status": e.status(), "message": e.message() });
                    if tx.send(Message::Text(reply.to_string().into())).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
