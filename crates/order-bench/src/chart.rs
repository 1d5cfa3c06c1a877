//! The figures as a picture: orders/s and p99 latency against concurrency,
//! for the service and every baseline (an SVG, drawn with `plotters`; its
//! built-in font metrics, so no system font library is needed).

use std::path::Path;

use plotters::prelude::*;

/// One system's figures at each concurrency.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    /// (concurrency, orders/s, p99 ms)
    pub points: Vec<(usize, f64, f64)>,
}

const COLOURS: [RGBColor; 5] = [
    RGBColor(200, 60, 40),
    RGBColor(230, 150, 40),
    RGBColor(120, 60, 160),
    RGBColor(40, 110, 200),
    RGBColor(90, 90, 90),
];

pub fn draw(path: &Path, title: &str, series: &[Series]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let root = SVGBackend::new(path, (1100, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(plot_error)?;
    let (left, right) = root.split_horizontally(550);
    let max_c = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .max()
        .unwrap_or(64)
        .max(2) as f64;
    panel(
        &left,
        "checkouts per second (higher is better)",
        "orders/s",
        SeriesLabelPosition::LowerRight,
        max_c,
        series,
        |p| p.1,
    )?;
    panel(
        &right,
        "p99 latency (lower is better)",
        "p99 ms",
        SeriesLabelPosition::UpperLeft,
        max_c,
        series,
        |p| p.2,
    )?;
    root.present().map_err(plot_error)?;
    Ok(())
}

fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    unit: &str,
    legend: SeriesLabelPosition,
    max_c: f64,
    series: &[Series],
    value: impl Fn(&(usize, f64, f64)) -> f64,
) -> anyhow::Result<()> {
    let top = series
        .iter()
        .flat_map(|s| s.points.iter().map(&value))
        .fold(0.0_f64, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((1.0..max_c).log_scale(), 0.0..top.max(1.0))
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("concurrency (clients, log scale)")
        .y_desc(unit)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .light_line_style(WHITE)
        .draw()
        .map_err(plot_error)?;
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0 as f64, value(p))).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
            .map_err(plot_error)?
            .label(s.label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 4, colour.filled())),
            )
            .map_err(plot_error)?;
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

fn plot_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing the chart: {e:?}")
}
