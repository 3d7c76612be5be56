//! Print what the media layer sees in a file — tracks, SDP, packet counts — and how fast it got there.
//!
//! `cargo run --release -p serval-stream-media --example media_info -- FILE...`

use std::time::{Duration, Instant};

use serval_stream_media::Movie;

fn main() {
    for arg in std::env::args().skip(1) {
        let path = std::path::Path::new(&arg);
        let opened = Instant::now();
        let movie = match Movie::open(path) {
            Ok(m) => m,
            Err(e) => {
                println!("{arg}: {e} (unsupported: {})", e.is_unsupported());
                continue;
            }
        };
        let open_time = opened.elapsed();
        println!(
            "{arg}: duration {:?}, opened in {open_time:?}, sample tables {} bytes",
            movie.duration(),
            movie.sample_table_bytes()
        );
        for t in movie.tracks() {
            println!("  {t:?}");
        }
        print!("{}", movie.sdp("media_info", "127.0.0.1"));
        for &track in movie.selected_tracks() {
            let started = Instant::now();
            let Ok(mut source) = movie.packets(track, Duration::ZERO) else {
                continue;
            };
            let (mut packets, mut bytes, mut error) = (0u64, 0u64, None);
            loop {
                match source.next_packet() {
                    Ok(Some(p)) => {
                        packets += 1;
                        bytes += p.payload.len() as u64;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
            let secs = started.elapsed().as_secs_f64();
            println!(
                "  track {track}: pt {} clock {} -> {packets} packets, {bytes} payload bytes in {:.2} ms ({:.0} packets/s, {:.0} MB/s){}",
                source.payload_type(),
                source.clock_rate(),
                secs * 1000.0,
                packets as f64 / secs,
                bytes as f64 / secs / 1e6,
                error.map(|e| format!(", stopped: {e}")).unwrap_or_default()
            );
        }
    }
}
