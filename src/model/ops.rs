//! Operators affectd wires into tract's graphs in place of tract 0.23's own, where tract's are
//! measurably slow on the shipped models: ONNX `PRelu` with a constant slope as one in-place pass
//! ([`PreluInPlace`]) and 2×2 stride-2 max pooling as one pass over the input ([`MaxPool2x2`]).
//! Each gives the same bits as tract's (unit-tested on the shipped models) and falls back to
//! tract's own operator for any other case.

/// ONNX `PRelu` as tract 0.23 wires it is three passes over the activation, each into a new
/// tensor: `x * slope`, a boolean tensor `0 > x`, then a select — in FaceMesh (23 PRelu layers)
/// about a quarter of the model's time. With a constant per-channel slope (FaceMesh's are) it is
/// one in-place pass here ([`PreluInPlace`]), the same arithmetic (`x < 0 ? x * slope : x`), so
/// the same bits; otherwise tract's own wiring.
#[derive(Debug, Clone)]
struct Prelu;

impl tract_onnx::tract_hir::ops::expandable::Expansion for Prelu {
    fn name(&self) -> tract_onnx::tract_hir::internal::StaticName {
        "Prelu".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut tract_onnx::tract_hir::infer::Solver<'r>,
        inputs: &'p [tract_onnx::tract_hir::infer::TensorProxy],
        outputs: &'p [tract_onnx::tract_hir::infer::TensorProxy],
    ) -> tract_onnx::tract_hir::infer::InferenceResult {
        use tract_onnx::tract_hir::internal::*;
        check_input_arity(inputs, 2)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].datum_type, &outputs[0].datum_type)?;
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        name: &str,
        model: &mut tract_onnx::prelude::TypedModel,
        inputs: &[tract_onnx::prelude::OutletId],
    ) -> tract_onnx::prelude::TractResult<tract_onnx::prelude::TVec<tract_onnx::prelude::OutletId>> {
        use tract_onnx::tract_hir::internal::*;
        let a = inputs[0];
        let mut b = inputs[1];
        if let Some(op) = PreluInPlace::for_facts(model.outlet_fact(a)?, model.outlet_fact(b)?) {
            return model.wire_node(name, op, &[a]);
        }
        // tract's own wiring (tract-onnx 0.23 ops/nn Prelu).
        let rank = model.outlet_fact(a)?.rank();
        while model.outlet_fact(b)?.rank() < rank {
            b = model.wire_node(
                format!("{name}.add-axis-{}", model.outlet_fact(b)?.rank()),
                AxisOp::Add(0),
                &[b],
            )?[0];
        }
        let ab = model.wire_node(format!("{name}.mul"), tract_onnx::tract_hir::ops::math::mul(), &[a, b])?[0];
        let zero = tensor0(0.0)
            .cast_to_dt(model.outlet_fact(a)?.datum_type)?
            .into_owned()
            .broadcast_into_rank(rank)?;
        let zero = model.add_const(name.to_string() + ".zero", zero)?;
        let test = model.wire_node(
            name.to_string() + ".test",
            tract_onnx::tract_core::ops::binary::TypedBinOp(
                tract_onnx::tract_core::ops::logic::comp_gt(),
                None,
            ),
            &[zero, a],
        )?;
        model.wire_node(name.to_string() + ".iff", tract_onnx::tract_core::ops::logic::Iff, &[test[0], ab, a])
    }
}

/// PRelu with a constant slope per index of one axis (or one slope for all), evaluated in place.
#[derive(Debug, Clone, PartialEq)]
struct PreluInPlace {
    /// The input axis the slopes run along.
    axis: usize,
    /// One slope per index of `axis` (one value: the same slope everywhere).
    slope: Vec<f32>,
}

// Equality is for tract's graph rewrites (two ops with equal slopes are interchangeable).
impl Eq for PreluInPlace {}

impl PreluInPlace {
    /// The op for f32 input `x` of known shape and a constant f32 slope `s` that broadcasts
    /// along one axis of it (ONNX unidirectional broadcasting), else `None`.
    fn for_facts(
        x: &tract_onnx::prelude::TypedFact,
        s: &tract_onnx::prelude::TypedFact,
    ) -> Option<PreluInPlace> {
        use tract_onnx::prelude::*;
        let k = s.konst.as_ref()?;
        let slope = k.try_as_plain_ram().ok()?.as_slice::<f32>().ok()?.to_vec();
        let shape: Vec<usize> = x.shape.as_concrete()?.to_vec();
        if x.datum_type != f32::datum_type() || k.rank() > shape.len() || slope.is_empty() {
            return None;
        }
        // Slope dims right-aligned against the input's; all 1 but (at most) one equal to it.
        let offset = shape.len() - k.rank();
        let mut axis = None;
        for (i, &d) in k.shape().iter().enumerate() {
            if d != 1 {
                if axis.is_some() || d != shape[offset + i] {
                    return None;
                }
                axis = Some(offset + i);
            }
        }
        Some(PreluInPlace { axis: axis.unwrap_or(0), slope })
    }
}

impl tract_onnx::tract_core::ops::Op for PreluInPlace {
    fn name(&self) -> tract_onnx::tract_hir::internal::StaticName {
        "PreluInPlace".into()
    }

    fn as_typed(&self) -> Option<&dyn tract_onnx::tract_core::ops::TypedOp> {
        Some(self)
    }
}

impl tract_onnx::tract_core::ops::EvalOp for PreluInPlace {
    fn eval(
        &self,
        _ctx: &tract_onnx::tract_core::plan::EvalContext,
        mut inputs: tract_onnx::prelude::TVec<tract_onnx::prelude::TValue>,
    ) -> tract_onnx::prelude::TractResult<tract_onnx::prelude::TVec<tract_onnx::prelude::TValue>> {
        use tract_onnx::prelude::*;
        // The input's own buffer when nothing else holds it, else a copy.
        let mut t = inputs.remove(0).into_tensor();
        let inner: usize = t.shape()[self.axis + 1..].iter().product();
        let n = t.shape().get(self.axis).copied().unwrap_or(1);
        if inner > 0 {
            let mut view = t.try_as_plain_ram_mut()?;
            for (i, block) in view.as_slice_mut::<f32>()?.chunks_exact_mut(inner).enumerate() {
                let s = if self.slope.len() == 1 { self.slope[0] } else { self.slope[i % n] };
                for x in block {
                    *x = if 0.0 > *x { *x * s } else { *x };
                }
            }
        }
        Ok(tvec![t.into_tvalue()])
    }

    fn eval_out_of_plan(
        &self,
        inputs: tract_onnx::prelude::TVec<tract_onnx::prelude::TValue>,
    ) -> tract_onnx::prelude::TractResult<Option<tract_onnx::prelude::TVec<tract_onnx::prelude::TValue>>>
    {
        Ok(Some(self.eval(&tract_onnx::tract_core::plan::EvalContext::out_of_plan(), inputs)?))
    }
}

impl tract_onnx::tract_core::ops::TypedOp for PreluInPlace {
    fn as_op(&self) -> &dyn tract_onnx::tract_core::ops::Op {
        self
    }

    fn as_op_mut(&mut self) -> &mut dyn tract_onnx::tract_core::ops::Op {
        self
    }

    fn output_facts(
        &self,
        inputs: &[&tract_onnx::prelude::TypedFact],
    ) -> tract_onnx::prelude::TractResult<tract_onnx::prelude::TVec<tract_onnx::prelude::TypedFact>> {
        use tract_onnx::prelude::*;
        Ok(tvec!(inputs[0].datum_type.fact(inputs[0].shape.clone())))
    }
}

/// The op builder registered for `PRelu` (see [`Prelu`]).
pub(super) fn prelu_builder(
    _ctx: &tract_onnx::model::ParsingContext,
    _node: &tract_onnx::pb::NodeProto,
) -> tract_onnx::prelude::TractResult<(Box<dyn tract_onnx::tract_hir::infer::InferenceOp>, Vec<String>)> {
    Ok((tract_onnx::tract_hir::ops::expandable::expand(Prelu), vec![]))
}

/// Replaces every f32 `MaxPool` of the decluttered `model` that is a 2×2 window, stride 2, no
/// padding, no dilation, no index output, on a concrete 4-D input, by [`MaxPool2x2`]. tract 0.23
/// walks such a pool one output at a time through its generic patch code (about 8 % of
/// FaceMesh's time, 7 % of the expression CNN's); this is one pass over the input.
pub(super) fn fast_max_pools(
    model: &mut tract_onnx::prelude::TypedModel,
) -> tract_onnx::prelude::TractResult<()> {
    use tract_onnx::prelude::*;
    use tract_onnx::tract_core::ops::cnn::{MaxPool, PaddingSpec};
    use tract_onnx::tract_core::ops::nn::DataFormat;
    let mut swaps = Vec::new();
    for node in model.nodes() {
        let Some(pool) = node.op_as::<MaxPool>() else { continue };
        let spec = &pool.pool_spec;
        let fact = model.outlet_fact(node.inputs[0])?;
        let unpadded = match &spec.padding {
            PaddingSpec::Valid => true,
            PaddingSpec::Explicit(b, a) => b.iter().chain(a.iter()).all(|&p| p == 0),
            PaddingSpec::ExplicitOnnxPool(b, a, ceil) => !ceil && b.iter().chain(a.iter()).all(|&p| p == 0),
            _ => false,
        };
        let channels_last = match spec.data_format {
            DataFormat::NCHW => false,
            DataFormat::NHWC => true,
            _ => continue,
        };
        if pool.with_index_outputs.is_none()
            && fact.datum_type == f32::datum_type()
            && fact.rank() == 4
            && fact.shape.as_concrete().is_some()
            && spec.kernel_shape.as_slice() == [2, 2]
            && spec.strides.as_ref().is_some_and(|s| s.as_slice() == [2, 2])
            && spec.dilations.as_ref().is_none_or(|d| d.iter().all(|&x| x == 1))
            && unpadded
        {
            swaps.push((node.id, MaxPool2x2 { channels_last }));
        }
    }
    for (id, op) in swaps {
        let node = model.node(id).clone();
        TypedModelPatch::replace_single_op(model, &node, &node.inputs, op)?.apply(model)?;
    }
    Ok(())
}

/// Max pooling over 2×2 windows with stride 2 and no padding, of a 4-D f32 tensor (N, C, H, W) or
/// (N, H, W, C); odd trailing rows and columns are dropped, as ONNX floor mode does. Each output
/// folds its window as tract does (from `f32::MIN`, a tap replaces the running value when the
/// value is less than it; taps in row order), so it gives tract's bits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct MaxPool2x2 {
    /// Channels are the last axis (N, H, W, C) rather than the second.
    channels_last: bool,
}

/// tract's fold of one tap into a running maximum.
#[inline(always)]
fn fold_max(acc: f32, v: f32) -> f32 {
    if acc < v {
        v
    } else {
        acc
    }
}

impl MaxPool2x2 {
    /// The output shape for an input shape (rank 4).
    fn output_shape(&self, s: &[usize]) -> [usize; 4] {
        if self.channels_last {
            [s[0], s[1] / 2, s[2] / 2, s[3]]
        } else {
            [s[0], s[1], s[2] / 2, s[3] / 2]
        }
    }

    /// Pools `input` (shape `s`) into `out`.
    fn pool(&self, input: &[f32], s: &[usize], out: &mut [f32]) {
        if self.channels_last {
            let (h, w, c) = (s[1], s[2], s[3]);
            let (oh, ow) = (h / 2, w / 2);
            for (image, out_image) in input.chunks_exact(h * w * c).zip(out.chunks_exact_mut(oh * ow * c)) {
                for (oy, out_row) in out_image.chunks_exact_mut(ow * c).enumerate() {
                    let r0 = &image[2 * oy * w * c..][..2 * ow * c];
                    let r1 = &image[(2 * oy + 1) * w * c..][..2 * ow * c];
                    for (ox, o) in out_row.chunks_exact_mut(c).enumerate() {
                        let (a, b) = (&r0[2 * ox * c..][..2 * c], &r1[2 * ox * c..][..2 * c]);
                        for (k, o) in o.iter_mut().enumerate() {
                            let m = fold_max(fold_max(f32::MIN, a[k]), a[c + k]);
                            *o = fold_max(fold_max(m, b[k]), b[c + k]);
                        }
                    }
                }
            }
        } else {
            let (h, w) = (s[2], s[3]);
            let (oh, ow) = (h / 2, w / 2);
            for (plane, out_plane) in input.chunks_exact(h * w).zip(out.chunks_exact_mut(oh * ow)) {
                for (oy, out_row) in out_plane.chunks_exact_mut(ow).enumerate() {
                    let r0 = &plane[2 * oy * w..][..2 * ow];
                    let r1 = &plane[(2 * oy + 1) * w..][..2 * ow];
                    for ((o, a), b) in out_row.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
                        let m = fold_max(fold_max(f32::MIN, a[0]), a[1]);
                        *o = fold_max(fold_max(m, b[0]), b[1]);
                    }
                }
            }
        }
    }
}

impl tract_onnx::tract_core::ops::Op for MaxPool2x2 {
    fn name(&self) -> tract_onnx::tract_hir::internal::StaticName {
        "MaxPool2x2".into()
    }

    fn as_typed(&self) -> Option<&dyn tract_onnx::tract_core::ops::TypedOp> {
        Some(self)
    }
}

impl tract_onnx::tract_core::ops::EvalOp for MaxPool2x2 {
    fn eval(
        &self,
        _ctx: &tract_onnx::tract_core::plan::EvalContext,
        inputs: tract_onnx::prelude::TVec<tract_onnx::prelude::TValue>,
    ) -> tract_onnx::prelude::TractResult<tract_onnx::prelude::TVec<tract_onnx::prelude::TValue>> {
        use tract_onnx::prelude::*;
        let input = &inputs[0];
        let shape = input.shape().to_vec();
        if shape.len() != 4 {
            tract_onnx::tract_core::internal::bail!("MaxPool2x2 needs a 4-D input, got shape {shape:?}");
        }
        let mut out = Tensor::zero::<f32>(&self.output_shape(&shape))?;
        {
            let src = input.try_as_plain_ram()?;
            let mut dst = out.try_as_plain_ram_mut()?;
            self.pool(src.as_slice::<f32>()?, &shape, dst.as_slice_mut::<f32>()?);
        }
        Ok(tvec![out.into_tvalue()])
    }

    fn eval_out_of_plan(
        &self,
        inputs: tract_onnx::prelude::TVec<tract_onnx::prelude::TValue>,
    ) -> tract_onnx::prelude::TractResult<Option<tract_onnx::prelude::TVec<tract_onnx::prelude::TValue>>>
    {
        Ok(Some(self.eval(&tract_onnx::tract_core::plan::EvalContext::out_of_plan(), inputs)?))
    }
}

impl tract_onnx::tract_core::ops::TypedOp for MaxPool2x2 {
    fn as_op(&self) -> &dyn tract_onnx::tract_core::ops::Op {
        self
    }

    fn as_op_mut(&mut self) -> &mut dyn tract_onnx::tract_core::ops::Op {
        self
    }

    fn output_facts(
        &self,
        inputs: &[&tract_onnx::prelude::TypedFact],
    ) -> tract_onnx::prelude::TractResult<tract_onnx::prelude::TVec<tract_onnx::prelude::TypedFact>> {
        use tract_onnx::prelude::*;
        let Some(shape) = inputs[0].shape.as_concrete() else {
            tract_onnx::tract_core::internal::bail!(
                "MaxPool2x2 needs a concrete input shape, got {:?}",
                inputs[0].shape
            );
        };
        if shape.len() != 4 {
            tract_onnx::tract_core::internal::bail!("MaxPool2x2 needs a 4-D input, got shape {shape:?}");
        }
        Ok(tvec!(f32::fact(self.output_shape(shape))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OnnxModel;
    use std::path::Path;

    /// Outputs of `file` on a fixed pseudo-random input (values in 0..1), through affectd's
    /// loader and through plain tract, and how many of each custom op affectd's plan holds.
    fn ours_and_tract(file: &str, shape: &[usize]) -> (Vec<Vec<f32>>, Vec<Vec<f32>>, usize, usize) {
        use tract_onnx::prelude::*;
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(file);
        let n: usize = shape.iter().product();
        let input: Vec<f32> = (0..n).map(|i| ((i * 7919) % 256) as f32 / 255.0).collect();
        let facts = |_: &InferenceModel| vec![f32::fact(shape).into()];
        let (state, _) = crate::model::load_plan(&path, facts, "test").unwrap();
        let count = |name: &str| state.plan().model().nodes().iter().filter(|n| n.op.name() == name).count();
        let (prelus, pools) = (count("PreluInPlace"), count("MaxPool2x2"));
        let ours =
            OnnxModel::load_f32(&path, &[shape]).unwrap().run_f32(vec![(shape, input.clone())]).unwrap();
        let plain = tract_onnx::onnx()
            .with_ignore_value_info(true)
            .model_for_path(&path)
            .unwrap()
            .with_input_fact(0, f32::fact(shape).into())
            .unwrap()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap();
        let out = plain.run(tvec![Tensor::from_shape(shape, &input).unwrap().into()]).unwrap();
        let plain: Vec<Vec<f32>> =
            out.iter().map(|t| t.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec()).collect();
        (ours, plain, prelus, pools)
    }

    #[test]
    fn facemesh_gives_the_same_bits_as_tract_wiring_with_both_custom_ops() {
        let (ours, plain, prelus, pools) = ours_and_tract("face_landmark_int8w.onnx", &[1, 192, 192, 3]);
        assert!(prelus > 0 && pools > 0, "custom ops in FaceMesh's plan: {prelus} PRelu, {pools} max pool");
        assert_eq!(ours, plain);
    }

    #[test]
    fn expression_cnn_and_face_detector_give_the_same_bits_as_tract_with_the_fast_max_pool() {
        let (ours, plain, _, pools) = ours_and_tract("expression.onnx", &[1, 48, 48, 1]);
        assert!(pools > 0, "no max pool replaced in the expression CNN");
        assert_eq!(ours, plain);
        let (ours, plain, _, _) = ours_and_tract("face_detection_short_f16w.onnx", &[1, 128, 128, 3]);
        assert_eq!(ours, plain);
    }

    #[test]
    fn max_pool_2x2_folds_like_tract_in_both_layouts() {
        // (N, C, H, W) = (1, 2, 3, 5): odd sizes drop the last row and column.
        let x: Vec<f32> = (0..30).map(|i| ((i * 37) % 17) as f32 - 8.0).collect();
        let nchw = MaxPool2x2 { channels_last: false };
        assert_eq!(nchw.output_shape(&[1, 2, 3, 5]), [1, 2, 1, 2]);
        let mut out = vec![0.0; 4];
        nchw.pool(&x, &[1, 2, 3, 5], &mut out);
        let at = |c: usize, y: usize, xx: usize| x[c * 15 + y * 5 + xx];
        let want: Vec<f32> = (0..2)
            .flat_map(|c| (0..2).map(move |ox| (c, ox)))
            .map(|(c, ox)| {
                at(c, 0, 2 * ox).max(at(c, 0, 2 * ox + 1)).max(at(c, 1, 2 * ox)).max(at(c, 1, 2 * ox + 1))
            })
            .collect();
        assert_eq!(out, want);
        // The same values as (N, H, W, C) = (1, 3, 5, 2).
        let nhwc = MaxPool2x2 { channels_last: true };
        let t: Vec<f32> = (0..15).flat_map(|p| [x[p], x[15 + p]]).collect();
        let mut out2 = vec![0.0; 4];
        nhwc.pool(&t, &[1, 3, 5, 2], &mut out2);
        assert_eq!(out2, vec![want[0], want[2], want[1], want[3]]);
        // A window of -inf gives f32::MIN (tract's fold starts there); NaN never replaces.
        let mut o = [0.0];
        nchw.pool(&[f32::NEG_INFINITY; 4], &[1, 1, 2, 2], &mut o);
        assert_eq!(o[0], f32::MIN);
        nchw.pool(&[1.0, f32::NAN, 3.0, 2.0], &[1, 1, 2, 2], &mut o);
        assert_eq!(o[0], 3.0);
    }
}
