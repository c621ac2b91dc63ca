//! The optional tract-onnx runtime (`tract` feature): runs ONNX graphs the
//! built-in evaluator does not, at a large cost in module size and start-up
//! time (docs/classifier.md). The input contract is the same.

use std::sync::Arc;

use tract_onnx::prelude::*;

use super::features::Features;
use crate::config_error::ConfigError;

pub struct TractModel {
    plan: Arc<TypedRunnableModel>,
}

impl TractModel {
    pub fn load(bytes: &[u8], path: &str) -> Result<Self, ConfigError> {
        let fail = |what: &str, err: TractError| ConfigError::new(path, format!("{what}: {err}"));
        let model = tract_onnx::onnx().model_for_read(&mut &bytes[..]).map_err(|e| fail("not a loadable ONNX model", e))?;
        let typed = model.into_typed().map_err(|e| fail("the ONNX model cannot be typed", e))?;
        check_contract(&typed).map_err(|msg| ConfigError::new(path, msg))?;
        let plan = typed
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(|e| fail("the ONNX model cannot be optimised", e))?;
        Ok(Self { plan })
    }

    pub fn run(&self, features: &Features) -> Result<f32, String> {
        self.run_tract(features).map_err(|e| e.to_string())
    }

    fn run_tract(&self, features: &Features) -> TractResult<f32> {
        let n = features.indices.len();
        let indices = Tensor::from_shape(&[n], &features.indices)?;
        let values = Tensor::from_shape(&[n], &features.values)?;
        let outputs = self.plan.run(tvec!(indices.into_tvalue(), values.into_tvalue()))?;
        let out = outputs.first().ok_or_else(|| TractError::msg("the model has no output"))?;
        let probs = out.to_plain_array_view::<f32>()?;
        match probs.iter().copied().collect::<TVec<f32>>().as_slice() {
            [p] if p.is_finite() => Ok(*p),
            other => Err(TractError::msg(format!("expected one finite float output, got {} values", other.len()))),
        }
    }
}

fn check_contract(model: &TypedModel) -> Result<(), String> {
    let contract = "expected inputs `indices: int64[n]`, `values: float32[n]` and one float32 output";
    if model.inputs.len() != 2 || model.outputs.len() != 1 {
        return Err(format!("the model has {} inputs and {} outputs; {contract}", model.inputs.len(), model.outputs.len()));
    }
    for (slot, want) in [(0usize, i64::datum_type()), (1, f32::datum_type())] {
        let fact = model.input_fact(slot).map_err(|e| e.to_string())?;
        if fact.datum_type != want || fact.rank() != 1 {
            return Err(format!("input {slot} is {fact:?}; {contract}"));
        }
    }
    let out = model.output_fact(0).map_err(|e| e.to_string())?;
    if out.datum_type != f32::datum_type() {
        return Err(format!("the output is {out:?}; {contract}"));
    }
    Ok(())
}
