//! `serval bench stream`: drives many RTSP sessions against Serval and its peers and reports
//! throughput, loss, lateness, start latency, CPU and memory per step.
