//! Renders a time series CSV (a header `t_s,NAME,NAME...`, then one row per sample) as an SVG
//! with one panel per column against time: what `tools/soak` and the SYN flood test write.
//!
//!     cargo run --release --example plot-series -- target/soak/soak.csv docs/soak.svg "soak"

#[path = "plot_font.rs"]
mod plot_font;

use anyhow::{bail, Context, Result};
use plotters::prelude::*;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (csv, out, title) = match args.as_slice() {
        [_, csv, out] => (csv, out, csv.as_str()),
        [_, csv, out, title] => (csv, out, title.as_str()),
        _ => bail!("usage: plot-series SERIES.csv OUT.svg [TITLE]"),
    };
    plot_font::register()?;
    let text = std::fs::read_to_string(csv).with_context(|| format!("reading {csv}"))?;
    let mut lines = text.lines().filter(|l| !l.is_empty());
    let header: Vec<&str> = lines.next().context("an empty file")?.split(',').collect();
    if header.len() < 2 || header[0] != "t_s" {
        bail!("{csv}: the header must be t_s,NAME...: {:?}", header);
    }
    let mut rows: Vec<Vec<f64>> = Vec::new();
    for (n, line) in lines.enumerate() {
        let v: Vec<f64> = line
            .split(',')
            .map(|f| f.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("{csv}:{}: {line}", n + 2))?;
        if v.len() != header.len() {
            bail!("{csv}:{}: {} fields, the header has {}", n + 2, v.len(), header.len());
        }
        rows.push(v);
    }
    if rows.is_empty() {
        bail!("{csv}: no samples");
    }
    let t_max = rows.iter().map(|r| r[0]).fold(1.0, f64::max);
    let panels = header.len() - 1;
    let root = SVGBackend::new(out, (900, 220 * panels as u32 + 40)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    for (k, area) in root.split_evenly((panels, 1)).iter().enumerate() {
        let col = k + 1;
        let y_max = rows.iter().map(|r| r[col]).fold(0.0, f64::max) * 1.1 + 1e-9;
        let mut chart = ChartBuilder::on(area)
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .caption(header[col], ("sans-serif", 15))
            .build_cartesian_2d(0.0..t_max, 0.0..y_max)?;
        chart.configure_mesh().x_desc("seconds").light_line_style(WHITE.mix(0.0)).draw()?;
        chart.draw_series(LineSeries::new(rows.iter().map(|r| (r[0], r[col])), &Palette99::pick(k)))?;
    }
    root.present().with_context(|| format!("writing {out}"))?;
    Ok(())
}
