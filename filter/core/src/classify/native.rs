//! The built-in ONNX evaluator: runs the graphs a hashed-feature linear
//! model exports to (`Gather → Cast → Mul → ReduceSum → Add → Sigmoid`, the
//! shape `scripts/train-classifier` writes) over one-dimensional tensors.
//!
//! Why not a general runtime in the filter: with tract-onnx the module grew
//! to 18 MB and Envoy took ~30 s to be ready, because V8 compiles the whole
//! module in every Envoy that loads it. This evaluator is a few hundred lines
//! of code. Everything is decided when the plugin starts — the operators,
//! their types, which inputs they read — so a request only runs a fixed
//! list of steps. A graph outside this subset is refused at start with the
//! operator it does not know; builds with the `tract` feature hand such
//! graphs to tract-onnx instead.

use std::borrow::Cow;
use std::collections::HashMap;

use super::features::{Features, DIM};
use super::onnx::{self, Tensor, TensorData};

/// Operators this evaluator runs.
pub const SUPPORTED: &str = "Gather, Cast (to float), Mul, Add, Sub, Div, ReduceSum, Sigmoid, Identity";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    F32,
    I64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Gather,
    CastToF32,
    Arith(Arith),
    /// Sums every element of a one-dimensional tensor into one.
    ReduceSum,
    Sigmoid,
    Identity,
}

#[derive(Debug)]
struct Step {
    op: Op,
    inputs: Vec<usize>,
    output: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// A compiled graph: constants in their slots, steps in graph order.
#[derive(Debug)]
pub struct NativeModel {
    constants: Vec<Option<Value>>,
    steps: Vec<Step>,
    indices_slot: usize,
    values_slot: usize,
    output_slot: usize,
    /// The same graph as one fused loop, when it is a linear model.
    linear: Option<Linear>,
}

/// `post(Σ weights[indices] · values)`: what the steps compute when the
/// graph is a (generalised) linear model, as every model the training script
/// writes is. Runs without allocating and in the order the steps would, so
/// it gives the same bits; and the dot product may come straight from the
/// featuriser ([`NativeModel::linear_weights`]).
#[derive(Debug)]
struct Linear {
    weights_slot: usize,
    post: Vec<Scalar>,
}

impl Linear {
    fn finish(&self, dot: f32) -> f32 {
        self.post.iter().fold(dot, |x, step| match *step {
            Scalar::Arith { op, constant, constant_first: false } => arith(op, x, constant),
            Scalar::Arith { op, constant, constant_first: true } => arith(op, constant, x),
            Scalar::Sigmoid => sigmoid(x),
        })
    }
}

fn finite(p: f32) -> Result<f32, String> {
    if p.is_finite() {
        Ok(p)
    } else {
        Err("the model's output is not a finite number".to_string())
    }
}

/// One step applied to the dot product, in graph order.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scalar {
    /// `dot ∘ c`, or `c ∘ dot` when `constant_first`.
    Arith { op: Arith, constant: f32, constant_first: bool },
    Sigmoid,
}

/// What a slot holds, as far as the linear analysis can tell.
#[derive(Debug, Clone, PartialEq)]
enum Form {
    Other,
    Indices,
    Values,
    Scalar(f32),
    /// `weights[indices]`, weights being the constant in this slot.
    Gathered(usize),
    /// `weights[indices] · values`, elementwise.
    Products(usize),
    /// The dot product with these steps applied.
    Dot(usize, Vec<Scalar>),
}

/// Why a graph cannot be compiled: unsupported (another runtime may take
/// it) or invalid (no runtime should).
#[derive(Debug, PartialEq, Eq)]
pub enum CompileError {
    Unsupported(String),
    Invalid(String),
}

const CONTRACT: &str = "expected inputs `indices: int64[n]`, `values: float32[n]` and one float32 output";

struct Builder {
    slots: HashMap<String, (usize, Type)>,
    constants: Vec<Option<Value>>,
}

impl Builder {
    fn add(&mut self, name: &str, ty: Type, value: Option<Value>) -> usize {
        let slot = self.constants.len();
        self.constants.push(value);
        self.slots.insert(name.to_string(), (slot, ty));
        slot
    }

    fn get(&self, name: &str, node: usize, op: &str) -> Result<(usize, Type), CompileError> {
        self.slots
            .get(name)
            .copied()
            .ok_or_else(|| CompileError::Invalid(format!("node {node} ({op}) reads `{name}`, which no earlier node or constant defines")))
    }

    fn constant(&self, slot: usize) -> Option<&Value> {
        self.constants.get(slot).and_then(Option::as_ref)
    }
}

impl NativeModel {
    pub fn compile(model: &onnx::Model) -> Result<Self, CompileError> {
        let graph = &model.graph;
        let mut b = Builder { slots: HashMap::new(), constants: Vec::new() };
        for tensor in &graph.initializers {
            let (ty, value) = constant(tensor)?;
            b.add(&tensor.name, ty, Some(value));
        }
        // Inputs that are not constants (older exporters list initializers as inputs too).
        let inputs: Vec<&onnx::ValueInfo> = graph.inputs.iter().filter(|i| !b.slots.contains_key(&i.name)).collect();
        let [indices, values] = inputs.as_slice() else {
            return Err(CompileError::Invalid(format!("the model has {} inputs; {CONTRACT}", inputs.len())));
        };
        for (input, want) in [(indices, onnx::INT64), (values, onnx::FLOAT)] {
            if input.elem_type != Some(want) || input.rank.is_some_and(|r| r != 1) {
                return Err(CompileError::Invalid(format!("input `{}` has type {:?} and rank {:?}; {CONTRACT}", input.name, input.elem_type, input.rank)));
            }
        }
        let indices_slot = b.add(&indices.name, Type::I64, None);
        let values_slot = b.add(&values.name, Type::F32, None);

        let mut steps = Vec::with_capacity(graph.nodes.len());
        for (n, node) in graph.nodes.iter().enumerate() {
            let op_name = node.op_type.as_str();
            if !(node.domain.is_empty() || node.domain == "ai.onnx") {
                return Err(CompileError::Unsupported(format!("node {n} ({op_name}) is in domain `{}`; the built-in evaluator runs the default ONNX domain", node.domain)));
            }
            let inputs = node
                .inputs
                .iter()
                .filter(|name| !name.is_empty())
                .map(|name| b.get(name, n, op_name))
                .collect::<Result<Vec<_>, _>>()?;
            let arity = |want: usize| -> Result<(), CompileError> {
                if inputs.len() == want {
                    Ok(())
                } else {
                    Err(CompileError::Invalid(format!("node {n} ({op_name}) has {} inputs, expected {want}", inputs.len())))
                }
            };
            let floats = |which: &[(usize, Type)]| -> Result<(), CompileError> {
                match which.iter().all(|&(_, ty)| ty == Type::F32) {
                    true => Ok(()),
                    false => Err(CompileError::Unsupported(format!("node {n} ({op_name}) computes on integers; the built-in evaluator computes on floats"))),
                }
            };
            let (op, out_type, slots): (Op, Type, Vec<usize>) = match op_name {
                "Gather" => {
                    arity(2)?;
                    let axis = node.attribute("axis").and_then(|a| a.int).unwrap_or(0);
                    if axis != 0 {
                        return Err(CompileError::Unsupported(format!("node {n} (Gather) uses axis {axis}; only axis 0 is supported")));
                    }
                    let [(data, data_ty), (index, index_ty)] = [inputs[0], inputs[1]];
                    if index_ty != Type::I64 {
                        return Err(CompileError::Invalid(format!("node {n} (Gather) indexes with floats")));
                    }
                    // The features index DIM buckets: weights gathered by them must cover all.
                    if index == indices_slot {
                        match b.constant(data) {
                            Some(Value::F32(w)) if w.len() >= DIM => {}
                            Some(v) => {
                                return Err(CompileError::Invalid(format!(
                                    "node {n} (Gather) looks up {} weights with the feature indices; the features index {DIM} buckets",
                                    len(v)
                                )))
                            }
                            None => {}
                        }
                    }
                    (Op::Gather, data_ty, vec![data, index])
                }
                "Cast" => {
                    arity(1)?;
                    match node.attribute("to").and_then(|a| a.int) {
                        Some(onnx::FLOAT) => (Op::CastToF32, Type::F32, vec![inputs[0].0]),
                        other => return Err(CompileError::Unsupported(format!("node {n} (Cast) casts to ONNX type {other:?}; only float is supported"))),
                    }
                }
                "Add" | "Sub" | "Mul" | "Div" => {
                    arity(2)?;
                    floats(&inputs)?;
                    let arith = match op_name {
                        "Add" => Arith::Add,
                        "Sub" => Arith::Sub,
                        "Mul" => Arith::Mul,
                        _ => Arith::Div,
                    };
                    (Op::Arith(arith), Type::F32, vec![inputs[0].0, inputs[1].0])
                }
                "ReduceSum" => {
                    floats(&inputs[..1.min(inputs.len())])?;
                    let Some(&(data, _)) = inputs.first() else {
                        return Err(CompileError::Invalid(format!("node {n} (ReduceSum) has no input")));
                    };
                    // Axes from the second input (opset 13) or the attribute (older).
                    let axes: Vec<i64> = match inputs.get(1) {
                        Some(&(slot, _)) => match b.constant(slot) {
                            Some(Value::I64(axes)) => axes.clone(),
                            _ => return Err(CompileError::Unsupported(format!("node {n} (ReduceSum) takes its axes from a computed tensor"))),
                        },
                        None => node.attribute("axes").map(|a| a.ints.clone()).unwrap_or_default(),
                    };
                    if !axes.iter().all(|&a| a == 0 || a == -1) {
                        return Err(CompileError::Unsupported(format!("node {n} (ReduceSum) reduces axes {axes:?}; tensors here are one-dimensional")));
                    }
                    (Op::ReduceSum, Type::F32, vec![data])
                }
                "Sigmoid" => {
                    arity(1)?;
                    floats(&inputs)?;
                    (Op::Sigmoid, Type::F32, vec![inputs[0].0])
                }
                "Identity" => {
                    arity(1)?;
                    (Op::Identity, inputs[0].1, vec![inputs[0].0])
                }
                other => {
                    return Err(CompileError::Unsupported(format!("node {n} uses the ONNX operator `{other}`; the built-in evaluator runs {SUPPORTED}")))
                }
            };
            let [output] = node.outputs.as_slice() else {
                return Err(CompileError::Invalid(format!("node {n} ({op_name}) has {} outputs, expected 1", node.outputs.len())));
            };
            let output = b.add(output, out_type, None);
            steps.push(Step { op, inputs: slots, output });
        }

        let [output] = graph.outputs.as_slice() else {
            return Err(CompileError::Invalid(format!("the model has {} outputs; {CONTRACT}", graph.outputs.len())));
        };
        let (output_slot, output_type) = b.get(&output.name, graph.nodes.len(), "graph output")?;
        if output_type != Type::F32 || output.elem_type.is_some_and(|t| t != onnx::FLOAT) {
            return Err(CompileError::Invalid(format!("the output `{}` is not float32; {CONTRACT}", output.name)));
        }
        let linear = linear_form(&b.constants, &steps, indices_slot, values_slot, output_slot);
        Ok(Self { constants: b.constants, steps, indices_slot, values_slot, output_slot, linear })
    }

    /// The weight table when the graph is linear in the features: the
    /// caller may then compute the dot product itself and finish with
    /// [`Self::after_dot`].
    pub fn linear_weights(&self) -> Option<&[f32]> {
        match self.constants.get(self.linear.as_ref()?.weights_slot) {
            Some(Some(Value::F32(weights))) => Some(weights),
            _ => None,
        }
    }

    /// The output of a linear graph for a dot product of `dot`.
    pub fn after_dot(&self, dot: f32) -> Result<f32, String> {
        let linear = self.linear.as_ref().ok_or_else(|| "the graph is not linear in the features".to_string())?;
        finite(linear.finish(dot))
    }

    /// The model's single output for one text's features.
    pub fn run(&self, features: &Features) -> Result<f32, String> {
        finite(match &self.linear {
            Some(linear) => self.run_linear(linear, features)?,
            None => self.run_steps(features)?,
        })
    }

    fn run_linear(&self, linear: &Linear, features: &Features) -> Result<f32, String> {
        let Some(Some(Value::F32(weights))) = self.constants.get(linear.weights_slot) else {
            return Err("the weights constant is missing".to_string());
        };
        if features.indices.len() != features.values.len() {
            return Err(format!("{} indices but {} values", features.indices.len(), features.values.len()));
        }
        let n = weights.len() as i64;
        let mut dot = 0.0f32;
        for (&i, &v) in features.indices.iter().zip(&features.values) {
            // Negative indices count from the end, as in ONNX's Gather.
            let at = if i < 0 { i + n } else { i };
            let w = usize::try_from(at).ok().and_then(|at| weights.get(at)).ok_or_else(|| format!("Gather index {i} is out of range for {n} entries"))?;
            dot += w * v;
        }
        Ok(linear.finish(dot))
    }

    /// Every step in turn, each into its own tensor.
    fn run_steps(&self, features: &Features) -> Result<f32, String> {
        let mut slots: Vec<Option<Cow<'_, Value>>> = self.constants.iter().map(|c| c.as_ref().map(Cow::Borrowed)).collect();
        let set = |slots: &mut Vec<Option<Cow<'_, Value>>>, slot: usize, value: Value| {
            if let Some(place) = slots.get_mut(slot) {
                *place = Some(Cow::Owned(value));
            }
        };
        set(&mut slots, self.indices_slot, Value::I64(features.indices.clone()));
        set(&mut slots, self.values_slot, Value::F32(features.values.clone()));
        for step in &self.steps {
            let arg = |i: usize| -> Result<&Value, String> {
                step.inputs
                    .get(i)
                    .and_then(|&slot| slots.get(slot))
                    .and_then(|v| v.as_deref())
                    .ok_or_else(|| "a step read a value that was never computed".to_string())
            };
            let out = match step.op {
                Op::Gather => gather(arg(0)?, arg(1)?)?,
                Op::CastToF32 => match arg(0)? {
                    Value::F32(v) => Value::F32(v.clone()),
                    Value::I64(v) => Value::F32(v.iter().map(|&x| x as f32).collect()),
                },
                Op::Arith(arith) => Value::F32(elementwise(floats(arg(0)?)?, floats(arg(1)?)?, arith)?),
                Op::ReduceSum => Value::F32(vec![floats(arg(0)?)?.iter().sum()]),
                Op::Sigmoid => Value::F32(floats(arg(0)?)?.iter().map(|&x| sigmoid(x)).collect()),
                Op::Identity => arg(0)?.clone(),
            };
            set(&mut slots, step.output, out);
        }
        match slots.get(self.output_slot).and_then(|v| v.as_deref()) {
            Some(Value::F32(v)) => match v.as_slice() {
                [p] => Ok(*p),
                other => Err(format!("expected one float output, got {} values", other.len())),
            },
            _ => Err("the model produced no float output".to_string()),
        }
    }
}

/// Follows the steps symbolically; `Some` when the output is the dot
/// product of gathered weights and the values with only scalar steps after.
fn linear_form(constants: &[Option<Value>], steps: &[Step], indices: usize, values: usize, output: usize) -> Option<Linear> {
    let mut forms = vec![Form::Other; constants.len()];
    for (slot, constant) in constants.iter().enumerate() {
        if let (Some(Value::F32(c)), Some(form)) = (constant, forms.get_mut(slot)) {
            if let [c] = c.as_slice() {
                *form = Form::Scalar(*c);
            }
        }
    }
    *forms.get_mut(indices)? = Form::Indices;
    *forms.get_mut(values)? = Form::Values;
    for step in steps {
        let form = |i: usize| step.inputs.get(i).and_then(|&slot| forms.get(slot)).cloned().unwrap_or(Form::Other);
        let out = match (step.op, form(0), form(1)) {
            (Op::Gather, Form::Other, Form::Indices) => {
                let data = *step.inputs.first()?;
                match constants.get(data) {
                    Some(Some(Value::F32(w))) if w.len() >= DIM => Form::Gathered(data),
                    _ => Form::Other,
                }
            }
            (Op::CastToF32 | Op::Identity, f @ (Form::Gathered(_) | Form::Dot(..)), _) => f,
            (Op::Arith(Arith::Mul), Form::Gathered(w), Form::Values) | (Op::Arith(Arith::Mul), Form::Values, Form::Gathered(w)) => Form::Products(w),
            (Op::ReduceSum, Form::Products(w), _) => Form::Dot(w, Vec::new()),
            (Op::Arith(op), Form::Dot(w, mut post), Form::Scalar(constant)) => {
                post.push(Scalar::Arith { op, constant, constant_first: false });
                Form::Dot(w, post)
            }
            (Op::Arith(op), Form::Scalar(constant), Form::Dot(w, mut post)) => {
                post.push(Scalar::Arith { op, constant, constant_first: true });
                Form::Dot(w, post)
            }
            (Op::Sigmoid, Form::Dot(w, mut post), _) => {
                post.push(Scalar::Sigmoid);
                Form::Dot(w, post)
            }
            _ => Form::Other,
        };
        *forms.get_mut(step.output)? = out;
    }
    match forms.get(output)? {
        Form::Dot(weights_slot, post) => Some(Linear { weights_slot: *weights_slot, post: post.clone() }),
        _ => None,
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn arith(op: Arith, x: f32, y: f32) -> f32 {
    match op {
        Arith::Add => x + y,
        Arith::Sub => x - y,
        Arith::Mul => x * y,
        Arith::Div => x / y,
    }
}

fn constant(tensor: &Tensor) -> Result<(Type, Value), CompileError> {
    if tensor.dims.len() > 1 {
        return Err(CompileError::Unsupported(format!(
            "constant `{}` has dims {:?}; the built-in evaluator holds one-dimensional tensors",
            tensor.name, tensor.dims
        )));
    }
    Ok(match &tensor.data {
        TensorData::F32(v) => (Type::F32, Value::F32(v.clone())),
        TensorData::I64(v) => (Type::I64, Value::I64(v.clone())),
    })
}

fn len(value: &Value) -> usize {
    match value {
        Value::F32(v) => v.len(),
        Value::I64(v) => v.len(),
    }
}

fn floats(value: &Value) -> Result<&[f32], String> {
    match value {
        Value::F32(v) => Ok(v),
        Value::I64(_) => Err("an arithmetic step received integers".to_string()),
    }
}

fn gather(data: &Value, indices: &Value) -> Result<Value, String> {
    let Value::I64(indices) = indices else { return Err("Gather indices are not integers".to_string()) };
    let n = len(data) as i64;
    let position = |i: i64| -> Result<usize, String> {
        let at = if i < 0 { i + n } else { i };
        usize::try_from(at).ok().filter(|&at| (at as i64) < n).ok_or_else(|| format!("Gather index {i} is out of range for {n} entries"))
    };
    Ok(match data {
        Value::F32(d) => Value::F32(indices.iter().map(|&i| position(i).map(|at| d.get(at).copied().unwrap_or(0.0))).collect::<Result<_, _>>()?),
        Value::I64(d) => Value::I64(indices.iter().map(|&i| position(i).map(|at| d.get(at).copied().unwrap_or(0))).collect::<Result<_, _>>()?),
    })
}

/// `a ∘ b` elementwise; a one-element side is broadcast.
fn elementwise(a: &[f32], b: &[f32], op: Arith) -> Result<Vec<f32>, String> {
    let f = |x: f32, y: f32| arith(op, x, y);
    match (a, b) {
        (_, [y]) => Ok(a.iter().map(|&x| f(x, *y)).collect()),
        ([x], _) => Ok(b.iter().map(|&y| f(*x, y)).collect()),
        _ if a.len() == b.len() => Ok(a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()),
        _ => Err(format!("cannot combine tensors of {} and {} elements", a.len(), b.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(pairs: &[(i64, f32)]) -> Features {
        Features { indices: pairs.iter().map(|p| p.0).collect(), values: pairs.iter().map(|p| p.1).collect() }
    }

    fn value_info(name: &str, elem_type: i64) -> onnx::ValueInfo {
        onnx::ValueInfo { name: name.into(), elem_type: Some(elem_type), rank: Some(1) }
    }

    fn node(op: &str, inputs: &[&str], output: &str) -> onnx::Node {
        onnx::Node {
            op_type: op.into(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![output.into()],
            ..Default::default()
        }
    }

    /// sigmoid(sum(W[indices] * values) + b), as the training script exports it.
    fn linear(weights: Vec<f32>, bias: f32, nodes: Vec<onnx::Node>) -> onnx::Model {
        let tensor = |name: &str, data: TensorData| Tensor { name: name.into(), dims: vec![data.len() as i64], data };
        onnx::Model {
            graph: onnx::Graph {
                nodes,
                initializers: vec![
                    tensor("weights", TensorData::F32(weights)),
                    tensor("bias", TensorData::F32(vec![bias])),
                    tensor("axes", TensorData::I64(vec![0])),
                ],
                inputs: vec![value_info("indices", onnx::INT64), value_info("values", onnx::FLOAT)],
                outputs: vec![value_info("probability", onnx::FLOAT)],
            },
            metadata: vec![],
        }
    }

    fn cast_to_float(input: &str, output: &str) -> onnx::Node {
        let mut n = node("Cast", &[input], output);
        n.attributes.push(onnx::Attribute { name: "to".into(), int: Some(onnx::FLOAT), ints: vec![] });
        n
    }

    fn standard_nodes() -> Vec<onnx::Node> {
        vec![
            node("Gather", &["weights", "indices"], "w"),
            node("Mul", &["w", "values"], "wx"),
            node("ReduceSum", &["wx", "axes"], "dot"),
            node("Add", &["dot", "bias"], "logit"),
            node("Sigmoid", &["logit"], "probability"),
        ]
    }

    #[test]
    fn computes_the_logistic_of_the_sparse_dot_product() {
        let mut weights = vec![0.0; DIM];
        weights[3] = 2.0;
        weights[DIM - 1] = -1.0;
        let model = NativeModel::compile(&linear(weights, 0.5, standard_nodes())).unwrap();
        let got = model.run(&features(&[(3, 0.6), (7, 0.8)])).unwrap();
        let want = 1.0 / (1.0 + (-(2.0f32 * 0.6 + 0.5)).exp());
        assert!((got - want).abs() < 1e-7, "{got} vs {want}");
        let got = model.run(&features(&[(DIM as i64 - 1, 1.0)])).unwrap();
        assert!((got - 1.0 / (1.0 + 0.5f32.exp())).abs() < 1e-7);
    }

    #[test]
    fn unknown_operators_are_unsupported_and_broken_graphs_invalid() {
        let mut nodes = standard_nodes();
        nodes[4] = node("Softmax", &["logit"], "probability");
        match NativeModel::compile(&linear(vec![0.0; DIM], 0.0, nodes)) {
            Err(CompileError::Unsupported(msg)) => assert!(msg.contains("`Softmax`"), "{msg}"),
            other => panic!("{other:?}"),
        }
        let mut nodes = standard_nodes();
        nodes[1] = node("Mul", &["w", "nowhere"], "wx");
        match NativeModel::compile(&linear(vec![0.0; DIM], 0.0, nodes)) {
            Err(CompileError::Invalid(msg)) => assert!(msg.contains("`nowhere`"), "{msg}"),
            other => panic!("{other:?}"),
        }
        // Weights that do not cover the feature space.
        match NativeModel::compile(&linear(vec![0.0; 10], 0.0, standard_nodes())) {
            Err(CompileError::Invalid(msg)) => assert!(msg.contains("buckets"), "{msg}"),
            other => panic!("{other:?}"),
        }
        // Inputs outside the contract.
        let mut model = linear(vec![0.0; DIM], 0.0, standard_nodes());
        model.graph.inputs[0].elem_type = Some(onnx::FLOAT);
        match NativeModel::compile(&model) {
            Err(CompileError::Invalid(msg)) => assert!(msg.contains("indices"), "{msg}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn runtime_errors_are_errors_not_panics() {
        let model = NativeModel::compile(&linear(vec![1.0; DIM], 0.0, standard_nodes())).unwrap();
        assert!(model.run(&features(&[(DIM as i64, 1.0)])).unwrap_err().contains("out of range"));
        assert!(model.run(&features(&[(-1, 1.0)])).is_ok(), "negative indices count from the end, as in ONNX");
        let mismatched = Features { indices: vec![1, 2], values: vec![1.0, 2.0, 3.0] };
        assert!(model.run(&mismatched).is_err());
    }

    #[test]
    fn linear_graphs_run_fused_with_the_same_bits_as_step_by_step() {
        let weights: Vec<f32> = (0..DIM).map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0).collect();
        let x = features(&[(5, 0.25), (DIM as i64 - 3, 0.5), (1234, -0.75), (99_999, 0.125)]);
        let mut shapes = vec![standard_nodes()];
        // bias - dot, a Cast and an Identity on the way, scaled by a constant first.
        shapes.push(vec![
            node("Gather", &["weights", "indices"], "w"),
            cast_to_float("w", "wf"),
            node("Mul", &["values", "wf"], "wx"),
            node("ReduceSum", &["wx", "axes"], "dot"),
            node("Identity", &["dot"], "dot2"),
            node("Sub", &["bias", "dot2"], "neg"),
            node("Div", &["neg", "bias"], "scaled"),
            node("Sigmoid", &["scaled"], "probability"),
        ]);
        for nodes in shapes {
            let model = NativeModel::compile(&linear(weights.clone(), 0.5, nodes)).unwrap();
            assert!(model.linear_weights().is_some());
            let fused = model.run(&x).unwrap();
            let stepwise = model.run_steps(&x).unwrap();
            assert_eq!(fused.to_bits(), stepwise.to_bits(), "{fused} vs {stepwise}");
        }
    }

    #[test]
    fn other_graphs_run_step_by_step() {
        // sigmoid applied per feature before the sum: not a linear model.
        let nodes = vec![
            node("Gather", &["weights", "indices"], "w"),
            node("Mul", &["w", "values"], "wx"),
            node("Sigmoid", &["wx"], "s"),
            node("ReduceSum", &["s", "axes"], "probability"),
        ];
        let model = NativeModel::compile(&linear(vec![0.0; DIM], 0.0, nodes)).unwrap();
        assert!(model.linear_weights().is_none());
        assert_eq!(model.run(&features(&[(1, 1.0), (2, 1.0)])).unwrap(), 1.0);
    }
}
