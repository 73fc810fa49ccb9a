//! Residuals: how far each series' window landed from its forecast.
//!
//! Computed over whole windows in one pass (one array per quantity, no
//! per-row allocation). From a window's count, sum and sum of
//! squares per series, and a forecast `f`:
//!
//! - observed mean `m = sum / n`,
//! - residual `r = m - f`,
//! - residual RMSE over the window's samples
//!   `sqrt(mean((x - f)^2)) = sqrt((sum_sq / n - m^2) + r^2)`.

use crate::column::Validity;
use crate::window::WindowSums;
use arrow::array::{Array, AsArray, Float64Array};
use arrow::compute::kernels::numeric::div;
use arrow::datatypes::Float64Type;
use arrow::error::ArrowError;

/// The residual quantities of one window, one entry per series slot (null
/// where the series had no sample or no forecast).
#[derive(Debug, Clone)]
pub struct WindowResiduals {
    /// Observed window mean.
    pub observed: Float64Array,
    /// Observed mean minus forecast.
    pub residual: Float64Array,
    /// Root mean square of (sample - forecast) over the window's samples.
    pub residual_rmse: Float64Array,
}

/// Residuals of one window against `forecast`, in one pass over the
/// series (the window pass's widest step: three columns of every series).
pub fn window_residuals(
    sums: WindowSums,
    forecast: &Float64Array,
) -> Result<WindowResiduals, ArrowError> {
    let len = sums.count.len();
    if forecast.len() != len {
        return Err(ArrowError::InvalidArgumentError(format!(
            "a window of {len} series against a forecast of {}",
            forecast.len()
        )));
    }
    let forecasts = forecast.values();
    let mut observed = Vec::with_capacity(len);
    let mut residual = Vec::with_capacity(len);
    let mut residual_rmse = Vec::with_capacity(len);
    let (mut seen, mut fitted) = (Validity::new(len), Validity::new(len));
    for i in 0..len {
        let n = sums.count[i];
        let has = n > 0;
        let fits = has && forecast.is_valid(i);
        if has {
            seen.set(i);
        }
        if fits {
            fitted.set(i);
        }
        let n = f64::from(n.max(1));
        let mean = sums.sum[i] / n;
        let r = mean - forecasts[i];
        let within = sums.sum_sq[i] / n - mean * mean;
        observed.push(if has { mean } else { 0.0 });
        residual.push(if fits { r } else { 0.0 });
        // Rounding can leave a tiny negative variance; it means zero.
        residual_rmse.push(if fits {
            (within + r * r).max(0.0).sqrt()
        } else {
            0.0
        });
    }
    let fitted = fitted.finish();
    Ok(WindowResiduals {
        observed: Float64Array::new(observed.into(), seen.finish()),
        residual: Float64Array::new(residual.into(), fitted.clone()),
        residual_rmse: Float64Array::new(residual_rmse.into(), fitted),
    })
}

/// Deviation in sigmas: residual divided by the baseline's residual spread.
pub fn deviations(
    residual: &Float64Array,
    spread: &Float64Array,
) -> Result<Float64Array, ArrowError> {
    Ok(f64s(div(residual, spread)?))
}

fn f64s(array: arrow::array::ArrayRef) -> Float64Array {
    array.as_primitive::<Float64Type>().clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn residual_rmse_matches_the_definition() {
        // Series 0: samples 1, 3 (mean 2) against forecast 1: rmse = sqrt((0 + 4) / 2).
        // Series 1: no samples. Series 2: samples but no forecast.
        let sums = WindowSums {
            count: vec![2, 0, 1],
            sum: vec![4.0, 0.0, 5.0],
            sum_sq: vec![10.0, 0.0, 25.0],
        };
        let forecast = Float64Array::from(vec![Some(1.0), Some(1.0), None]);
        let r = window_residuals(sums, &forecast).unwrap();
        assert_eq!(r.observed.value(0), 2.0);
        assert_eq!(r.residual.value(0), 1.0);
        assert!((r.residual_rmse.value(0) - 2f64.sqrt()).abs() < 1e-12);
        assert!(r.observed.is_null(1) && r.residual.is_null(1));
        assert_eq!(r.observed.value(2), 5.0);
        assert!(r.residual.is_null(2) && r.residual_rmse.is_null(2));
    }

    #[test]
    fn deviations_are_null_where_the_baseline_is_not_ready() {
        let d = deviations(
            &Float64Array::from(vec![2.0, 2.0]),
            &Float64Array::from(vec![Some(0.5), None]),
        )
        .unwrap();
        assert_eq!(d.value(0), 4.0);
        assert!(d.is_null(1));
    }
}
