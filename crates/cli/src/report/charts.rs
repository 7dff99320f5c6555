//! The report's two charts, drawn as inline SVG by `plotters`' SVG backend: outcomes per day as
//! stacked bars, and latency percentiles per day as lines.

use cxone_uuid_audit_sqlite::Day;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// Which percentile a line draws.
type Pick = fn(&cxone_uuid_audit_sqlite::Quantiles) -> f64;

const SIZE: (u32, u32) = (900, 320);
const SUCCEEDED: RGBColor = RGBColor(46, 160, 67);
const FAILED: RGBColor = RGBColor(207, 34, 46);

fn day_label(days: &[Day], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() > 0.01 || i < 0.0 {
        return String::new();
    }
    days.get(i as usize)
        .map(|d| d.day.clone())
        .unwrap_or_default()
}

fn plotting<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("cannot draw the chart: {e:?}")
}

/// The chart both figures share: one x position per day, y from 0 to `top`, a legend; `series`
/// draws into it.
fn chart(
    days: &[Day],
    top: f64,
    y_desc: &str,
    series: impl FnOnce(&mut Chart<'_, '_>) -> anyhow::Result<()>,
) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plotting)?;
        let n = days.len().max(1) as f64;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5..n - 0.5, 0.0..top)
            .map_err(plotting)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(days.len().clamp(1, 12))
            .x_label_formatter(&|x| day_label(days, *x))
            .y_desc(y_desc)
            .draw()
            .map_err(plotting)?;
        series(&mut chart)?;
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plotting)?;
        root.present().map_err(plotting)?;
    }
    Ok(svg)
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Stacked bars: succeeded below, failed above, one bar per day.
pub(super) fn outcomes(days: &[Day]) -> anyhow::Result<String> {
    let top = days
        .iter()
        .map(|d| d.succeeded + d.failed)
        .max()
        .unwrap_or(0)
        .max(1) as f64
        * 1.1;
    chart(days, top, "outcomes", |chart| {
        let bar = |i: usize, lo: u64, hi: u64, color: RGBColor| {
            let x = i as f64;
            Rectangle::new(
                [(x - 0.35, lo as f64), (x + 0.35, hi as f64)],
                color.filled(),
            )
        };
        chart
            .draw_series(
                days.iter()
                    .enumerate()
                    .map(|(i, d)| bar(i, 0, d.succeeded, SUCCEEDED)),
            )
            .map_err(plotting)?
            .label("succeeded")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], SUCCEEDED.filled()));
        chart
            .draw_series(
                days.iter()
                    .enumerate()
                    .map(|(i, d)| bar(i, d.succeeded, d.succeeded + d.failed, FAILED)),
            )
            .map_err(plotting)?
            .label("failed")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], FAILED.filled()));
        Ok(())
    })
}

/// p50, p95 and p99 of server latency, one point per day that recorded any.
pub(super) fn latency(days: &[Day]) -> anyhow::Result<String> {
    let top = days
        .iter()
        .filter_map(|d| d.latency_ms.as_ref().map(|l| l.p99))
        .fold(1.0_f64, f64::max)
        * 1.1;
    chart(days, top, "ms", |chart| {
        let series: [(&str, RGBColor, Pick); 3] = [
            ("p50", RGBColor(9, 105, 218), |q| q.p50),
            ("p95", RGBColor(191, 135, 0), |q| q.p95),
            ("p99", RGBColor(207, 34, 46), |q| q.p99),
        ];
        for (name, color, pick) in series {
            let points: Vec<(f64, f64)> = days
                .iter()
                .enumerate()
                .filter_map(|(i, d)| d.latency_ms.as_ref().map(|q| (i as f64, pick(q))))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(plotting)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2))
                });
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 3, color.filled())),
                )
                .map_err(plotting)?;
        }
        Ok(())
    })
}
