//! The weights of a trained LSTM forecaster, laid out for fused inference.

use crate::error::OperatorError;

/// One LSTM layer and its dense output head, with the four gates fused.
///
/// `gates` is one `(input + hidden) × 4·hidden` row-major matrix: row `k`
/// holds the weights of input feature `k` (then of hidden unit `k - input`)
/// for every gate, columns in gate order input, forget, cell, output. One
/// step is then a single product of `[x_t, h_{t-1}]` with `gates`: one input
/// and one hidden product for all four gates at once.
#[derive(Debug, Clone, PartialEq)]
pub struct LstmWeights {
    input: usize,
    hidden: usize,
    outputs: usize,
    gates: Vec<f32>,
    gate_bias: Vec<f32>,
    head: Vec<f32>,
    head_bias: Vec<f32>,
}

impl LstmWeights {
    /// Weights from their parts, checked for shape and finiteness.
    ///
    /// - `gates`: `(input + hidden) × 4·hidden`, row-major, gates i, f, g, o;
    /// - `gate_bias`: `4·hidden` (input and hidden biases summed);
    /// - `head`: `hidden × outputs`, row-major; `head_bias`: `outputs`.
    pub fn new(
        input: usize,
        hidden: usize,
        outputs: usize,
        gates: Vec<f32>,
        gate_bias: Vec<f32>,
        head: Vec<f32>,
        head_bias: Vec<f32>,
    ) -> Result<LstmWeights, OperatorError> {
        let check = |name: &'static str, values: &[f32], want: usize| {
            if values.len() != want {
                return Err(OperatorError::InvalidSetting {
                    setting: name,
                    reason: format!(
                        "{} values, expected {want} for input {input}, hidden {hidden}, outputs {outputs}",
                        values.len()
                    ),
                });
            }
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(OperatorError::InvalidSetting {
                    setting: name,
                    reason: format!("value {i} is not finite ({})", values[i]),
                });
            }
            Ok(())
        };
        if input == 0 || hidden == 0 || outputs == 0 {
            return Err(OperatorError::InvalidSetting {
                setting: "lstm shape",
                reason: format!(
                    "input {input}, hidden {hidden}, outputs {outputs}: all must be at least 1"
                ),
            });
        }
        check("gates", &gates, (input + hidden) * 4 * hidden)?;
        check("gate_bias", &gate_bias, 4 * hidden)?;
        check("head", &head, hidden * outputs)?;
        check("head_bias", &head_bias, outputs)?;
        Ok(LstmWeights {
            input,
            hidden,
            outputs,
            gates,
            gate_bias,
            head,
            head_bias,
        })
    }

    /// Input features per step.
    pub fn input(&self) -> usize {
        self.input
    }

    /// Hidden units.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Values the head predicts.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Fused gate matrix, `(input + hidden) × 4·hidden`.
    pub fn gates(&self) -> &[f32] {
        &self.gates
    }

    /// Gate biases, `4·hidden`.
    pub fn gate_bias(&self) -> &[f32] {
        &self.gate_bias
    }

    /// Head matrix, `hidden × outputs`.
    pub fn head(&self) -> &[f32] {
        &self.head
    }

    /// Head biases, `outputs`.
    pub fn head_bias(&self) -> &[f32] {
        &self.head_bias
    }

    /// Multiply-adds of one step for one row (gates and head), times two:
    /// the FLOP count benchmarks report.
    pub fn flops_per_step(&self) -> u64 {
        2 * ((self.input + self.hidden) * 4 * self.hidden) as u64
    }

    /// Deterministic small weights (a fixed pseudo-random sequence), for
    /// tests and benchmarks that need a model of a given shape.
    pub fn pseudo_random(input: usize, hidden: usize, outputs: usize, seed: u64) -> LstmWeights {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut next = |scale: f32| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        };
        let scale = 1.0 / ((input + hidden) as f32).sqrt();
        let gates = (0..(input + hidden) * 4 * hidden)
            .map(|_| next(scale))
            .collect();
        let gate_bias = (0..4 * hidden).map(|_| next(0.1)).collect();
        let head = (0..hidden * outputs).map(|_| next(scale)).collect();
        let head_bias = (0..outputs).map(|_| next(0.1)).collect();
        LstmWeights::new(input, hidden, outputs, gates, gate_bias, head, head_bias)
            .expect("shapes are consistent by construction")
    }
}
