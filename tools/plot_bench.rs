//! Renders `tools/bench`'s rates (CSV: name,run,mpps) as a PNG bar chart: the median of each
//! measurement, with every run's figure as a dot.
//!
//!     cargo run --release --example plot-bench -- target/bench/bench.csv docs/bench.png
//!
//! Text needs a TrueType font: DejaVu Sans (Debian's fonts-dejavu-core), or `XVS_PLOT_FONT`.

#[path = "plot_font.rs"]
mod plot_font;

use anyhow::{bail, Context, Result};
use plotters::prelude::*;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, csv, out] = args.as_slice() else { bail!("usage: plot-bench BENCH.csv OUT.png") };
    plot_font::register()?;
    let text = std::fs::read_to_string(csv).with_context(|| format!("reading {csv}"))?;
    // Measurements in the order they first appear, with their runs' rates.
    let mut rows: Vec<(String, Vec<f64>)> = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let [name, _run, mpps] = f.as_slice() else { bail!("{csv}:{}: expected name,run,mpps: {line}", n + 1) };
        let v: f64 = mpps.parse().with_context(|| format!("{csv}:{}: rate '{mpps}'", n + 1))?;
        match rows.iter_mut().find(|(k, _)| k == name) {
            Some((_, vs)) => vs.push(v),
            None => rows.push((name.to_string(), vec![v])),
        }
    }
    if rows.is_empty() {
        bail!("{csv}: no measurements");
    }
    let median = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(|a, b| a.total_cmp(b));
        s[s.len() / 2]
    };
    let top = rows.iter().flat_map(|(_, v)| v.iter().copied()).fold(0.0, f64::max) * 1.15;
    let root = BitMapBackend::new(out, (1000, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let names: Vec<String> = rows.iter().map(|(k, _)| k.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption("tools/bench: Mpps at the sink (median bar, runs as dots)", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..rows.len() as f64 - 0.5, 0.0..top.max(0.1))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(rows.len())
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 0.01 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("Mpps")
        .label_style(("sans-serif", 14))
        .draw()?;
    for (i, (_, v)) in rows.iter().enumerate() {
        let x = i as f64;
        let m = median(v);
        chart.draw_series(std::iter::once(Rectangle::new([(x - 0.35, 0.0), (x + 0.35, m)], BLUE.mix(0.5).filled())))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{m:.2}"),
            (x - 0.25, m + top * 0.02),
            ("sans-serif", 13),
        )))?;
        chart.draw_series(v.iter().map(|&r| Circle::new((x, r), 3, BLACK.filled())))?;
    }
    root.present()?;
    println!("{out}: {} measurements", rows.len());
    Ok(())
}
