//! Reading an ONNX model (`onnx.ModelProto`) from its protobuf bytes: the
//! graph's nodes, constant tensors, inputs, outputs and metadata — what the
//! built-in evaluator ([`super::native`]) needs, nothing more. Field numbers
//! are those of `onnx/onnx.proto` (IR version 3 onwards).

use crate::protobuf_wire::{DecodeError, Reader};

/// ONNX `TensorProto.DataType` values the evaluator knows.
pub const FLOAT: i64 = 1;
pub const INT64: i64 = 7;
const INT32: i64 = 6;
const FLOAT16: i64 = 10;

#[derive(Debug, Default)]
pub struct Model {
    pub graph: Graph,
    pub metadata: Vec<(String, String)>,
}

#[derive(Debug, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub initializers: Vec<Tensor>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
}

#[derive(Debug, Default)]
pub struct Node {
    pub op_type: String,
    pub domain: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attributes: Vec<Attribute>,
}

impl Node {
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }
}

#[derive(Debug, Default)]
pub struct Attribute {
    pub name: String,
    pub int: Option<i64>,
    pub ints: Vec<i64>,
}

/// A constant tensor, its elements widened to f32 or i64.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub dims: Vec<i64>,
    pub data: TensorData,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl TensorData {
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A graph input or output: its name, element type and rank when declared.
#[derive(Debug, Default)]
pub struct ValueInfo {
    pub name: String,
    pub elem_type: Option<i64>,
    pub rank: Option<usize>,
}

pub fn parse_model(bytes: &[u8]) -> Result<Model, String> {
    model(bytes).map_err(|DecodeError(what)| format!("not a readable ONNX model ({what})"))?
}

/// Outer result: wire-format errors; inner: content the evaluator cannot hold.
fn model(bytes: &[u8]) -> Result<Result<Model, String>, DecodeError> {
    let mut reader = Reader::new(bytes);
    let mut out = Model::default();
    let mut has_graph = false;
    while !reader.done() {
        match reader.tag()? {
            (7, 2) => {
                out.graph = match graph(reader.length_delimited()?)? {
                    Ok(g) => g,
                    Err(e) => return Ok(Err(e)),
                };
                has_graph = true;
            }
            (14, 2) => out.metadata.push(string_pair(reader.length_delimited()?)?),
            (_, wire) => reader.skip(wire)?,
        }
    }
    if !has_graph {
        return Ok(Err("not an ONNX model: it has no graph".to_string()));
    }
    Ok(Ok(out))
}

fn graph(bytes: &[u8]) -> Result<Result<Graph, String>, DecodeError> {
    let mut reader = Reader::new(bytes);
    let mut out = Graph::default();
    while !reader.done() {
        match reader.tag()? {
            (1, 2) => out.nodes.push(node(reader.length_delimited()?)?),
            (5, 2) => match tensor(reader.length_delimited()?)? {
                Ok(t) => out.initializers.push(t),
                Err(e) => return Ok(Err(e)),
            },
            (11, 2) => out.inputs.push(value_info(reader.length_delimited()?)?),
            (12, 2) => out.outputs.push(value_info(reader.length_delimited()?)?),
            (_, wire) => reader.skip(wire)?,
        }
    }
    Ok(Ok(out))
}

fn node(bytes: &[u8]) -> Result<Node, DecodeError> {
    let mut reader = Reader::new(bytes);
    let mut out = Node::default();
    while !reader.done() {
        match reader.tag()? {
            (1, 2) => out.inputs.push(utf8(reader.length_delimited()?)?),
            (2, 2) => out.outputs.push(utf8(reader.length_delimited()?)?),
            (4, 2) => out.op_type = utf8(reader.length_delimited()?)?,
            (5, 2) => out.attributes.push(attribute(reader.length_delimited()?)?),
            (7, 2) => out.domain = utf8(reader.length_delimited()?)?,
            (_, wire) => reader.skip(wire)?,
        }
    }
    Ok(out)
}

fn attribute(bytes: &[u8]) -> Result<Attribute, DecodeError> {
    let mut reader = Reader::new(bytes);
    let mut out = Attribute::default();
    while !reader.done() {
        match reader.tag()? {
            (1, 2) => out.name = utf8(reader.length_delimited()?)?,
            (3, 0) => out.int = Some(reader.varint()? as i64),
            (8, wire) => repeated_varints(&mut reader, wire, &mut out.ints)?,
            (_, wire) => reader.skip(wire)?,
        }
    }
    Ok(out)
}

fn tensor(bytes: &[u8]) -> Result<Result<Tensor, String>, DecodeError> {
    let mut reader = Reader::new(bytes);
    let mut name = String::new();
    let mut dims = Vec::new();
    let mut data_type = 0i64;
    let mut raw: Option<&[u8]> = None;
    let mut floats = Vec::new();
    let mut ints = Vec::new();
    let mut external = false;
    while !reader.done() {
        match reader.tag()? {
            (1, wire) => repeated_varints(&mut reader, wire, &mut dims)?,
            (2, 0) => data_type = reader.varint()? as i64,
            (4, 2) => {
                let mut packed = Reader::new(reader.length_delimited()?);
                while !packed.done() {
                    floats.push(f32::from_le_bytes(packed.fixed32()?));
                }
            }
            (4, 5) => floats.push(f32::from_le_bytes(reader.fixed32()?)),
            // int32_data (also carries float16 bit patterns) and int64_data.
            (5 | 7, wire) => repeated_varints(&mut reader, wire, &mut ints)?,
            (8, 2) => name = utf8(reader.length_delimited()?)?,
            (9, 2) => raw = Some(reader.length_delimited()?),
            (14, 0) => external = reader.varint()? == 1,
            (_, wire) => reader.skip(wire)?,
        }
    }
    if external {
        return Ok(Err(format!("tensor `{name}` keeps its data outside the model file; embed it")));
    }
    let data = match (data_type, raw) {
        (FLOAT, Some(raw)) => TensorData::F32(raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
        (FLOAT, None) => TensorData::F32(floats),
        (FLOAT16, Some(raw)) => TensorData::F32(raw.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect()),
        (FLOAT16, None) => TensorData::F32(ints.iter().map(|&bits| f16_to_f32(bits as u16)).collect()),
        (INT64, Some(raw)) => TensorData::I64(raw.chunks_exact(8).map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect()),
        (INT64 | INT32, None) => TensorData::I64(ints),
        (INT32, Some(raw)) => TensorData::I64(raw.chunks_exact(4).map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect()),
        (other, _) => return Ok(Err(format!("tensor `{name}` has ONNX data type {other}; supported: float, float16, int32, int64"))),
    };
    let declared = dims.iter().try_fold(1usize, |acc, &d| usize::try_from(d).ok().and_then(|d| acc.checked_mul(d)));
    if declared != Some(data.len()) {
        return Ok(Err(format!("tensor `{name}` declares dims {dims:?} but holds {} values", data.len())));
    }
    Ok(Ok(Tensor { name, dims, data }))
}

fn value_info(bytes: &[u8]) -> Result<ValueInfo, DecodeError> {
    let mut reader = Reader::new(bytes);
    let mut out = ValueInfo::default();
    while !reader.done() {
        match reader.tag()? {
            (1, 2) => out.name = utf8(reader.length_delimited()?)?,
            (2, 2) => {
                // TypeProto.tensor_type (1) → elem_type (1), shape (2) → dim (1)*.
                let mut type_proto = Reader::new(reader.length_delimited()?);
                while !type_proto.done() {
                    match type_proto.tag()? {
                        (1, 2) => {
                            let mut tensor_type = Reader::new(type_proto.length_delimited()?);
                            while !tensor_type.done() {
                                match tensor_type.tag()? {
                                    (1, 0) => out.elem_type = Some(tensor_type.varint()? as i64),
                                    (2, 2) => out.rank = Some(count_fields(tensor_type.length_delimited()?, 1)?),
                                    (_, wire) => tensor_type.skip(wire)?,
                                }
                            }
                        }
                        (_, wire) => type_proto.skip(wire)?,
                    }
                }
            }
            (_, wire) => reader.skip(wire)?,
        }
    }
    Ok(out)
}

fn count_fields(bytes: &[u8], field: u64) -> Result<usize, DecodeError> {
    let mut reader = Reader::new(bytes);
    let mut count = 0;
    while !reader.done() {
        let (number, wire) = reader.tag()?;
        if number == field {
            count += 1;
        }
        reader.skip(wire)?;
    }
    Ok(count)
}

fn string_pair(bytes: &[u8]) -> Result<(String, String), DecodeError> {
    let mut reader = Reader::new(bytes);
    let (mut key, mut value) = (String::new(), String::new());
    while !reader.done() {
        match reader.tag()? {
            (1, 2) => key = utf8(reader.length_delimited()?)?,
            (2, 2) => value = utf8(reader.length_delimited()?)?,
            (_, wire) => reader.skip(wire)?,
        }
    }
    Ok((key, value))
}

/// A repeated integer field, packed (wire type 2) or not (wire type 0).
fn repeated_varints(reader: &mut Reader<'_>, wire: u8, out: &mut Vec<i64>) -> Result<(), DecodeError> {
    match wire {
        0 => out.push(reader.varint()? as i64),
        2 => {
            let mut packed = Reader::new(reader.length_delimited()?);
            while !packed.done() {
                out.push(packed.varint()? as i64);
            }
        }
        other => reader.skip(other)?,
    }
    Ok(())
}

fn utf8(bytes: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError("string is not UTF-8"))
}

/// IEEE 754 half precision to single precision, exactly.
pub fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exponent = u32::from((bits >> 10) & 0x1f);
    let mantissa = u32::from(bits & 0x3ff);
    let magnitude = match (exponent, mantissa) {
        (0, 0) => 0,
        // Subnormal: value = mantissa × 2^-24, exact in f32.
        (0, m) => {
            let value = m as f32 * 2f32.powi(-24);
            return if sign == 0 { value } else { -value };
        }
        (0x1f, m) => 0x7f80_0000 | (m << 13),
        (e, m) => ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(sign | magnitude)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_converts_exactly() {
        assert_eq!(f16_to_f32(0x0000), 0.0);
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8001), -(2f32.powi(-24)));
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert!(parse_model(b"definitely not an onnx model").unwrap_err().contains("ONNX"));
        assert!(parse_model(b"").unwrap_err().contains("no graph"));
    }
}
