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
        metrics
    }
}
