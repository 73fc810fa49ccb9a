//! The operator interface every streaming operator implements.

use crate::OperatorError;
use arrow::array::RecordBatch;

/// Identifies one input of an operator (a topic partition, or the embedded
/// bus), so that event time can be tracked per input.
pub type InputId = usize;

/// A streaming operator: it is fed batches, and emits results when event
/// time (the watermark) passes the points it waits for.
///
/// Only [`Operator::process_batch`] is required; the hooks have defaults.
pub trait Operator {
    /// What the operator emits.
    type Output;

    /// Takes one batch from `input`. Must not block and must not emit: results
    /// come out of [`Operator::on_watermark`].
    fn process_batch(&mut self, input: InputId, batch: &RecordBatch) -> Result<(), OperatorError>;

    /// Marks an input as idle (no data for a while) so it does not hold event
    /// time back, or active again.
    fn set_idle(&mut self, _input: InputId, _idle: bool) {}

    /// Emits every result whose event time the watermark has passed.
    fn on_watermark(&mut self) -> Result<Vec<Self::Output>, OperatorError> {
        Ok(Vec::new())
    }
}
