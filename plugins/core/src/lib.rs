//! # The `core` plugin
//!
//! Basic nodes every graph needs: constants, scalar math, elementwise tensor arithmetic, the
//! official seed -> z rule, and `.npy` tensor files. Written with the same SDK as third-party
//! plugins (that is how we know the ABI is enough).

use std::path::Path;
use stylegraph_abi::ffi::{SgDType, SG_DTYPE_BOOL, SG_DTYPE_FLOAT, SG_DTYPE_INT, SG_DTYPE_UINT};
use stylegraph_abi::prelude::*;
use stylegraph_npy::{Array, DType};

// ---------------------------------------------------------------------------------------------
// Constants

/// A float constant.
pub struct ConstFloat;
impl Node for ConstFloat {
    fn spec() -> NodeSpec {
        NodeSpec::new("core.const_float", "Float")
            .category("Constants")
            .doc("A floating-point constant, editable as a param.")
            .output("value", "float", "the value")
            .param(
                ParamSpec::float("value", 0.0)
                    .doc("the constant")
                    .step(0.01),
            )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(ConstFloat)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let v = ctx.param_f64("value")?;
        ctx.set_output_f64("value", v)
    }
}

/// An integer constant.
pub struct ConstInt;
impl Node for ConstInt {
    fn spec() -> NodeSpec {
        NodeSpec::new("core.const_int", "Integer")
            .category("Constants")
            .doc("An integer constant, editable as a param.")
            .output("value", "int", "the value")
            .param(ParamSpec::int("value", 0).doc("the constant"))
    }
    fn create() -> Result<Self, NodeError> {
        Ok(ConstInt)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let v = ctx.param_i64("value")?;
        ctx.set_output_i64("value", v)
    }
}

/// A boolean constant.
pub struct ConstBool;
impl Node for ConstBool {
    fn spec() -> NodeSpec {
        NodeSpec::new("core.const_bool", "Boolean")
            .category("Constants")
            .doc("A boolean constant, editable as a param.")
            .output("value", "bool", "the value")
            .param(ParamSpec::bool("value", false).doc("the constant"))
    }
    fn create() -> Result<Self, NodeError> {
        Ok(ConstBool)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let v = ctx.param_bool("value")?;
        ctx.set_output_bool("value", v)
    }
}

/// A string constant.
pub struct ConstString;
impl Node for ConstString {
    fn spec() -> NodeSpec {
        NodeSpec::new("core.const_string", "String")
            .category("Constants")
            .doc("A text constant, editable as a param.")
            .output("value", "string", "the value")
            .param(ParamSpec::string("value", "").doc("the text"))
    }
    fn create() -> Result<Self, NodeError> {
        Ok(ConstString)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let v = ctx.param_str("value")?;
        ctx.set_output_str("value", &v)
    }
}

// ---------------------------------------------------------------------------------------------
// Scalar math

const MATH_OPS: &[&str] = &[
    "add", "sub", "mul", "div", "pow", "min", "max", "neg", "abs", "sqrt", "sin", "cos", "floor",
];

/// Scalar arithmetic on two floats.
pub struct Math;
impl Node for Math {
    fn spec() -> NodeSpec {
        NodeSpec::new("core.math", "Math")
            .category("Math/Scalar")
            .doc(
                "Scalar arithmetic: `result = a <op> b` (binary ops) or `<op>(a)` (neg, abs, sqrt, \
                 sin, cos, floor). Each operand comes from its input when connected, else from the \
                 param of the same name.",
            )
            .optional_input("a", "float", "first operand (overrides param `a`)")
            .optional_input("b", "float", "second operand (overrides param `b`)")
            .output("result", "float", "the result")
            .param(ParamSpec::enumeration("op", "add", MATH_OPS).doc("the operation"))
            .param(ParamSpec::float("a", 0.0).doc("first operand when `a` is not connected"))
            .param(ParamSpec::float("b", 0.0).doc("second operand when `b` is not connected"))
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Math)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let operand = |name: &str| -> Result<f64, NodeError> {
            if ctx.has_input(name) {
                ctx.input_f64(name)
            } else {
                ctx.param_f64(name)
            }
        };
        let (a, b) = (operand("a")?, operand("b")?);
        let op = ctx.param_str("op")?;
        let r = scalar_op(&op, a, b)?;
        ctx.set_output_f64("result", r)
    }
}

/// Applies a scalar operation; errors for undefined results instead of producing NaN silently.
pub fn scalar_op(op: &str, a: f64, b: f64) -> Result<f64, NodeError> {
    let r = match op {
        "add" => a + b,
        "sub" => a - b,
        "mul" => a * b,
        "div" => {
            if b == 0.0 {
                return Err(NodeError::invalid(format!("division by zero ({a} / 0)")));
            }
            a / b
        }
        "pow" => a.powf(b),
        "min" => a.min(b),
        "max" => a.max(b),
        "neg" => -a,
        "abs" => a.abs(),
        "sqrt" => {
            if a < 0.0 {
                return Err(NodeError::invalid(format!(
                    "square root of a negative number ({a})"
                )));
            }
            a.sqrt()
        }
        "sin" => a.sin(),
        "cos" => a.cos(),
        "floor" => a.floor(),
        other => return Err(NodeError::invalid(format!("unknown op {other:?}"))),
    };
    if r.is_nan() {
        return Err(NodeError::invalid(format!(
            "{op}({a}, {b}) is not a number"
        )));
    }
    Ok(r)
}

// ---------------------------------------------------------------------------------------------
// Tensor arithmetic

/// Broadcasting used by the tensor nodes: `b` matches `a` exactly, is a single value, or matches
/// `a`'s trailing dimensions (e.g. a `[w_dim]` or `[1, w_dim]` row added to every row of a batch).
fn broadcast_index(a_shape: &[usize], b_shape: &[usize]) -> Result<usize, NodeError> {
    let a_n: usize = a_shape.iter().product();
    let b_n: usize = b_shape.iter().product();
    if b_n == 1 || b_shape == a_shape {
        return Ok(b_n);
    }
    let b_trim: Vec<usize> = b_shape.iter().copied().skip_while(|&d| d == 1).collect();
    if b_trim.len() <= a_shape.len()
        && a_shape.ends_with(&b_trim)
        && b_n > 0
        && a_n.is_multiple_of(b_n)
    {
        return Ok(b_n);
    }
    Err(NodeError::invalid(format!(
        "shapes {a_shape:?} and {b_shape:?} do not broadcast (b must have a's shape, one value, or \
         a's trailing dimensions)"
    )))
}

/// `a + b` elementwise (f32; `b` broadcasts).
pub struct TensorAdd;
impl Node for TensorAdd {
    fn spec() -> NodeSpec {
        NodeSpec::new("core.tensor_add", "Add tensors")
            .category("Math/Tensor")
            .doc(
                "Elementwise `a + b * b_scale` in float32. `b` may have `a`'s shape, be a single \
                 value, or match `a`'s trailing dimensions (a row added to every row).",
            )
            .input("a", "Tensor", "first tensor")
            .input("b", "Tensor", "second tensor (broadcast onto a)")
            .output("sum", "Tensor", "a + b * b_scale, with a's shape")
            .param(ParamSpec::float("b_scale", 1.0).doc("factor applied to b (use -1 to subtract)"))
    }
    fn create() -> Result<Self, NodeError> {
        Ok(TensorAdd)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let a = ctx.input_tensor("a")?;
        let b = ctx.input_tensor("b")?;
        let nb = broadcast_index(a.shape(), b.shape())?;
        let scale = ctx.param_f64("b_scale")? as f32;
        let (av, bv) = (a.to_f32_vec()?, b.to_f32_vec()?);
        let shape = a.shape().to_vec();
        let out = ctx.output_f32("sum", &shape)?;
        for (i, (o, x)) in out.iter_mut().zip(&av).enumerate() {
            *o = x + bv[i % nb] * scale;
        }
        Ok(())
    }
}

/// `x * factor`.
pub struct TensorScale;
impl Node for TensorScale {
    fn spec() -> NodeSpec {
        NodeSpec::new("core.tensor_scale", "Scale tensor")
            .category("Math/Tensor")
            .doc("Multiplies every element by a factor (float32 result).")
            .input("x", "Tensor", "the tensor")
            .optional_input("factor", "float", "the factor (overrides param `factor`)")
            .output("y", "Tensor", "x * factor")
            .param(ParamSpec::float("factor", 1.0).doc("the factor when `factor` is not connected"))
    }
    fn create() -> Result<Self, NodeError> {
        Ok(TensorScale)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let f = if ctx.has_input("factor") {
            ctx.input_f64("factor")?
        } else {
            ctx.param_f64("factor")?
        } as f32;
        let x = ctx.input_tensor("x")?;
        let xv = x.to_f32_vec()?;
        let shape = x.shape().to_vec();
        let out = ctx.output_f32("y", &shape)?;
        for (o, v) in out.iter_mut().zip(xv) {
            *o = v * f;
        }
        Ok(())
    }
}

/// Linear interpolation with PyTorch's two-sided formula, so results match `torch.lerp` bit for
/// bit (it switches form at `|t| = 0.5` to stay exact at both ends).
pub fn lerp(a: f32, b: f32, t: f32) -> f32 {
    if t.abs() < 0.5 {
        a + t * (b - a)
    } else {
        b - (b - a) * (1.0 - t)
    }
}

/// `lerp(a, b, t)`.
pub struct TensorLerp;
impl Node for TensorLerp {
    fn spec() -> NodeSpec {
        NodeSpec::new("core.tensor_lerp", "Lerp tensors")
            .category("Math/Tensor")
            .doc(
                "Linear interpolation `a + t (b - a)` elementwise, computed as `torch.lerp` does \
                 (two-sided form). `b` broadcasts like in Add tensors.",
            )
            .input("a", "Tensor", "value at t = 0")
            .input("b", "Tensor", "value at t = 1")
            .optional_input("t", "float", "the weight (overrides param `t`)")
            .output("y", "Tensor", "the interpolated tensor, with a's shape")
            .param(
                ParamSpec::float("t", 0.5)
                    .doc("the weight when `t` is not connected")
                    .step(0.01),
            )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(TensorLerp)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let t = if ctx.has_input("t") {
            ctx.input_f64("t")?
        } else {
            ctx.param_f64("t")?
        } as f32;
        let a = ctx.input_tensor("a")?;
        let b = ctx.input_tensor("b")?;
        let nb = broadcast_index(a.shape(), b.shape())?;
        let (av, bv) = (a.to_f32_vec()?, b.to_f32_vec()?);
        let shape = a.shape().to_vec();
        let out = ctx.output_f32("y", &shape)?;
        for (i, (o, x)) in out.iter_mut().zip(&av).enumerate() {
            *o = lerp(*x, bv[i % nb], t);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Latents

/// z from a seed, exactly as the official tools draw it.
pub struct SeedToZ;
impl Node for SeedToZ {
    fn spec() -> NodeSpec {
        NodeSpec::new("core.seed_to_z", "Seed to z")
            .category("Latent")
            .doc(
                "The latent the official StyleGAN tools use for a seed: \
                 `np.random.RandomState(seed).randn(1, z_dim)`, reproduced bit for bit (float64). \
                 The same seed gives the same image as `gen_images.py`.",
            )
            .output("z", "Z", "[1, z_dim] float64 standard-normal latent")
            .param(
                ParamSpec::seed("seed", 0)
                    .range(0.0, u32::MAX as f64)
                    .doc("the seed (0 .. 2^32-1, as NumPy accepts)"),
            )
            .param(
                ParamSpec::int("z_dim", 512)
                    .range(1.0, 65536.0)
                    .doc("latent size (512 for every official model)"),
            )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(SeedToZ)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let seed = ctx.param_i64("seed")?;
        let seed = u32::try_from(seed)
            .map_err(|_| NodeError::invalid(format!("seed {seed} is outside 0 .. 2^32-1")))?;
        let z_dim = ctx.param_i64("z_dim")?;
        let z_dim = usize::try_from(z_dim)
            .ok()
            .filter(|&d| d > 0)
            .ok_or_else(|| NodeError::invalid(format!("z_dim {z_dim} must be positive")))?;
        let z = stylegraph_rng::z_from_seed(seed, z_dim);
        ctx.output_f64("z", &[1, z_dim])?.copy_from_slice(&z);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Files

fn npy_dtype(d: SgDType) -> Result<DType, NodeError> {
    Ok(match (d.code, d.bits, d.lanes) {
        (SG_DTYPE_FLOAT, 16, 1) => DType::F16,
        (SG_DTYPE_FLOAT, 32, 1) => DType::F32,
        (SG_DTYPE_FLOAT, 64, 1) => DType::F64,
        (SG_DTYPE_UINT, 8, 1) => DType::U8,
        (SG_DTYPE_INT, 8, 1) => DType::I8,
        (SG_DTYPE_INT, 32, 1) => DType::I32,
        (SG_DTYPE_INT, 64, 1) => DType::I64,
        (SG_DTYPE_UINT, 32, 1) => DType::U32,
        (SG_DTYPE_UINT, 64, 1) => DType::U64,
        (SG_DTYPE_BOOL, 8, 1) => DType::Bool,
        _ => {
            return Err(NodeError::invalid(format!(
                "tensors of dtype {} cannot be saved as .npy",
                d.name()
            )))
        }
    })
}

fn sg_dtype(d: DType) -> SgDType {
    let (code, bits) = match d {
        DType::F16 => (SG_DTYPE_FLOAT, 16),
        DType::F32 => (SG_DTYPE_FLOAT, 32),
        DType::F64 => (SG_DTYPE_FLOAT, 64),
        DType::U8 => (SG_DTYPE_UINT, 8),
        DType::I8 => (SG_DTYPE_INT, 8),
        DType::I32 => (SG_DTYPE_INT, 32),
        DType::I64 => (SG_DTYPE_INT, 64),
        DType::U32 => (SG_DTYPE_UINT, 32),
        DType::U64 => (SG_DTYPE_UINT, 64),
        DType::Bool => (SG_DTYPE_BOOL, 8),
    };
    SgDType {
        code,
        bits,
        lanes: 1,
    }
}

/// Writes a tensor to a `.npy` file.
pub struct SaveTensor;
impl Node for SaveTensor {
    fn spec() -> NodeSpec {
        NodeSpec::new("core.save_tensor", "Save tensor (.npy)")
            .category("Files")
            .doc(
                "Writes a tensor to a NumPy `.npy` file with its dtype and shape (readable with \
                 `np.load`). The file is written to a temporary name and renamed, so it is never \
                 left half-written; missing parent directories are created.",
            )
            .input("x", "Tensor", "the tensor to save")
            .output("path", "path", "the file written")
            .param(ParamSpec::output_path("path", "out/tensor.npy").doc("where to write (.npy)"))
            .side_effect()
    }
    fn create() -> Result<Self, NodeError> {
        Ok(SaveTensor)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let path = ctx.param_str("path")?;
        if path.is_empty() {
            return Err(NodeError::invalid("param \"path\" is empty"));
        }
        let x = ctx.input_tensor("x")?;
        let array = Array::from_bytes(
            npy_dtype(x.dtype())?,
            x.shape().to_vec(),
            x.bytes().to_vec(),
        )?;
        let p = Path::new(&path);
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                NodeError::new(format!("cannot create directory {}: {e}", dir.display()))
            })?;
        }
        array
            .write(p)
            .map_err(|e| NodeError::new(format!("cannot write {path}: {e}")))?;
        ctx.set_output_str("path", &path)
    }
}

/// Reads a tensor from a `.npy` file.
pub struct LoadTensor;
impl Node for LoadTensor {
    fn spec() -> NodeSpec {
        NodeSpec::new("core.load_tensor", "Load tensor (.npy)")
            .category("Files")
            .doc("Reads a NumPy `.npy` array (C order, little-endian numeric dtypes) as a tensor.")
            .output("x", "Tensor", "the array, with its dtype and shape")
            .param(ParamSpec::path("path", "").doc("the .npy file"))
    }
    fn create() -> Result<Self, NodeError> {
        Ok(LoadTensor)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let path = ctx.param_str("path")?;
        let array =
            Array::read(Path::new(&path)).map_err(|e| NodeError::new(format!("{path}: {e}")))?;
        let out = ctx.output_bytes("x", sg_dtype(array.dtype), &array.shape)?;
        out.copy_from_slice(&array.data);
        Ok(())
    }
}

stylegraph_abi::export_plugin!(
    id: "core",
    version: env!("CARGO_PKG_VERSION"),
    description: "Constants, scalar math, tensor arithmetic, seed -> z, .npy files",
    nodes: [
        ConstFloat, ConstInt, ConstBool, ConstString, Math, TensorAdd, TensorScale, TensorLerp,
        SeedToZ, SaveTensor, LoadTensor,
    ],
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_ops() {
        assert_eq!(scalar_op("add", 2.0, 3.0).ok(), Some(5.0));
        assert_eq!(scalar_op("pow", 2.0, 10.0).ok(), Some(1024.0));
        assert_eq!(scalar_op("neg", 2.0, 0.0).ok(), Some(-2.0));
        assert!(scalar_op("div", 1.0, 0.0).is_err());
        assert!(scalar_op("sqrt", -1.0, 0.0).is_err());
        assert!(scalar_op("nope", 1.0, 1.0).is_err());
    }

    #[test]
    fn lerp_matches_torch_two_sided_form() {
        // Exact at both ends, even where the one-sided formula rounds.
        let (a, b) = (0.1f32, 0.7f32);
        assert_eq!(lerp(a, b, 0.0), a);
        assert_eq!(lerp(a, b, 1.0), b);
        assert_eq!(lerp(a, b, 0.7), b - (b - a) * (1.0 - 0.7));
        assert_eq!(lerp(a, b, 0.3), a + 0.3 * (b - a));
    }

    #[test]
    fn broadcasting_rules() {
        assert_eq!(broadcast_index(&[2, 16, 512], &[1, 512]).ok(), Some(512));
        assert_eq!(
            broadcast_index(&[2, 16, 512], &[2, 16, 512]).ok(),
            Some(2 * 16 * 512)
        );
        assert_eq!(broadcast_index(&[2, 3], &[1]).ok(), Some(1));
        assert!(broadcast_index(&[2, 3], &[2]).is_err());
    }

    #[test]
    fn every_node_is_documented() {
        for spec in __stylegraph_runtime().specs() {
            assert!(!spec.doc.is_empty(), "{} has no doc", spec.type_id);
            for p in spec.inputs.iter().chain(&spec.outputs) {
                assert!(!p.doc.is_empty(), "{}.{} has no doc", spec.type_id, p.name);
            }
            for p in &spec.params {
                assert!(
                    !p.doc.is_empty(),
                    "{} param {} has no doc",
                    spec.type_id,
                    p.name
                );
            }
        }
    }
}
