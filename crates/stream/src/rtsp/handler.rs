//! Serves RTSP requests (RFC 2326 §10) against the session table: OPTIONS, DESCRIBE, SETUP,
//! PLAY, PAUSE, TEARDOWN, GET_PARAMETER and SET_PARAMETER. Pure apart from the catalog (which
//! reads movie files): time comes in as arguments, randomness from a seeded generator, and
//! what the driver must do (start a sender, wake one, log a closed session) comes out as
//! [`Effect`]s.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rtsp_types::headers::{self, HeaderName};
use rtsp_types::{Method, Request, Response, StatusCode, Version};

use crate::access::gate::{AccessGate, AccessOutcome, AccessRequest};
use crate::access::Action;
use crate::library::Catalog;
use crate::rtsp::error::RtspError;
use crate::rtsp::range::NptRange;
use crate::rtsp::session::{Session, SessionState, TrackSeed};
use crate::rtsp::transport::{requested_transport, ChosenTransport, RequestedTransport};

/// Methods we serve, as listed in OPTIONS' `Public`.
pub const PUBLIC_METHODS: &str =
    "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER";
/// `Server` header value.
pub const SERVER_NAME: &str = concat!("Serval/", env!("CARGO_PKG_VERSION"));
/// Tracks one session may set up; a movie with more is odd and each costs memory.
const MAX_TRACKS_PER_SESSION: usize = 16;

/// A session shared between the request handler and its sender task.
pub type SharedSession = Arc<Mutex<Session>>;

/// Locks a session, recovering from a poisoned lock: one panicked sender must not take every
/// later request on that session down with it.
pub fn lock(session: &SharedSession) -> MutexGuard<'_, Session> {
    session
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Settings of the protocol core, taken from the config at bind time.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub session_timeout: Duration,
    /// A session never played is closed this long after its SETUP.
    pub unplayed_session_timeout: Duration,
    pub max_bandwidth_bps: u64,
    /// The shared server RTP/RTCP port pair; `None` when UDP is not offered.
    pub udp_ports: Option<(u16, u16)>,
}

/// What the driver must do after a request.
pub enum Effect {
    /// A session was created: start its sender. `connection` is set for TCP interleaved
    /// sessions, whose packets go down that connection.
    Created {
        session: SharedSession,
        connection: Option<u64>,
    },
    /// A session started, seeked or paused: re-evaluate its next send time.
    Wake { session_id: String },
    /// A session ended: stop its sender, write its access log line.
    Closed(ClosedSession),
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    Teardown,
    Timeout,
    /// Set up but never played within `unplayed_session_timeout`.
    NeverPlayed,
    /// Closed while never played, to make room for a new session at a cap.
    EvictedUnplayed,
    ConnectionClosed,
    EndedByAdmin,
    Shutdown,
}

/// A session removed from the table, handed to the driver for logging.
pub struct ClosedSession {
    pub session: SharedSession,
    pub reason: CloseReason,
    pub closed_at: Instant,
}

struct SessionEntry {
    session: SharedSession,
    bandwidth_bps: u64,
    connection: Option<u64>,
    udp_routes: Vec<SocketAddr>,
}

/// Per-connection state the handler needs.
#[derive(Debug)]
pub struct Connection {
    pub id: u64,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// Interleaved channel → session id, for RTCP arriving on the connection.
    channels: HashMap<u8, String>,
    /// True once a SETUP on this connection created or joined a session.
    set_up_sessions: bool,
}

impl Connection {
    /// Whether a session was set up over this connection. A connection that never did may be
    /// closed when idle; one that did stays open for the client's TEARDOWN (players that keep
    /// alive with RTCP over UDP send nothing on it for a long time).
    pub fn has_set_up_sessions(&self) -> bool {
        self.set_up_sessions
    }

    pub fn new(id: u64, peer: SocketAddr, local: SocketAddr) -> Connection {
        Connection {
            id,
            peer,
            local,
            channels: HashMap::new(),
            set_up_sessions: false,
        }
    }
}

/// The RTSP server's protocol core: the session table and the request handlers.
pub struct RtspServer {
    settings: ServerSettings,
    catalog: Arc<dyn Catalog>,
    sessions: Mutex<HashMap<String, SessionEntry>>,
    /// Client RTCP address → session, to demultiplex RTCP arriving on the shared port.
    udp_routes: Mutex<HashMap<SocketAddr, String>>,
    rng: Mutex<StdRng>,
    /// Access rules and the directory; `None` serves everyone (protocol tests, fuzzing).
    access: Option<AccessGate>,
    /// Sessions one client address may hold (SETUP storms get 453 beyond it).
    max_sessions_per_client: usize,
}

impl RtspServer {
    pub fn new(settings: ServerSettings, catalog: Arc<dyn Catalog>, seed: u64) -> RtspServer {
        RtspServer {
            settings,
            catalog,
            sessions: Mutex::new(HashMap::new()),
            udp_routes: Mutex::new(HashMap::new()),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            access: None,
            max_sessions_per_client: usize::MAX,
        }
    }

    /// Checks every request against `gate` (IP lists, folder rules, credentials).
    pub fn with_access(mut self, gate: AccessGate) -> RtspServer {
        self.access = Some(gate);
        self
    }

    /// Caps the sessions one client address may hold.
    pub fn with_max_sessions_per_client(mut self, limit: usize) -> RtspServer {
        self.max_sessions_per_client = limit.max(1);
        self
    }

    /// The access gate, for the driver's connection-level address check.
    pub fn access(&self) -> Option<&AccessGate> {
        self.access.as_ref()
    }

    pub fn settings(&self) -> &ServerSettings {
        &self.settings
    }

    pub fn catalog(&self) -> &Arc<dyn Catalog> {
        &self.catalog
    }

    fn table(&self) -> MutexGuard<'_, HashMap<String, SessionEntry>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn routes(&self) -> MutexGuard<'_, HashMap<SocketAddr, String>> {
        self.udp_routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every open session.
    pub fn sessions(&self) -> Vec<SharedSession> {
        self.table().values().map(|e| e.session.clone()).collect()
    }

    pub fn session_count(&self) -> usize {
        self.table().len()
    }

    /// Answers one request. Never fails: errors become their status response.
    pub fn handle_request(
        &self,
        connection: &mut Connection,
        now: Instant,
        wallclock: SystemTime,
        request: &Request<Vec<u8>>,
    ) -> (Response<Vec<u8>>, Vec<Effect>) {
        let Some(cseq) = request
            .header(&headers::CSEQ)
            .map(|v| v.as_str().to_owned())
        else {
            let error = RtspError::Malformed("missing CSeq".into());
            return (error_response(None, &error), Vec::new());
        };
        if cseq.trim().parse::<u32>().is_err() {
            let error = RtspError::Malformed("CSeq is not a decimal sequence number".into());
            return (error_response(None, &error), Vec::new());
        }
        let user = match self.check_access(connection, wallclock, request) {
            Ok(user) => user,
            Err(refusal) => return (refusal.with_cseq(&cseq), Vec::new()),
        };
        let mut effects = Vec::new();
        match self.dispatch(connection, now, wallclock, request, &mut effects) {
            Ok(response) => {
                // The access log names who set a session up (`c-username`).
                for effect in &effects {
                    if let (Effect::Created { session, .. }, Some(user)) = (effect, &user) {
                        lock(session).user = Some(user.clone());
                    }
                }
                (with_common_headers(response, &cseq), effects)
            }
            Err(error) => {
                if error.is_server_fault() {
                    tracing::error!(target: "serval_stream::rtsp", %error, method = ?request.method(), "request failed");
                } else {
                    tracing::debug!(target: "serval_stream::rtsp", %error, method = ?request.method(), status = u16::from(error.status()), "request refused");
                }
                (error_response(Some(&cseq), &error), effects)
            }
        }
    }

    /// Runs the access gate on a request: `Ok` with the authenticated user (if the folder
    /// asked for one), or `Err` with the 401/403 to answer instead. OPTIONS and `*` requests
    /// name no movie and pass.
    fn check_access(
        &self,
        connection: &Connection,
        wallclock: SystemTime,
        request: &Request<Vec<u8>>,
    ) -> Result<Option<String>, ResponseBuilderLite> {
        let Some(gate) = self.access.as_ref() else {
            return Ok(None);
        };
        if *request.method() == Method::Options {
            return Ok(None);
        }
        let Some(url) = request.request_uri() else {
            return Ok(None);
        };
        let (movie_path, _) = split_control(url.path());
        let action = match request.method() {
            Method::Announce | Method::Record => Action::Write,
            _ => Action::Read,
        };
        let method = method_name(request.method());
        let now_unix = wallclock
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let outcome = gate.check(&AccessRequest {
            peer: connection.peer.ip(),
            method: &method,
            action,
            url_path: url.path(),
            movie_path: &movie_path,
            authorization: request.header(&headers::AUTHORIZATION).map(|v| v.as_str()),
            now_unix,
        });
        match outcome {
            AccessOutcome::Allowed { user } => Ok(user),
            AccessOutcome::Challenge { www_authenticate } => {
                tracing::debug!(target: "serval_stream::access", peer = %connection.peer, %method,
                                path = %movie_path, "credentials needed");
                Err(ResponseBuilderLite::status(StatusCode::Unauthorized)
                    .header(headers::WWW_AUTHENTICATE, www_authenticate))
            }
            AccessOutcome::Forbidden { reason } => {
                tracing::info!(target: "serval_stream::access", peer = %connection.peer, %method,
                               path = %movie_path, reason, "request forbidden");
                Err(ResponseBuilderLite::status(StatusCode::Forbidden))
            }
        }
    }

    fn dispatch(
        &self,
        connection: &mut Connection,
        now: Instant,
        wallclock: SystemTime,
        request: &Request<Vec<u8>>,
        effects: &mut Vec<Effect>,
    ) -> Result<ResponseBuilderLite, RtspError> {
        match request.method() {
            Method::Options => {
                Ok(ResponseBuilderLite::ok().header(headers::PUBLIC, PUBLIC_METHODS))
            }
            Method::Describe => self.describe(connection, request),
            Method::Setup => self.setup(connection, now, wallclock, request, effects),
            Method::Play => self.play(now, request, effects),
            Method::Pause => self.pause(now, request, effects),
            Method::Teardown => self.teardown(now, request, effects),
            Method::GetParameter | Method::SetParameter => self.keep_alive(now, request),
            Method::Announce | Method::Record | Method::Redirect | Method::PlayNotify => Err(
                RtspError::NotImplemented(format!("{:?}", request.method()).to_uppercase()),
            ),
            Method::Extension(name) => {
                Err(RtspError::NotImplemented(name.chars().take(32).collect()))
            }
        }
    }

    fn describe(
        &self,
        connection: &Connection,
        request: &Request<Vec<u8>>,
    ) -> Result<ResponseBuilderLite, RtspError> {
        let url = request_url(request)?;
        let movie_path = url.path().trim_end_matches('/').to_owned();
        let presentation = self.catalog.open(&movie_path)?;
        let session_name = movie_path.rsplit('/').next().unwrap_or("serval");
        let session_name = urlencoding::decode(session_name)
            .map(|s| s.into_owned())
            .unwrap_or_default();
        let sdp = presentation.sdp(&session_name, &connection.local.ip().to_string());
        let mut base = url.to_string();
        if !base.ends_with('/') {
            base.push('/');
        }
        Ok(ResponseBuilderLite::ok()
            .header(headers::CONTENT_BASE, base)
            .header(headers::CONTENT_TYPE, "application/sdp")
            .body(sdp.into_bytes()))
    }

    fn setup(
        &self,
        connection: &mut Connection,
        now: Instant,
        wallclock: SystemTime,
        request: &Request<Vec<u8>>,
        effects: &mut Vec<Effect>,
    ) -> Result<ResponseBuilderLite, RtspError> {
        let url = request_url(request)?;
        let (movie_path, track_part) = split_control(url.path());
        let requested = requested_transport(request)?;
        let existing = session_id(request).map(|id| self.find(&id)).transpose()?;
        let presentation = match &existing {
            Some(session) => {
                let session = lock(session);
                if session.movie_path != movie_path {
                    return Err(RtspError::AggregateNotAllowed("a session plays one movie"));
                }
                session.presentation.clone()
            }
            None => self.catalog.open(&movie_path)?,
        };
        let track_ids = presentation.track_ids();
        let track_id = match track_part {
            Some(part) => parse_track_id(part)
                .filter(|id| track_ids.contains(id))
                .ok_or_else(|| RtspError::NoSuchTrack(part.chars().take(32).collect()))?,
            None => match track_ids.as_slice() {
                [only] => *only,
                _ => {
                    return Err(RtspError::AggregateNotAllowed(
                        "SETUP names one track of a multi-track movie",
                    ))
                }
            },
        };
        let seed = {
            let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            TrackSeed {
                ssrc: rng.gen(),
                initial_seq: rng.gen(),
                timestamp_base: rng.gen(),
            }
        };
        let (session, created) = match existing {
            Some(session) => (session, false),
            None => {
                self.make_room(
                    connection.peer.ip(),
                    presentation.bits_per_second(),
                    now,
                    effects,
                )?;
                let id = format!(
                    "{:016X}",
                    self.rng
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .gen::<u64>()
                );
                let mut session = Session::new(
                    id,
                    now,
                    wallclock,
                    self.settings.session_timeout,
                    connection.peer,
                    movie_path.clone(),
                    presentation.clone(),
                );
                session.server_ip = Some(connection.local.ip());
                session.user_agent = request
                    .header(&headers::USER_AGENT)
                    .map(|v| v.as_str().chars().take(200).collect());
                (Arc::new(Mutex::new(session)), true)
            }
        };
        let mut guard = lock(&session);
        guard.touch(now);
        let is_new_track = guard.track_index(track_id).is_none();
        if is_new_track && guard.tracks.len() >= MAX_TRACKS_PER_SESSION {
            return Err(RtspError::AggregateNotAllowed(
                "too many tracks in one session",
            ));
        }
        if is_new_track && guard.state() == SessionState::Playing {
            return Err(RtspError::NotValidInState {
                method: "SETUP of a new track",
                state: "Playing",
            });
        }
        let interleaved_before = guard
            .tracks
            .first()
            .map(|t| matches!(t.transport, ChosenTransport::Interleaved { .. }));
        let chosen = match requested {
            RequestedTransport::Udp {
                client_rtp,
                client_rtcp,
            } => {
                let Some((server_rtp, server_rtcp)) = self.settings.udp_ports else {
                    return Err(crate::rtsp::transport::TransportError::Unsupported {
                        offered: "UDP (no server ports)".into(),
                    }
                    .into());
                };
                ChosenTransport::Udp {
                    client_rtp,
                    client_rtcp,
                    server_rtp,
                    server_rtcp,
                }
            }
            RequestedTransport::Interleaved { channels } => {
                let index = u8::try_from(guard.track_index(track_id).unwrap_or(guard.tracks.len()))
                    .unwrap_or(0);
                let even = index.saturating_mul(2);
                let (rtp_channel, rtcp_channel) =
                    channels.unwrap_or((even, even.saturating_add(1)));
                ChosenTransport::Interleaved {
                    rtp_channel,
                    rtcp_channel,
                }
            }
        };
        let is_interleaved = matches!(chosen, ChosenTransport::Interleaved { .. });
        if interleaved_before.is_some_and(|before| before != is_interleaved) {
            return Err(crate::rtsp::transport::TransportError::Unsupported {
                offered: "mixing UDP and TCP in one session".into(),
            }
            .into());
        }
        let control_url = url.to_string();
        guard.set_up_track(track_id, control_url, chosen, seed);
        let ssrc = guard
            .tracks
            .iter()
            .find(|t| t.track_id == track_id)
            .map_or(seed.ssrc, |t| t.ssrc);
        let id = guard.id.clone();
        let timeout_secs = guard.timeout().as_secs();
        drop(guard);

        let mut table = self.table();
        let entry = table.entry(id.clone()).or_insert_with(|| SessionEntry {
            session: session.clone(),
            bandwidth_bps: presentation.bits_per_second(),
            connection: is_interleaved.then_some(connection.id),
            udp_routes: Vec::new(),
        });
        match chosen {
            ChosenTransport::Udp { client_rtcp, .. } => {
                let route = SocketAddr::new(connection.peer.ip(), client_rtcp);
                entry.udp_routes.push(route);
                self.routes().insert(route, id.clone());
            }
            ChosenTransport::Interleaved { rtcp_channel, .. } => {
                connection.channels.insert(rtcp_channel, id.clone());
            }
        }
        drop(table);
        connection.set_up_sessions = true;
        if created {
            effects.push(Effect::Created {
                session,
                connection: is_interleaved.then_some(connection.id),
            });
        }
        Ok(ResponseBuilderLite::ok()
            .header(headers::TRANSPORT, chosen.header_value(ssrc))
            .header(headers::SESSION, format!("{id};timeout={timeout_secs}")))
    }

    fn play(
        &self,
        now: Instant,
        request: &Request<Vec<u8>>,
        effects: &mut Vec<Effect>,
    ) -> Result<ResponseBuilderLite, RtspError> {
        let session = self.session_of(request)?;
        for (name, header) in [("Scale", headers::SCALE), ("Speed", headers::SPEED)] {
            if let Some(value) = request.header(&header) {
                let normal = value.as_str().trim().parse::<f64>().is_ok_and(|v| v == 1.0);
                if !normal {
                    return Err(RtspError::HeaderNotValid {
                        header: name,
                        value: value.as_str().chars().take(20).collect(),
                    });
                }
            }
        }
        let range = request
            .header(&headers::RANGE)
            .map(|v| NptRange::parse(v.as_str()))
            .transpose()?;
        let mut guard = lock(&session);
        check_same_movie(&guard, request)?;
        guard.touch(now);
        check_aggregate(&guard, request)?;
        let started = guard.play(now, range)?;
        let id = guard.id.clone();
        let timeout_secs = guard.timeout().as_secs();
        drop(guard);
        effects.push(Effect::Wake {
            session_id: id.clone(),
        });
        let rtp_info = started
            .rtp_info
            .iter()
            .map(|e| format!("url={};seq={};rtptime={}", e.url, e.seq, e.rtptime))
            .collect::<Vec<_>>()
            .join(",");
        Ok(ResponseBuilderLite::ok()
            .header(headers::RANGE, started.range.to_string())
            .header(headers::SESSION, format!("{id};timeout={timeout_secs}"))
            .header(headers::RTP_INFO, rtp_info))
    }

    fn pause(
        &self,
        now: Instant,
        request: &Request<Vec<u8>>,
        effects: &mut Vec<Effect>,
    ) -> Result<ResponseBuilderLite, RtspError> {
        let session = self.session_of(request)?;
        let mut guard = lock(&session);
        check_same_movie(&guard, request)?;
        guard.touch(now);
        check_aggregate(&guard, request)?;
        if guard.state() != SessionState::Playing {
            return Err(RtspError::NotValidInState {
                method: "PAUSE",
                state: "Ready",
            });
        }
        let position = guard.pause(now);
        let id = guard.id.clone();
        drop(guard);
        effects.push(Effect::Wake {
            session_id: id.clone(),
        });
        Ok(ResponseBuilderLite::ok()
            .header(headers::SESSION, id)
            .header(
                headers::RANGE,
                NptRange {
                    start: Some(position),
                    end: None,
                }
                .to_string(),
            ))
    }

    fn teardown(
        &self,
        now: Instant,
        request: &Request<Vec<u8>>,
        effects: &mut Vec<Effect>,
    ) -> Result<ResponseBuilderLite, RtspError> {
        let id = session_id(request).ok_or_else(|| RtspError::UnknownSession(String::new()))?;
        let closed = self
            .close(&id, now, CloseReason::Teardown)
            .ok_or(RtspError::UnknownSession(id.clone()))?;
        effects.push(Effect::Closed(closed));
        Ok(ResponseBuilderLite::ok().header(headers::SESSION, id))
    }

    fn keep_alive(
        &self,
        now: Instant,
        request: &Request<Vec<u8>>,
    ) -> Result<ResponseBuilderLite, RtspError> {
        if session_id(request).is_some() {
            let session = self.session_of(request)?;
            lock(&session).touch(now);
        }
        if *request.method() == Method::SetParameter && !request.body().is_empty() {
            return Err(RtspError::ParameterNotUnderstood);
        }
        Ok(ResponseBuilderLite::ok())
    }

    fn find(&self, id: &str) -> Result<SharedSession, RtspError> {
        self.table()
            .get(id)
            .map(|e| e.session.clone())
            .ok_or_else(|| RtspError::UnknownSession(id.chars().take(64).collect()))
    }

    fn session_of(&self, request: &Request<Vec<u8>>) -> Result<SharedSession, RtspError> {
        let id = session_id(request).ok_or_else(|| RtspError::UnknownSession(String::new()))?;
        self.find(&id)
    }

    /// Removes a session from the table (TEARDOWN, timeout, admin, closed connection).
    pub fn close(&self, id: &str, now: Instant, reason: CloseReason) -> Option<ClosedSession> {
        let entry = self.table().remove(id)?;
        let mut routes = self.routes();
        for route in &entry.udp_routes {
            if routes.get(route).is_some_and(|owner| owner == id) {
                routes.remove(route);
            }
        }
        Some(ClosedSession {
            session: entry.session,
            reason,
            closed_at: now,
        })
    }

    /// Closes every session whose client went silent for longer than its timeout, and every
    /// session set up longer than `unplayed_session_timeout` ago that never played.
    pub fn expire(&self, now: Instant) -> Vec<ClosedSession> {
        let unplayed_limit = self.settings.unplayed_session_timeout;
        let expired: Vec<(String, CloseReason)> = self
            .table()
            .iter()
            .filter_map(|(id, e)| {
                let session = lock(&e.session);
                if session.is_expired(now) {
                    Some((id.clone(), CloseReason::Timeout))
                } else if !session.ever_played()
                    && now.saturating_duration_since(session.created_at) >= unplayed_limit
                {
                    Some((id.clone(), CloseReason::NeverPlayed))
                } else {
                    None
                }
            })
            .collect();
        expired
            .iter()
            .filter_map(|(id, reason)| self.close(id, now, *reason))
            .collect()
    }

    /// Before a new session of `wanted` bit/s for `client`: checks the per-address and the
    /// bandwidth caps and, where one would refuse, closes never-played sessions to make room:
    /// the client's own oldest for its address cap, and for the bandwidth cap the oldest of the
    /// address holding the most of them (the flooder, not its neighbours). Playing sessions are
    /// never closed; when only they hold the room, the SETUP is refused with 453.
    fn make_room(
        &self,
        client: std::net::IpAddr,
        wanted: u64,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) -> Result<(), RtspError> {
        loop {
            let held = self
                .table()
                .values()
                .filter(|e| lock(&e.session).client.ip() == client)
                .count();
            if held < self.max_sessions_per_client {
                break;
            }
            let Some(victim) = self.oldest_unplayed(Some(client)) else {
                return Err(RtspError::TooManySessions {
                    client,
                    limit: self.max_sessions_per_client,
                });
            };
            self.evict(&victim, now, effects);
        }
        loop {
            let in_use: u64 = self.table().values().map(|e| e.bandwidth_bps).sum();
            if in_use.saturating_add(wanted) <= self.settings.max_bandwidth_bps {
                return Ok(());
            }
            let Some(victim) = self.oldest_unplayed(None) else {
                return Err(RtspError::NotEnoughBandwidth {
                    in_use,
                    wanted,
                    limit: self.settings.max_bandwidth_bps,
                });
            };
            self.evict(&victim, now, effects);
        }
    }

    /// The oldest never-played session of `client`, or (with `None`) of the address holding the
    /// most never-played sessions.
    fn oldest_unplayed(&self, client: Option<std::net::IpAddr>) -> Option<String> {
        let table = self.table();
        let unplayed: Vec<(String, std::net::IpAddr, Instant)> = table
            .iter()
            .filter_map(|(id, e)| {
                let session = lock(&e.session);
                (!session.ever_played())
                    .then(|| (id.clone(), session.client.ip(), session.created_at))
            })
            .collect();
        drop(table);
        let address = match client {
            Some(ip) => ip,
            None => {
                let mut counts: HashMap<std::net::IpAddr, usize> = HashMap::new();
                for (_, ip, _) in &unplayed {
                    *counts.entry(*ip).or_default() += 1;
                }
                counts.into_iter().max_by_key(|(_, n)| *n)?.0
            }
        };
        unplayed
            .into_iter()
            .filter(|(_, ip, _)| *ip == address)
            .min_by_key(|(_, _, created)| *created)
            .map(|(id, _, _)| id)
    }

    fn evict(&self, id: &str, now: Instant, effects: &mut Vec<Effect>) {
        if let Some(closed) = self.close(id, now, CloseReason::EvictedUnplayed) {
            tracing::info!(target: "serval_stream::rtsp", session = id, client = %lock(&closed.session).client,
                           "closed a never-played session to make room for a new one");
            effects.push(Effect::Closed(closed));
        }
    }

    /// Closes the interleaved sessions of a connection that went away; UDP sessions stay
    /// (a client may come back on a new connection, RFC 2326 §A).
    pub fn connection_closed(&self, connection_id: u64, now: Instant) -> Vec<ClosedSession> {
        let owned: Vec<String> = self
            .table()
            .iter()
            .filter(|(_, e)| e.connection == Some(connection_id))
            .map(|(id, _)| id.clone())
            .collect();
        owned
            .iter()
            .filter_map(|id| self.close(id, now, CloseReason::ConnectionClosed))
            .collect()
    }

    /// Closes everything (shutdown).
    pub fn close_all(&self, now: Instant, reason: CloseReason) -> Vec<ClosedSession> {
        let ids: Vec<String> = self.table().keys().cloned().collect();
        ids.iter()
            .filter_map(|id| self.close(id, now, reason))
            .collect()
    }

    /// RTCP that arrived on the shared server RTCP port from `from`.
    pub fn udp_rtcp(&self, from: SocketAddr, now: Instant, datagram: &[u8]) -> Option<String> {
        let id = self.routes().get(&from).cloned()?;
        let session = self.find(&id).ok()?;
        let outcome = lock(&session).handle_rtcp(now, datagram);
        if let Err(error) = outcome {
            tracing::debug!(target: "serval_stream::rtcp", %from, %error, "unreadable RTCP");
        }
        Some(id)
    }

    /// A `$`-framed frame on a connection: RTCP on a session's odd channel; anything else is
    /// ignored (clients send nothing else to a player-only server).
    pub fn interleaved(&self, connection: &Connection, now: Instant, channel: u8, payload: &[u8]) {
        let Some(id) = connection.channels.get(&channel) else {
            return;
        };
        if let Ok(session) = self.find(id) {
            let _ = lock(&session).handle_rtcp(now, payload);
        }
    }
}

/// Response parts before the common headers are added; the handlers build these.
pub struct ResponseBuilderLite {
    status: StatusCode,
    headers: Vec<(HeaderName, String)>,
    body: Vec<u8>,
}

impl ResponseBuilderLite {
    fn ok() -> Self {
        ResponseBuilderLite::status(StatusCode::Ok)
    }

    fn status(status: StatusCode) -> Self {
        ResponseBuilderLite {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn with_cseq(self, cseq: &str) -> Response<Vec<u8>> {
        with_common_headers(self, cseq)
    }

    fn header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }
}

fn with_common_headers(parts: ResponseBuilderLite, cseq: &str) -> Response<Vec<u8>> {
    let mut builder = Response::builder(Version::V1_0, parts.status)
        .header(headers::CSEQ, cseq)
        .header(headers::SERVER, SERVER_NAME);
    for (name, value) in parts.headers {
        builder = builder.header(name, value);
    }
    builder.build(parts.body)
}

/// The response for a refused request.
pub fn error_response(cseq: Option<&str>, error: &RtspError) -> Response<Vec<u8>> {
    status_response(cseq, error.status())
}

/// A bodiless response with a status, for framing-level refusals too.
pub fn status_response(cseq: Option<&str>, status: StatusCode) -> Response<Vec<u8>> {
    let mut builder = Response::builder(Version::V1_0, status).header(headers::SERVER, SERVER_NAME);
    if let Some(cseq) = cseq {
        builder = builder.header(headers::CSEQ, cseq);
    }
    if status == StatusCode::NotImplemented || status == StatusCode::MethodNotValidInThisState {
        builder = builder.header(headers::ALLOW, PUBLIC_METHODS);
    }
    builder.build(Vec::new())
}

/// Serializes a response for the wire.
pub fn response_bytes(response: &Response<Vec<u8>>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(256 + response.body().len());
    // Writing into a Vec cannot fail for I/O reasons; a header value the serializer refuses
    // would be our bug, and the client then gets nothing rather than a broken message.
    if response.write(&mut bytes).is_err() {
        bytes.clear();
    }
    bytes
}

fn request_url(request: &Request<Vec<u8>>) -> Result<&rtsp_types::Url, RtspError> {
    request
        .request_uri()
        .ok_or_else(|| RtspError::Malformed("request URI `*` is only for OPTIONS".into()))
}

fn session_id(request: &Request<Vec<u8>>) -> Option<String> {
    let value = request.header(&headers::SESSION)?;
    let id = value.as_str().split(';').next().unwrap_or_default().trim();
    (!id.is_empty()).then(|| id.chars().take(64).collect())
}

/// Splits `/sub/x.mp4/trackID=2` into the movie path and the control part.
fn split_control(path: &str) -> (String, Option<&str>) {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some((movie, last)) if last.starts_with("trackID=") => (movie.to_owned(), Some(last)),
        _ => (trimmed.to_owned(), None),
    }
}

fn parse_track_id(control: &str) -> Option<u32> {
    control.strip_prefix("trackID=")?.parse().ok()
}

/// The method as written on the wire (`DESCRIBE`), for the Digest response.
fn method_name(method: &Method) -> String {
    <&str>::from(method).chars().take(32).collect()
}

/// PLAY and PAUSE must name the movie their session plays: access was checked against the
/// request URL, so a session set up for another URL must not be reachable through it.
fn check_same_movie(session: &Session, request: &Request<Vec<u8>>) -> Result<(), RtspError> {
    let Some(url) = request.request_uri() else {
        return Ok(());
    };
    let (movie_path, _) = split_control(url.path());
    if movie_path != session.movie_path {
        return Err(RtspError::SessionOfAnotherUrl {
            url_movie: movie_path.chars().take(64).collect(),
        });
    }
    Ok(())
}

/// PLAY and PAUSE act on the whole presentation when it has several tracks (RFC 2326 §A, 460).
fn check_aggregate(session: &Session, request: &Request<Vec<u8>>) -> Result<(), RtspError> {
    let Some(url) = request.request_uri() else {
        return Ok(());
    };
    let (_, track_part) = split_control(url.path());
    if track_part.is_some() && session.tracks.len() > 1 {
        return Err(RtspError::OnlyAggregateAllowed {
            n_tracks: session.tracks.len(),
        });
    }
    Ok(())
}
