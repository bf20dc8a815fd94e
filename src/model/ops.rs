//! Operators affectd wires into tract's graphs in place of tract 0.23's own, where tract's are
//! measurably slow on the shipped models: ONNX `PRelu` with a constant slope as one in-place pass
//! ([`PreluInPlace`]) and 2×2 stride-2 max pooling as one pass over the input ([`MaxPool2x2`]).
//! Each gives the same bits as tract's (unit-tested on the shipped models) and falls back to
//! tract's own operator for any other case.

use tract_onnx::tract_core::internal::*;

/// ONNX `PRelu` as tract 0.23 wires it is three passes over the activation, each into a new
/// tensor: `x * slope`, a boolean tensor `0 > x`, then a select — in FaceMesh (23 PRelu layers)
/// about a quarter of the model's time. With a constant per-channel slope (FaceMesh's are) it is
/// one in-place pass here ([`PreluInPlace`]), the same arithmetic (`x < 0 ? x * slope : x`), so
/// the same bits; otherwise tract's own wiring.
#[derive(Debug, Clone)]
struct Prelu;

impl tract_onnx::tract_hir::ops::expandable::Expansion for Prelu {
    fn name(&self) -> StaticName {
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

    fn wire(&self, name: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
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
    fn for_facts(x: &TypedFact, s: &TypedFact) -> Option<PreluInPlace> {
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

impl Op for PreluInPlace {
    fn name(&self) -> StaticName {
        "PreluInPlace".into()
    }

    tract_onnx::tract_core::op_as_typed_op!();
}

impl EvalOp for PreluInPlace {
    fn eval(&self, _ctx: &EvalContext, mut inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
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

    tract_onnx::tract_core::op_out_of_plan!();
}

impl TypedOp for PreluInPlace {
    tract_onnx::tract_core::as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(inputs[0].datum_type.fact(inputs[0].shape.clone())))
    }
}

/// The op builder registered for `PRelu` (see [`Prelu`]).
pub(super) fn prelu_builder(
    _ctx: &tract_onnx::model::ParsingContext,
    _node: &tract_onnx::pb::NodeProto,
) -> TractResult<(Box<dyn tract_onnx::tract_hir::infer::InferenceOp>, Vec<String>)> {
    Ok((tract_onnx::tract_hir::ops::expandable::expand(Prelu), vec![]))
}

/// Replaces every f32 `MaxPool` of the decluttered `model` that is a 2×2 window, stride 2, no
/// padding, no dilation, no index output, on a concrete 4-D input, by [`MaxPool2x2`]. tract 0.23
/// walks such a pool one output at a time through its generic patch code (about 8 % of
/// FaceMesh's time, 7 % of the expression CNN's); this is one pass over the input.
pub(super) fn fast_max_pools(model: &mut TypedModel) -> TractResult<()> {
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

impl Op for MaxPool2x2 {
    fn name(&self) -> StaticName {
        "MaxPool2x2".into()
    }

    tract_onnx::tract_core::op_as_typed_op!();
}

impl EvalOp for MaxPool2x2 {
    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let shape = input.shape().to_vec();
        if shape.len() != 4 {
            bail!("MaxPool2x2 needs a 4-D input, got shape {shape:?}");
        }
        let mut out = Tensor::zero::<f32>(&self.output_shape(&shape))?;
        {
            let src = input.try_as_plain_ram()?;
            let mut dst = out.try_as_plain_ram_mut()?;
            self.pool(src.as_slice::<f32>()?, &shape, dst.as_slice_mut::<f32>()?);
        }
        Ok(tvec![out.into_tvalue()])
    }

    tract_onnx::tract_core::op_out_of_plan!();
}

impl TypedOp for MaxPool2x2 {
    tract_onnx::tract_core::as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let Some(shape) = inputs[0].shape.as_concrete() else {
            bail!("MaxPool2x2 needs a concrete input shape, got {:?}", inputs[0].shape);
        };
        if shape.len() != 4 {
            bail!("MaxPool2x2 needs a 4-D input, got shape {shape:?}");
        }
        Ok(tvec!(f32::fact(self.output_shape(shape))))
    }
}

/// Replaces a float convolution that reads the model input through a channels-last →
/// channels-first transpose (FaceMesh's first layer: NHWC input, `MoveAxis`, then a 3×3 stride-2
/// convolution from 3 to 16 channels) by [`ConvFromNhwc`], which reads the NHWC tensor itself.
/// tract 0.23 runs that layer as a transpose, a pad and a lazily gathered im2col matrix product
/// with only 27 values per column (about 1 ms of FaceMesh's ~4.5 ms on the tract CLI's profile);
/// [`ConvFromNhwc`] is one direct pass. Only convolutions with at most 4 input channels, one
/// group, no dilation, explicit or no padding and constant weights qualify.
pub(super) fn direct_nhwc_convs(model: &mut TypedModel) -> TractResult<()> {
    use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec};
    use tract_onnx::tract_core::ops::nn::DataFormat;
    let mut swaps = Vec::new();
    for node in model.nodes() {
        let Some(conv) = node.op_as::<Conv>() else { continue };
        let spec = &conv.pool_spec;
        let src = node.inputs[0];
        let mv = model.node(src.node);
        let moved = mv.op_as::<AxisOp>() == Some(&AxisOp::Move(3, 1))
            && mv.outputs[0].successors.len() == 1
            && !model.output_outlets()?.contains(&src);
        let (Some(k), Some(b)) =
            (&model.outlet_fact(node.inputs[1])?.konst, &model.outlet_fact(node.inputs[2])?.konst)
        else {
            continue;
        };
        let x = model.outlet_fact(mv.inputs.first().copied().unwrap_or(src))?;
        let out = model.outlet_fact(OutletId::new(node.id, 0))?;
        let (pads_before, pads_after) = match &spec.padding {
            PaddingSpec::Valid => (tvec![0, 0], tvec![0, 0]),
            PaddingSpec::Explicit(b, a) => (b.clone(), a.clone()),
            _ => continue,
        };
        if !moved
            || conv.group != 1
            || conv.q_params.is_some()
            || conv.kernel_fmt != KernelFormat::OIHW
            || spec.data_format != DataFormat::NCHW
            || spec.kernel_shape.len() != 2
            || spec.input_channels > 4
            || spec.dilations.as_ref().is_some_and(|d| d.iter().any(|&x| x != 1))
            || x.datum_type != f32::datum_type()
            || k.datum_type() != f32::datum_type()
            || b.datum_type() != f32::datum_type()
        {
            continue;
        }
        let (Some(xs), Some(os)) = (x.shape.as_concrete(), out.shape.as_concrete()) else { continue };
        let (co, ci, kh, kw) =
            (spec.output_channels, spec.input_channels, spec.kernel_shape[0], spec.kernel_shape[1]);
        if xs.len() != 4 || xs[3] != ci || os.len() != 4 || k.shape() != [co, ci, kh, kw] {
            continue;
        }
        let bias = b.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
        let bias = match bias.len() {
            1 => vec![bias[0]; co],
            n if n == co => bias,
            _ => continue,
        };
        // OIHW → (ky, kx, ci, co): the inner loop runs over output channels.
        let oihw = k.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
        let mut weights = vec![0f32; co * ci * kh * kw];
        for o in 0..co {
            for c in 0..ci {
                for y in 0..kh {
                    for xx in 0..kw {
                        weights[((y * kw + xx) * ci + c) * co + o] = oihw[((o * ci + c) * kh + y) * kw + xx];
                    }
                }
            }
        }
        let strides = spec.strides.clone().unwrap_or_else(|| tvec![1, 1]);
        let op = ConvFromNhwc {
            kernel: [kh, kw],
            strides: [strides[0], strides[1]],
            pad_before: [pads_before[0], pads_before[1]],
            out_hw: [os[2], os[3]],
            channels: [ci, co],
            weights,
            bias,
        };
        if os[1] != co || op.out_hw != op.output_hw(xs[1], xs[2], pads_after[0], pads_after[1]) {
            continue;
        }
        swaps.push((node.id, mv.inputs[0], op));
    }
    for (id, input, op) in swaps {
        let name = model.node(id).name.clone();
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, input)?;
        let y = patch.wire_node(name, op, &[x])?[0];
        patch.shunt_outside(model, OutletId::new(id, 0), y)?;
        patch.apply(model)?;
    }
    Ok(())
}

/// A 2-D float convolution (one group, no dilation) whose input is channels-last (N, H, W, C)
/// and whose output is channels-first (N, Co, OH, OW), computed directly: per output pixel, the
/// bias plus, tap by tap in (ky, kx, ci) order, weight × input accumulated over all output
/// channels at once (a multiply then an add, no fused multiply-add, so every CPU gives the same
/// bits). Taps in the padding read zero.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ConvFromNhwc {
    /// Kernel height and width.
    kernel: [usize; 2],
    /// Vertical and horizontal stride.
    strides: [usize; 2],
    /// Padding above and left of the input.
    pad_before: [usize; 2],
    /// Output height and width.
    out_hw: [usize; 2],
    /// Input and output channels.
    channels: [usize; 2],
    /// Weights in (ky, kx, ci, co) order.
    weights: Vec<f32>,
    /// One bias per output channel.
    bias: Vec<f32>,
}

// Equality is for tract's graph rewrites (equal weights are interchangeable).
impl Eq for ConvFromNhwc {}

impl std::hash::Hash for ConvFromNhwc {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.kernel, self.strides, self.pad_before, self.out_hw, self.channels).hash(state);
        self.weights.iter().chain(&self.bias).for_each(|w| w.to_bits().hash(state));
    }
}

impl ConvFromNhwc {
    /// Output height and width for an input of `h`×`w` with `pb`/`pr` padding below/right.
    fn output_hw(&self, h: usize, w: usize, pb: usize, pr: usize) -> [usize; 2] {
        let dim = |n: usize, k: usize, s: usize, a: usize, b: usize| (n + a + b).saturating_sub(k) / s + 1;
        [
            dim(h, self.kernel[0], self.strides[0], self.pad_before[0], pb),
            dim(w, self.kernel[1], self.strides[1], self.pad_before[1], pr),
        ]
    }

    /// Convolves one (H, W, C) image into one (Co, OH, OW) output.
    fn image(&self, x: &[f32], h: usize, w: usize, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked above).
            unsafe { self.image_avx2(x, h, w, out) };
            return;
        }
        self.image_any(x, h, w, out)
    }

    /// [`Self::image_any`] compiled for AVX2 (8 output channels per instruction).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn image_avx2(&self, x: &[f32], h: usize, w: usize, out: &mut [f32]) {
        self.image_any(x, h, w, out)
    }

    /// The convolution loop, with the accumulators in registers for the common output widths.
    #[inline(always)]
    fn image_any(&self, x: &[f32], h: usize, w: usize, out: &mut [f32]) {
        match self.channels[1] {
            16 => self.image_co::<16>(x, h, w, out),
            24 => self.image_co::<24>(x, h, w, out),
            32 => self.image_co::<32>(x, h, w, out),
            _ => self.image_dyn(x, h, w, out),
        }
    }

    /// [`Self::image_dyn`] for exactly `CO` output channels (fixed-size accumulators the compiler
    /// keeps in vector registers); the same operations in the same order. Rows and columns whose
    /// taps all fall inside the input take a tap table (no bounds tests) and four output pixels
    /// at a time (each weight row loaded once for the four); the border takes the checked loop.
    #[inline(always)]
    fn image_co<const CO: usize>(&self, x: &[f32], h: usize, w: usize, out: &mut [f32]) {
        let ci = self.channels[0];
        let [kh, kw] = self.kernel;
        let [sh, sw] = self.strides;
        let [pt, pl] = self.pad_before;
        let [oh, ow] = self.out_hw;
        let plane = oh * ow;
        let bias: [f32; CO] = self.bias[..CO].try_into().expect("CO biases");
        // Offsets of the taps from a window's top-left input value, in (ky, kx, ci) order.
        let offsets: Vec<usize> = (0..kh)
            .flat_map(|ky| (0..kw).flat_map(move |kx| (0..ci).map(move |c| (ky * w + kx) * ci + c)))
            .collect();
        let weights: Vec<[f32; CO]> =
            self.weights.chunks_exact(CO).map(|r| r.try_into().expect("CO weights")).collect();
        // Output rows/columns whose whole window is inside the input.
        let inside = |o: usize, s: usize, p: usize, k: usize, n: usize| o * s >= p && o * s - p + k <= n;
        // One output row, pixel by pixel, written to the channel planes once complete (storing
        // each pixel's channels straight into planes a multiple of 4 KiB apart is slower than
        // the arithmetic).
        let mut row = vec![[0f32; CO]; ow];
        for oy in 0..oh {
            let row_inside = inside(oy, sh, pt, kh, h);
            let mut ox = 0;
            while ox < ow {
                if row_inside && ox + 4 <= ow && inside(ox, sw, pl, kw, w) && inside(ox + 3, sw, pl, kw, w) {
                    let base = |o: usize| ((oy * sh - pt) * w + (o * sw - pl)) * ci;
                    let b = [base(ox), base(ox + 1), base(ox + 2), base(ox + 3)];
                    let (mut a0, mut a1, mut a2, mut a3) = (bias, bias, bias, bias);
                    for (&off, wrow) in offsets.iter().zip(&weights) {
                        let (v0, v1, v2, v3) = (x[b[0] + off], x[b[1] + off], x[b[2] + off], x[b[3] + off]);
                        for c in 0..CO {
                            a0[c] += wrow[c] * v0;
                            a1[c] += wrow[c] * v1;
                            a2[c] += wrow[c] * v2;
                            a3[c] += wrow[c] * v3;
                        }
                    }
                    let acc = [a0, a1, a2, a3];
                    row[ox..ox + 4].copy_from_slice(&acc);
                    ox += 4;
                    continue;
                }
                let mut acc = bias;
                for ky in 0..kh {
                    let Some(iy) = (oy * sh + ky).checked_sub(pt).filter(|&y| y < h) else { continue };
                    for kx in 0..kw {
                        let Some(ix) = (ox * sw + kx).checked_sub(pl).filter(|&v| v < w) else { continue };
                        let px = &x[(iy * w + ix) * ci..][..ci];
                        for (c, &v) in px.iter().enumerate() {
                            let wrow = &weights[(ky * kw + kx) * ci + c];
                            for k in 0..CO {
                                acc[k] += wrow[k] * v;
                            }
                        }
                    }
                }
                row[ox] = acc;
                ox += 1;
            }
            for (c, plane) in out.chunks_exact_mut(plane).enumerate() {
                for (o, px) in plane[oy * ow..][..ow].iter_mut().zip(&row) {
                    *o = px[c];
                }
            }
        }
    }

    /// The convolution loop for any number of output channels; vectorised by the compiler over
    /// output channels.
    fn image_dyn(&self, x: &[f32], h: usize, w: usize, out: &mut [f32]) {
        let [ci, co] = self.channels;
        let [kh, kw] = self.kernel;
        let [sh, sw] = self.strides;
        let [pt, pl] = self.pad_before;
        let [oh, ow] = self.out_hw;
        let plane = oh * ow;
        let mut acc = vec![0f32; co];
        for oy in 0..oh {
            for ox in 0..ow {
                acc.copy_from_slice(&self.bias);
                for ky in 0..kh {
                    let Some(iy) = (oy * sh + ky).checked_sub(pt).filter(|&y| y < h) else { continue };
                    for kx in 0..kw {
                        let Some(ix) = (ox * sw + kx).checked_sub(pl).filter(|&v| v < w) else { continue };
                        let px = &x[(iy * w + ix) * ci..][..ci];
                        let taps = &self.weights[(ky * kw + kx) * ci * co..][..ci * co];
                        for (&v, wrow) in px.iter().zip(taps.chunks_exact(co)) {
                            for (a, &k) in acc.iter_mut().zip(wrow) {
                                *a += k * v;
                            }
                        }
                    }
                }
                for (c, &a) in acc.iter().enumerate() {
                    out[c * plane + oy * ow + ox] = a;
                }
            }
        }
    }
}

impl Op for ConvFromNhwc {
    fn name(&self) -> StaticName {
        "ConvFromNhwc".into()
    }

    tract_onnx::tract_core::op_as_typed_op!();
}

impl EvalOp for ConvFromNhwc {
    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let s = input.shape().to_vec();
        if s.len() != 4 || s[3] != self.channels[0] {
            bail!("ConvFromNhwc: input shape {s:?}, wanted (N, H, W, {})", self.channels[0]);
        }
        let [oh, ow] = self.out_hw;
        let co = self.channels[1];
        let mut out = Tensor::zero::<f32>(&[s[0], co, oh, ow])?;
        {
            let src = input.try_as_plain_ram()?;
            let mut dst = out.try_as_plain_ram_mut()?;
            let (src, dst) = (src.as_slice::<f32>()?, dst.as_slice_mut::<f32>()?);
            for (x, o) in src.chunks_exact(s[1] * s[2] * s[3]).zip(dst.chunks_exact_mut(co * oh * ow)) {
                self.image(x, s[1], s[2], o);
            }
        }
        Ok(tvec![out.into_tvalue()])
    }

    tract_onnx::tract_core::op_out_of_plan!();
}

impl TypedOp for ConvFromNhwc {
    tract_onnx::tract_core::as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let n = inputs[0].shape[0].clone();
        let [oh, ow] = self.out_hw;
        Ok(tvec!(f32::fact([n, self.channels[1].to_dim(), oh.to_dim(), ow.to_dim()])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OnnxModel;
    use std::path::Path;

    /// Outputs of `file` on a fixed pseudo-random input (values in 0..1), through affectd's
    /// loader and through plain tract, and how many of each custom op affectd's plan holds
    /// (PRelu, max pool, convolution from NHWC, direct 3×3 convolution).
    pub(crate) fn ours_and_tract(file: &str, shape: &[usize]) -> (Vec<Vec<f32>>, Vec<Vec<f32>>, [usize; 4]) {
        use tract_onnx::prelude::*;
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(file);
        let n: usize = shape.iter().product();
        let input: Vec<f32> = (0..n).map(|i| ((i * 7919) % 256) as f32 / 255.0).collect();
        let facts = |_: &InferenceModel| vec![f32::fact(shape).into()];
        let (state, _) = crate::model::load_plan(&path, facts, "test").unwrap();
        let count = |name: &str| state.plan().model().nodes().iter().filter(|n| n.op.name() == name).count();
        let counts = [count("PreluInPlace"), count("MaxPool2x2"), count("ConvFromNhwc"), count("DirectConv")];
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
        (ours, plain, counts)
    }

    /// Largest difference between two sets of outputs, relative to the largest magnitude of each.
    fn max_rel_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| {
                assert_eq!(x.len(), y.len());
                let scale = y.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
                x.iter().zip(y).fold(0f32, |m, (p, q)| m.max((p - q).abs() / scale))
            })
            .fold(0.0, f32::max)
    }

    #[test]
    fn facemesh_with_the_custom_ops_matches_tract_to_float_rounding() {
        let (ours, plain, [prelus, pools, convs, _]) =
            ours_and_tract("face_landmark_int8w.onnx", &[1, 192, 192, 3]);
        assert!(
            prelus > 0 && pools > 0 && convs == 1,
            "custom ops in FaceMesh's plan: {prelus} PRelu, {pools} max pool, {convs} conv"
        );
        // The first convolution sums in another order than tract's matrix product.
        let d = max_rel_diff(&ours, &plain);
        eprintln!("FaceMesh max relative difference {d:e}");
        assert!(d < 1e-4, "FaceMesh differs from tract by {d} (relative)");
    }

    #[test]
    fn expression_cnn_and_face_detector_with_the_custom_ops_match_tract_to_float_rounding() {
        let (ours, plain, [_, pools, convs, direct]) = ours_and_tract("expression.onnx", &[1, 48, 48, 1]);
        assert!(
            pools > 0 && convs == 1,
            "custom ops in the expression CNN's plan: {pools} max pool, {convs} conv"
        );
        // The seven 3×3 layers after the first run directly where the CPU has a kernel.
        let want = if super::super::direct::available() { 7 } else { 0 };
        assert_eq!(direct, want, "direct 3×3 convolutions in the expression CNN's plan");
        let d = max_rel_diff(&ours, &plain);
        eprintln!("expression CNN max relative difference {d:e}");
        assert!(d < 1e-4, "the expression CNN differs from tract by {d} (relative)");
        let (ours, plain, counts) = ours_and_tract("face_detection_short_f16w.onnx", &[1, 128, 128, 3]);
        let d = max_rel_diff(&ours, &plain);
        eprintln!("BlazeFace custom ops {counts:?}, max relative difference {d:e}");
        assert!(d < 1e-4, "BlazeFace differs from tract by {d} (relative)");
    }

    #[test]
    fn conv_from_nhwc_is_the_textbook_convolution() {
        // 3×3 kernel, stride 2, padding 1 above/left and 1 below/right, against a plain loop over
        // the NCHW definition summing in the same order: 3 output channels (the generic loop) and
        // 16 (the register-blocked loop, interior blocks of four pixels and the border).
        for (h, w, ci, co) in [(5usize, 4usize, 2usize, 3usize), (11, 21, 3, 16)] {
            let x: Vec<f32> = (0..h * w * ci).map(|i| ((i * 13) % 7) as f32 - 3.0).collect();
            let k: Vec<f32> = (0..co * ci * 9).map(|i| ((i * 5) % 11) as f32 * 0.25 - 1.0).collect();
            let bias: Vec<f32> = (0..co).map(|o| o as f32 * 0.5 - 1.0).collect();
            let mut weights = vec![0f32; k.len()];
            for o in 0..co {
                for c in 0..ci {
                    for t in 0..9 {
                        weights[(t * ci + c) * co + o] = k[(o * ci + c) * 9 + t];
                    }
                }
            }
            let (oh, ow) = ((h + 2 - 3) / 2 + 1, (w + 2 - 3) / 2 + 1);
            let op = ConvFromNhwc {
                kernel: [3, 3],
                strides: [2, 2],
                pad_before: [1, 1],
                out_hw: [oh, ow],
                channels: [ci, co],
                weights,
                bias: bias.clone(),
            };
            assert_eq!(op.output_hw(h, w, 1, 1), [oh, ow]);
            let mut out = vec![0f32; co * oh * ow];
            op.image(&x, h, w, &mut out);
            // The portable loop (what ARM runs) gives the same bits as the dispatched one.
            let mut portable = vec![0f32; co * oh * ow];
            op.image_any(&x, h, w, &mut portable);
            assert_eq!(portable, out, "{co} channels: portable loop");
            for o in 0..co {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut want = bias[o];
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (iy, ix) = ((oy * 2 + ky) as isize - 1, (ox * 2 + kx) as isize - 1);
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                for c in 0..ci {
                                    want += k[(o * ci + c) * 9 + ky * 3 + kx]
                                        * x[((iy as usize) * w + ix as usize) * ci + c];
                                }
                            }
                        }
                        assert_eq!(
                            out[(o * oh + oy) * ow + ox],
                            want,
                            "{co} channels: output ({o}, {oy}, {ox})"
                        );
                    }
                }
            }
        }
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
