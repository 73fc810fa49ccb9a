//! The sensitivity sweep as a picture: per fault, the share of bad patches
//! stopped in the canary stage against the fault's size, one curve per
//! canary size, with the 95% goal drawn across (SVG, plotters).

use super::sensitivity::{Detection, Sensitivity};
use plotters::prelude::*;
use std::path::Path;

/// The plot could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[error("plotting {path}: {reason}")]
pub struct PlotError {
    /// The file.
    pub path: String,
    /// What went wrong.
    pub reason: String,
}

const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Writes `s` to `path` as an SVG: a panel per fault, the first bake time
/// of the sweep.
pub fn plot(s: &Sensitivity, path: &Path) -> Result<(), PlotError> {
    let fail = |e: &dyn std::fmt::Display| PlotError {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let mut faults: Vec<&str> = Vec::new();
    for d in &s.detections {
        if !faults.contains(&d.fault.as_str()) {
            faults.push(&d.fault);
        }
    }
    let Some(bake) = s.detections.first().map(|d| d.bake_minutes) else {
        return Err(fail(&"nothing to plot: the sweep ran no bad patch"));
    };
    let mut canaries: Vec<usize> = s.detections.iter().map(|d| d.canary_vms).collect();
    canaries.sort_unstable();
    canaries.dedup();
    let root = SVGBackend::new(path, (360 * faults.len() as u32, 340)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    for (panel, fault) in root.split_evenly((1, faults.len())).iter().zip(&faults) {
        let lines: Vec<&Detection> = s
            .detections
            .iter()
            .filter(|d| d.fault == *fault && d.bake_minutes == bake)
            .collect();
        let unit = lines.first().map(|d| d.unit.as_str()).unwrap_or_default();
        let largest = lines.iter().map(|d| d.size).fold(0.0, f64::max);
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("{fault} ({bake} min bake)"), ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(0.0..largest * 1.05, 0.0..1.02)
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc(format!("fault size ({unit})"))
            .y_desc("stopped in the canary stage")
            .draw()
            .map_err(|e| fail(&e))?;
        chart
            .draw_series(LineSeries::new(
                [(0.0, 0.95), (largest * 1.05, 0.95)],
                BLACK.mix(0.4),
            ))
            .map_err(|e| fail(&e))?
            .label("goal: 95%")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.mix(0.4)));
        for (i, &c) in canaries.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let points: Vec<(f64, f64)> = lines
                .iter()
                .filter(|d| d.canary_vms == c)
                .map(|d| (d.size, d.probability()))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
                .map_err(|e| fail(&e))?
                .label(format!("{c} canaries"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour));
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(|e| fail(&e))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::sensitivity::FalseHalts;

    fn detection(fault: &str, size: f64, canary_vms: usize, stopped: usize) -> Detection {
        Detection {
            fault: fault.into(),
            size,
            unit: "pp".into(),
            canary_vms,
            bake_minutes: 120,
            rollouts: 10,
            stopped_in_canary: stopped,
            median_minutes_to_rollback: None,
            predicted: None,
        }
    }

    #[test]
    fn a_panel_per_fault_and_a_curve_per_canary_size() {
        let s = Sensitivity {
            detections: vec![
                detection("cpu-spike", 3.0, 6, 1),
                detection("cpu-spike", 6.0, 6, 7),
                detection("cpu-spike", 3.0, 30, 2),
                detection("cpu-spike", 6.0, 30, 10),
                detection("error-rate-rise", 0.5, 6, 9),
                detection("error-rate-rise", 0.5, 30, 10),
            ],
            false_halts: vec![FalseHalts {
                canary_vms: 6,
                bake_minutes: 120,
                rollouts: 10,
                halted: 0,
            }],
        };
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.svg");
        plot(&s, &file).unwrap();
        let svg = std::fs::read_to_string(&file).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        for text in [
            "cpu-spike (120 min bake)",
            "error-rate-rise (120 min bake)",
            "6 canaries",
            "30 canaries",
            "goal: 95%",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
        let empty = Sensitivity {
            detections: vec![],
            false_halts: vec![],
        };
        let e = plot(&empty, &file).unwrap_err().to_string();
        assert!(e.contains("nothing to plot"), "{e}");
    }
}
