//! Renders `tools/flows-sweep`'s CSV (label,mode,flows,ns_per_packet) as an SVG line plot: ns
//! per packet against the number of flows (log scale), one line per label and mode, the
//! median where a point was measured more than once.
//!
//!     cargo run --release --example plot-flows -- sweep.csv docs/flows.svg

use anyhow::{bail, Context, Result};
use plotters::prelude::*;
use std::collections::BTreeMap;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, csv, out] = args.as_slice() else { bail!("usage: plot-flows SWEEP.csv OUT.svg") };
    let text = std::fs::read_to_string(csv).with_context(|| format!("reading {csv}"))?;
    // (label mode) -> flows -> measurements.
    let mut series: BTreeMap<String, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.starts_with("label") && !l.is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let [label, mode, flows, ns] = f.as_slice() else { bail!("{csv}:{}: expected 4 fields: {line}", n + 1) };
        let flows: u64 = flows.parse().with_context(|| format!("{csv}:{}: flows {flows}", n + 1))?;
        let ns: f64 = ns.parse().with_context(|| format!("{csv}:{}: ns {ns}", n + 1))?;
        series.entry(format!("{label} {mode}")).or_default().entry(flows).or_default().push(ns);
    }
    if series.is_empty() {
        bail!("{csv}: no measurements");
    }
    let points: BTreeMap<String, Vec<(u64, f64)>> =
        series.into_iter().map(|(k, m)| (k, m.into_iter().map(|(f, mut v)| (f, median(&mut v))).collect())).collect();
    let max_flows = points.values().flatten().map(|p| p.0).max().unwrap_or(1);
    let min_flows = points.values().flatten().map(|p| p.0).min().unwrap_or(1);
    let max_ns = points.values().flatten().map(|p| p.1).fold(0.0, f64::max);
    let root = SVGBackend::new(out, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("established packets: ns per packet against flows in the table", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d((min_flows..max_flows).log_scale(), 0.0..max_ns * 1.15)?;
    chart.configure_mesh().x_desc("flows (random order)").y_desc("ns / packet").draw()?;
    for (i, (name, pts)) in points.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    println!("{out}: {} series", points.len());
    Ok(())
}
