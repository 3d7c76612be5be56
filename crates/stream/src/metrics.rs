//! Prometheus metrics of the streaming service, registered under the `stream` prefix.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Handles to every metric; cheap to clone (they share their values).
#[derive(Clone, Default)]
pub struct StreamMetrics {
    pub sessions_open: Gauge,
    pub sessions_total: Counter,
    pub connections_open: Gauge,
    pub rtp_packets_sent: Counter,
    pub rtp_bytes_sent: Counter,
    pub rtcp_reports_received: Counter,
    pub rtcp_packets_lost: Counter,
    pub slow_readers_dropped: Counter,
    pub connections_refused: Counter,
    pub idle_connections_evicted: Counter,
    /// Never-played sessions closed to make room at a cap (SETUP floods).
    pub sessions_evicted_unplayed: Counter,
    /// Never-played sessions closed by `unplayed_session_timeout`.
    pub sessions_expired_unplayed: Counter,
    pub requests_timed_out: Counter,
    pub requests_unauthorized: Counter,
    pub requests_forbidden: Counter,
    /// Packet chunks shared by the sessions playing now (refreshed every second).
    pub packet_chunks_live: Gauge,
}

impl StreamMetrics {
    pub fn register(registry: &mut Registry) -> StreamMetrics {
        let metrics = StreamMetrics::default();
        let registry = registry.sub_registry_with_prefix("stream");
        registry.register(
            "sessions_open",
            "RTSP sessions open now",
            metrics.sessions_open.clone(),
        );
        registry.register(
            "sessions",
            "RTSP sessions created",
            metrics.sessions_total.clone(),
        );
        registry.register(
            "sessions_evicted_unplayed",
            "Sessions set up but never played, closed to make room for a new one at a cap",
            metrics.sessions_evicted_unplayed.clone(),
        );
        registry.register(
            "sessions_expired_unplayed",
            "Sessions set up but never played, closed after unplayed_session_timeout",
            metrics.sessions_expired_unplayed.clone(),
        );
        registry.register(
            "packet_chunks_live",
            "Packetized runs of movie samples in memory, each shared by the sessions playing it",
            metrics.packet_chunks_live.clone(),
        );
        registry.register(
            "connections_open",
            "RTSP connections open now",
            metrics.connections_open.clone(),
        );
        registry.register(
            "rtp_packets_sent",
            "RTP packets sent",
            metrics.rtp_packets_sent.clone(),
        );
        registry.register(
            "rtp_bytes_sent",
            "RTP payload and header bytes sent",
            metrics.rtp_bytes_sent.clone(),
        );
        registry.register(
            "rtcp_reports_received",
            "RTCP packets received from clients",
            metrics.rtcp_reports_received.clone(),
        );
        registry.register(
            "rtcp_packets_lost",
            "Packets clients reported lost (cumulative, counted when a session ends)",
            metrics.rtcp_packets_lost.clone(),
        );
        registry.register(
            "slow_readers_dropped",
            "TCP connections closed because the client did not read fast enough",
            metrics.slow_readers_dropped.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections refused at accept: address denied, per-address cap, or no free slot",
            metrics.connections_refused.clone(),
        );
        registry.register(
            "idle_connections_evicted",
            "Connections without a session closed to make room for new ones",
            metrics.idle_connections_evicted.clone(),
        );
        registry.register(
            "requests_timed_out",
            "Connections closed because a request did not arrive whole within the request timeout",
            metrics.requests_timed_out.clone(),
        );
        registry.register(
            "requests_unauthorized",
            "Requests answered 401 (credentials missing, wrong or stale)",
            metrics.requests_unauthorized.clone(),
        );
        registry.register(
            "requests_forbidden",
            "Requests answered 403 (address refused, user without rights, or rate-limited)",
            metrics.requests_forbidden.clone(),
        );
        metrics
    }
}
