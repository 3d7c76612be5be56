//! Results out: the terminal table, `results.csv`, `results.json` and `chart.svg` (server
//! CPU-seconds per delivered Gbit and packet loss against sessions, one line per peer and
//! transport).

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use crate::step::StepResult;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write {path}: {message}")]
    Write { path: String, message: String },
}

/// What the JSON file holds besides the rows.
#[derive(Debug, Serialize)]
pub struct RunInfo {
    pub started_utc: String,
    pub movie: String,
    /// Bits per second of the whole file, from ffprobe.
    pub movie_bit_rate: Option<f64>,
    pub command: Vec<String>,
    pub cpus: usize,
    pub results: Vec<StepResult>,
}

/// The table printed on the terminal and saved as `table.txt`.
pub fn table(rows: &[StepResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<7} {:<5} {:>5} {:>5} {:>8} {:>6} {:>7} {:>22} {:>14} {:>7} {:>9} {:>8} {:>9} {:>7} {:>6}  note",
        "peer",
        "tx",
        "sess",
        "held",
        "Mbit/s",
        "deliv%",
        "loss%",
        "late p50/p99/max ms",
        "1st pkt p50/99",
        "srvCPU%",
        "CPUs/Gbit",
        "RSS MiB",
        "KiB/sess",
        "cliCPU%",
        "box%"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<7} {:<5} {:>5} {:>5} {:>8.1} {:>6} {:>7.3} {:>22} {:>14} {:>7} {:>9} {:>8} {:>9} {:>7} {:>6}  {}",
            r.peer,
            r.transport,
            r.sessions,
            r.held,
            r.delivered_mbit_s,
            opt(r.delivered_pct, 0),
            r.loss_pct,
            format!("{:.1}/{:.1}/{:.1}", r.lateness_p50_ms, r.lateness_p99_ms, r.lateness_max_ms),
            format!("{:.1}/{:.1}", r.first_packet_p50_ms, r.first_packet_p99_ms),
            opt(r.server_cpu_pct, 0),
            opt(r.cpu_s_per_gbit, 3),
            opt(r.server_rss_mib, 1),
            opt(r.rss_per_session_kib, 1),
            opt(r.client_cpu_pct, 0),
            opt(r.machine_busy_pct, 0),
            r.note
        );
    }
    out
}

fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

/// Writes table.txt, results.csv, results.json and chart.svg into `dir`.
pub fn write_all(dir: &Path, info: &RunInfo) -> Result<(), ReportError> {
    let failure = |path: &Path| {
        let path = path.display().to_string();
        move |e: String| ReportError::Write { path, message: e }
    };
    let table_path = dir.join("table.txt");
    std::fs::write(&table_path, table(&info.results))
        .map_err(|e| failure(&table_path)(e.to_string()))?;

    let csv_path = dir.join("results.csv");
    let mut writer =
        csv::Writer::from_path(&csv_path).map_err(|e| failure(&csv_path)(e.to_string()))?;
    for row in &info.results {
        writer
            .serialize(row)
            .map_err(|e| failure(&csv_path)(e.to_string()))?;
    }
    writer
        .flush()
        .map_err(|e| failure(&csv_path)(e.to_string()))?;

    let json_path = dir.join("results.json");
    let json =
        serde_json::to_string_pretty(info).map_err(|e| failure(&json_path)(e.to_string()))?;
    std::fs::write(&json_path, json).map_err(|e| failure(&json_path)(e.to_string()))?;

    let chart_path = dir.join("chart.svg");
    chart(&chart_path, &info.results).map_err(failure(&chart_path))?;
    Ok(())
}

/// One line per (peer, transport): (sessions, value) points.
type Series = Vec<(String, Vec<(f64, f64)>)>;

fn series(rows: &[StepResult], value: impl Fn(&StepResult) -> Option<f64>) -> Series {
    let mut out: Series = Vec::new();
    for r in rows {
        let Some(v) = value(r) else { continue };
        let name = format!("{} {}", r.peer, r.transport);
        let point = (f64::from(r.sessions), v);
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, points)) => points.push(point),
            None => out.push((name, vec![point])),
        }
    }
    out
}

/// Three panels side by side, against sessions: CPU-seconds per Gbit, loss %, delivered %.
pub fn chart(path: &Path, rows: &[StepResult]) -> Result<(), String> {
    let root = SVGBackend::new(path, (1500, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let panels = root.split_evenly((1, 3));
    let [cpu, loss, delivered] = panels.as_slice() else {
        return Err("plotters did not split the chart into three panels".into());
    };
    panel(
        cpu,
        "Server CPU-seconds per delivered Gbit",
        "CPU-s / Gbit",
        &series(rows, |r| r.cpu_s_per_gbit.filter(|_| r.held > 0)),
    )?;
    panel(
        loss,
        "Packet loss",
        "loss %",
        &series(rows, |r| (r.packets > 0).then_some(r.loss_pct)),
    )?;
    // Shows a server falling behind even when it loses nothing.
    panel(
        delivered,
        "Delivered share of the movie's bitrate",
        "delivered %",
        &series(rows, |r| r.delivered_pct),
    )?;
    root.present().map_err(|e| e.to_string())
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_label: &str,
    series: &Series,
) -> Result<(), String> {
    let points = series.iter().flat_map(|(_, p)| p.iter());
    let x_max = points.clone().map(|p| p.0).fold(1.0, f64::max) * 1.05;
    let y_max = points.map(|p| p.1).fold(0.0, f64::max).max(0.01) * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("concurrent sessions")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc(y_label)
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(peer: &str, sessions: u32, cpu: f64, loss: f64) -> StepResult {
        StepResult {
            peer: peer.into(),
            transport: "mixed".into(),
            sessions,
            held: sessions,
            packets: 1000,
            cpu_s_per_gbit: Some(cpu),
            loss_pct: loss,
            ..StepResult::default()
        }
    }

    #[test]
    fn files_are_written_with_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let rows = vec![
            row("serval", 100, 0.2, 0.0),
            row("serval", 250, 0.25, 0.01),
            row("gst", 100, 5.0, 0.0),
        ];
        let info = RunInfo {
            started_utc: "2026-01-01T00:00:00Z".into(),
            movie: "m.mp4".into(),
            movie_bit_rate: Some(2e6),
            command: vec!["bench".into()],
            cpus: 2,
            results: rows,
        };
        write_all(dir.path(), &info).unwrap();
        let csv = std::fs::read_to_string(dir.path().join("results.csv")).unwrap();
        assert_eq!(csv.lines().count(), 4);
        assert!(csv.starts_with("peer,transport,sessions,held,"));
        let svg = std::fs::read_to_string(dir.path().join("chart.svg")).unwrap();
        assert!(svg.contains("<svg") && svg.contains("serval mixed") && svg.contains("gst mixed"));
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("results.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(json["results"].as_array().map(Vec::len), Some(3));
        let table = std::fs::read_to_string(dir.path().join("table.txt")).unwrap();
        assert_eq!(table.lines().count(), 4);
    }
}
