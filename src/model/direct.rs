//! Convolutions computed directly, without im2col or packing (issue 20), swapped in for tract's
//! on x86 CPUs with AVX-512 or AVX2 + FMA; other CPUs (the ARM boards) keep tract's.
//!
//! [`DirectConv`] covers the expression CNN's 3×3 layers (stride 1, padding 1) and FaceMesh's
//! and BlazeFace's 1×1 layers (tract's `EinSum` `NIHW,OI->NOHW`, with the bias `Add` after it
//! folded in). tract 0.23 runs a 3×3 layer as an explicit `Pad`, a lazily gathered im2col matrix
//! and a matrix product (the gathering was about a third of the expression CNN's time), and a
//! 1×1 layer as a matrix product that first packs the activations (a third of FaceMesh's matrix
//! time). Here every output value is formed in registers from the channel planes as they lie:
//! for an image padded to width `W + 2`, output (y, x) and its tap (ky, kx) are `y·(W+2) + x` and
//! `y·(W+2) + x + ky·(W+2) + kx` in the flattened padded plane, so each tap is one contiguous,
//! shifted run of the input, loaded as vectors and multiplied by a broadcast weight. The two
//! padding columns of each output row are computed and dropped. A 1×1 layer is the same with one
//! tap and no padding.

// Elsewhere `Isa` has no variants: the kernels' arguments and everything after detection are unused.
#![cfg_attr(not(target_arch = "x86_64"), allow(unused_variables, unreachable_code, unused_unsafe, dead_code))]

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// Replaces each qualifying convolution by [`DirectConv`], when the CPU has a kernel for it:
/// 3×3 `Conv`s with stride 1, padding 1 on every side, one group, no dilation, NCHW and
/// constant f32 weights and bias; and 1×1 convolutions as tract declutters them (`EinSum`
/// `NIHW,OI->NOHW` with constant f32 weights), with a following `Add` of a constant per-channel
/// bias folded in. The input shape must be concrete and the output channels a multiple of the
/// register block.
pub(super) fn direct_convs(model: &mut TypedModel) -> TractResult<()> {
    let Some(isa) = Isa::detect() else { return Ok(()) };
    let mut swaps = Vec::new();
    for node in model.nodes() {
        if let Some(swap) = conv_3x3(model, node, isa)?.or(pointwise(model, node, isa)?) {
            swaps.push(swap);
        }
    }
    for (id, consumer, op) in swaps {
        let name = model.node(id).name.clone();
        let mut patch = TypedModelPatch::default();
        // Read the input now: an earlier swap may have replaced the node that produces it.
        let x = patch.tap_model(model, model.node(consumer).inputs[0])?;
        let y = patch.wire_node(name, op, &[x])?[0];
        patch.shunt_outside(model, OutletId::new(id, 0), y)?;
        patch.apply(model)?;
    }
    Ok(())
}

/// A swap: the node whose output the op replaces, the node whose first input is the op's input,
/// the op.
type Swap = (usize, usize, Box<dyn TypedOp>);

/// A 3×3, stride-1, padding-1 convolution `node`, dense (one group) as a [`DirectConv`] or
/// depthwise (one group per channel) as a [`Depthwise3x3`].
fn conv_3x3(model: &TypedModel, node: &TypedNode, isa: Isa) -> TractResult<Option<Swap>> {
    use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec};
    use tract_onnx::tract_core::ops::nn::DataFormat;
    let Some(conv) = node.op_as::<Conv>() else { return Ok(None) };
    let spec = &conv.pool_spec;
    let (Some(k), Some(b)) =
        (&model.outlet_fact(node.inputs[1])?.konst, &model.outlet_fact(node.inputs[2])?.konst)
    else {
        return Ok(None);
    };
    let x = model.outlet_fact(node.inputs[0])?;
    let pad_one = match &spec.padding {
        PaddingSpec::Explicit(b, a) => b.iter().chain(a.iter()).all(|&p| p == 1),
        PaddingSpec::SameUpper | PaddingSpec::SameLower => true,
        _ => false,
    };
    let (ci, co) = (spec.input_channels, spec.output_channels);
    let depthwise = conv.group == ci && ci == co && ci > 1;
    if !pad_one
        || (conv.group != 1 && !depthwise)
        || conv.q_params.is_some()
        || conv.kernel_fmt != KernelFormat::OIHW
        || spec.data_format != DataFormat::NCHW
        || spec.kernel_shape.as_slice() != [3, 3]
        || spec.strides.as_ref().is_some_and(|s| s.iter().any(|&x| x != 1))
        || spec.dilations.as_ref().is_some_and(|d| d.iter().any(|&x| x != 1))
        || x.datum_type != f32::datum_type()
        || k.datum_type() != f32::datum_type()
        || b.datum_type() != f32::datum_type()
    {
        return Ok(None);
    }
    let Some(xs) = x.shape.as_concrete() else { return Ok(None) };
    let per_out = if depthwise { 1 } else { ci };
    if xs.len() != 4 || xs[1] != ci || k.shape() != [co, per_out, 3, 3] {
        return Ok(None);
    }
    if !depthwise && !co.is_multiple_of(isa.block()) {
        return Ok(None);
    }
    let bias = b.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
    let bias = match bias.len() {
        1 => vec![bias[0]; co],
        n if n == co => bias,
        _ => return Ok(None),
    };
    let oihw = k.try_as_plain_ram()?.as_slice::<f32>()?;
    let hw = [xs[2], xs[3]];
    let op: Box<dyn TypedOp> = if depthwise {
        Box::new(Depthwise3x3 { isa, channels: ci, hw, weights: oihw.to_vec(), bias })
    } else {
        Box::new(DirectConv::new(isa, 3, [ci, co], hw, oihw, bias))
    };
    Ok(Some((node.id, node.id, op)))
}

/// A 1×1 convolution as tract declutters it (`EinSum` `NIHW,OI->NOHW`), and the bias `Add` after
/// it when there is one, as a [`DirectConv`].
fn pointwise(model: &TypedModel, node: &TypedNode, isa: Isa) -> TractResult<Option<Swap>> {
    use tract_onnx::tract_core::ops::binary::TypedBinOp;
    use tract_onnx::tract_core::ops::einsum::EinSum;
    let Some(einsum) = node.op_as::<EinSum>() else { return Ok(None) };
    if einsum.axes.to_string() != "NIHW,OI->NOHW"
        || einsum.operating_dt != f32::datum_type()
        || einsum.q_params.is_some()
        || node.inputs.len() != 2
    {
        return Ok(None);
    }
    let x = model.outlet_fact(node.inputs[0])?;
    let Some(k) = &model.outlet_fact(node.inputs[1])?.konst else { return Ok(None) };
    let Some(xs) = x.shape.as_concrete() else { return Ok(None) };
    if x.datum_type != f32::datum_type() || k.datum_type() != f32::datum_type() || xs.len() != 4 {
        return Ok(None);
    }
    let (co, ci) = match k.shape() {
        &[o, i] if i == xs[1] => (o, i),
        _ => return Ok(None),
    };
    if !co.is_multiple_of(isa.block()) {
        return Ok(None);
    }
    let weights = k.try_as_plain_ram()?.as_slice::<f32>()?;
    // The bias: a lone successor `Add` of a constant with one value per output channel.
    let out = OutletId::new(node.id, 0);
    let mut bias = (node.id, vec![0f32; co]);
    if let [succ] = node.outputs[0].successors.as_slice() {
        let add = model.node(succ.node);
        let other = add.inputs.iter().find(|&&i| i != out);
        if let (Some(bin), Some(&other)) = (add.op_as::<TypedBinOp>(), other) {
            let fact = model.outlet_fact(other)?;
            let per_channel =
                matches!(fact.shape.as_concrete(), Some(&[1, c, 1, 1]) | Some(&[c, 1, 1]) if c == co);
            if let (true, "Add", Some(b), false) =
                (per_channel, bin.0.name(), &fact.konst, model.output_outlets()?.contains(&out))
            {
                if b.datum_type() == f32::datum_type() && add.inputs.len() == 2 {
                    bias = (add.id, b.try_as_plain_ram()?.as_slice::<f32>()?.to_vec());
                }
            }
        }
    }
    let op = DirectConv::new(isa, 1, [ci, co], [xs[2], xs[3]], weights, bias.1);
    Ok(Some((bias.0, node.id, Box::new(op))))
}

/// Whether this CPU has a [`DirectConv`] kernel (and `AFFECTD_TRACT_CONV` — set, not empty or
/// `0` — does not ask for tract's convolutions instead).
#[cfg(test)]
pub(super) fn available() -> bool {
    Isa::detect().is_some()
}

/// The instruction set a [`DirectConv`] runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Isa {
    /// 16 lanes; 8 output channels × 48 positions per register block.
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// 8 lanes; 4 output channels × 24 positions per register block.
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Isa {
    /// The best kernel this CPU can run, if any.
    fn detect() -> Option<Isa> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::env::var("AFFECTD_TRACT_CONV").is_ok_and(|v| !v.is_empty() && v != "0") {
                return None;
            }
            if std::is_x86_feature_detected!("avx512f") {
                return Some(Isa::Avx512);
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                return Some(Isa::Avx2);
            }
        }
        None
    }

    /// Output channels per register block.
    fn block(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => 8,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => 4,
        }
    }

    /// Output positions per register block.
    fn span(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => 48,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => 24,
        }
    }
}

/// A `k`×`k` convolution (`k` = 1, or 3 with stride 1 and zero padding 1), NCHW in and out, one
/// group (see the module documentation). Sums per output value in (input channel, ky, kx) order
/// with fused multiply-adds, starting from the bias.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct DirectConv {
    isa: Isa,
    /// Kernel side: 1 or 3.
    k: usize,
    /// Input and output channels.
    channels: [usize; 2],
    /// Input (= output) height and width.
    hw: [usize; 2],
    /// Weights per block of `isa.block()` output channels: (block, ci, tap, channel in block).
    packed: Vec<f32>,
    /// One bias per output channel.
    bias: Vec<f32>,
}

// Equality is for tract's graph rewrites (equal weights are interchangeable).
impl Eq for DirectConv {}

impl std::hash::Hash for DirectConv {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.isa, self.k, self.channels, self.hw).hash(state);
        self.packed.iter().chain(&self.bias).for_each(|w| w.to_bits().hash(state));
    }
}

thread_local! {
    /// The zero-padded input and the padded-width output of the last call on this thread,
    /// reused (the largest layer needs ~0.6 MB; allocating it per call costs page faults).
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

impl DirectConv {
    /// The op for weights `oihw` ((co, ci, k, k) in that order).
    fn new(
        isa: Isa,
        k: usize,
        channels: [usize; 2],
        hw: [usize; 2],
        oihw: &[f32],
        bias: Vec<f32>,
    ) -> DirectConv {
        let [ci, co] = channels;
        let (mb, taps) = (isa.block(), k * k);
        let mut packed = vec![0f32; co * ci * taps];
        for o in 0..co {
            for c in 0..ci {
                for t in 0..taps {
                    packed[(((o / mb) * ci + c) * taps + t) * mb + o % mb] = oihw[(o * ci + c) * taps + t];
                }
            }
        }
        DirectConv { isa, k, channels, hw, packed, bias }
    }

    /// Convolves one (C, H, W) image into one (Co, H, W) output.
    fn image(&self, x: &[f32], out: &mut [f32]) {
        // SAFETY: `padded` passes planes and rows of the sizes `blocks` requires.
        padded(
            x,
            self.channels,
            self.hw,
            self.k / 2,
            self.isa.span(),
            out,
            |xp, plane, positions, tmp| unsafe { self.blocks(xp, plane, positions, tmp) },
        )
    }

    /// Runs the kernel of `self.isa` over padded planes `xp` (`ci` × `plane`) into `tmp`
    /// (`co` × `positions`).
    ///
    /// # Safety
    /// `self.isa` must have been detected on this CPU; the sizes must be as `image` computes
    /// them (the kernel asserts them).
    unsafe fn blocks(&self, xp: &[f32], plane: usize, positions: usize, tmp: &mut [f32]) {
        // A match on `isa` alone: where it has no variants (not x86) this is an empty match.
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if self.k == 1 => x86::avx512_1(self, xp, plane, positions, tmp),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::avx512_3(self, xp, plane, positions, tmp),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 if self.k == 1 => x86::avx2_1(self, xp, plane, positions, tmp),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::avx2_3(self, xp, plane, positions, tmp),
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::DirectConv;
    use std::arch::x86_64::*;

    /// One vector width's load, broadcast, fused multiply-add and store.
    trait Lanes {
        type V: Copy;
        const L: usize;
        unsafe fn splat(v: f32) -> Self::V;
        unsafe fn load(p: *const f32) -> Self::V;
        unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
        unsafe fn store(p: *mut f32, v: Self::V);
    }

    /// A [`Lanes`] over one vector type and its four intrinsics.
    macro_rules! lanes {
        ($(#[$doc:meta])* $name:ident, $v:ty, $l:literal, $splat:ident, $load:ident, $fma:ident, $store:ident) => {
            $(#[$doc])*
            struct $name;
            impl Lanes for $name {
                type V = $v;
                const L: usize = $l;
                #[inline(always)]
                unsafe fn splat(v: f32) -> $v {
                    $splat(v)
                }
                #[inline(always)]
                unsafe fn load(p: *const f32) -> $v {
                    $load(p)
                }
                #[inline(always)]
                unsafe fn fma(a: $v, b: $v, c: $v) -> $v {
                    $fma(a, b, c)
                }
                #[inline(always)]
                unsafe fn store(p: *mut f32, v: $v) {
                    $store(p, v)
                }
            }
        };
    }
    lanes!(
        /// AVX-512: 16 lanes.
        Z, __m512, 16, _mm512_set1_ps, _mm512_loadu_ps, _mm512_fmadd_ps, _mm512_storeu_ps
    );
    lanes!(
        /// AVX2 + FMA: 8 lanes.
        Y, __m256, 8, _mm256_set1_ps, _mm256_loadu_ps, _mm256_fmadd_ps, _mm256_storeu_ps
    );

    /// One `target_feature` entry point per instruction set and kernel size: [`blocks`] with
    /// `$lanes` vectors, `$mb` output channels × 3 vectors per register block, `$taps` taps.
    macro_rules! entry {
        ($(#[$doc:meta])* $name:ident, $feature:literal, $lanes:ty, $mb:literal, $taps:literal) => {
            $(#[$doc])*
            #[target_feature(enable = $feature)]
            pub(super) unsafe fn $name(
                op: &DirectConv,
                xp: &[f32],
                plane: usize,
                positions: usize,
                tmp: &mut [f32],
            ) {
                blocks::<$lanes, $mb, 3, $taps>(op, xp, plane, positions, tmp)
            }
        };
    }
    entry!(
        /// 16 lanes, 8 channels × 3 vectors, one tap (1×1).
        avx512_1, "avx512f", Z, 8, 1
    );
    entry!(
        /// 16 lanes, 8 channels × 3 vectors, nine taps (3×3).
        avx512_3, "avx512f", Z, 8, 9
    );
    entry!(
        /// 8 lanes, 4 channels × 3 vectors, one tap (1×1).
        avx2_1, "avx2,fma", Y, 4, 1
    );
    entry!(
        /// 8 lanes, 4 channels × 3 vectors, nine taps (3×3).
        avx2_3, "avx2,fma", Y, 4, 9
    );

    /// [`depthwise`] with 16-lane vectors, 4 at a time.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn depthwise_avx512(
        w: &[f32; 9],
        b: f32,
        wp: usize,
        xp: &[f32],
        positions: usize,
        tmp: &mut [f32],
    ) {
        depthwise::<Z, 4>(w, b, wp, xp, positions, tmp)
    }

    /// [`depthwise`] with 8-lane vectors, 4 at a time.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn depthwise_avx2(
        w: &[f32; 9],
        b: f32,
        wp: usize,
        xp: &[f32],
        positions: usize,
        tmp: &mut [f32],
    ) {
        depthwise::<Y, 4>(w, b, wp, xp, positions, tmp)
    }

    /// One channel's plane of `positions` outputs (a multiple of `L`), `NB` vectors at a time:
    /// the bias `b` plus the nine taps `w` (held in registers) over the zero-padded plane `xp`
    /// of row width `wp` (as in [`blocks`]; `xp` holds at least `positions + 2·wp + 2` values).
    #[inline(always)]
    unsafe fn depthwise<S: Lanes, const NB: usize>(
        w: &[f32; 9],
        b: f32,
        wp: usize,
        xp: &[f32],
        positions: usize,
        tmp: &mut [f32],
    ) {
        let offs: [usize; 9] = std::array::from_fn(|t| (t / 3) * wp + t % 3);
        let w: [S::V; 9] = std::array::from_fn(|t| S::splat(w[t]));
        let b = S::splat(b);
        let (x, o) = (xp.as_ptr(), tmp.as_mut_ptr());
        let mut p0 = 0;
        while p0 + NB * S::L <= positions {
            let mut acc = [b; NB];
            for (t, &off) in offs.iter().enumerate() {
                for (v, a) in acc.iter_mut().enumerate() {
                    *a = S::fma(w[t], S::load(x.add(p0 + off + v * S::L)), *a);
                }
            }
            for (v, &a) in acc.iter().enumerate() {
                S::store(o.add(p0 + v * S::L), a);
            }
            p0 += NB * S::L;
        }
        while p0 < positions {
            let mut a = b;
            for (t, &off) in offs.iter().enumerate() {
                a = S::fma(w[t], S::load(x.add(p0 + off)), a);
            }
            S::store(o.add(p0), a);
            p0 += S::L;
        }
    }

    /// Every register block of the output: `MB` output channels × `NB` vectors of positions,
    /// accumulated over all input channels and `T` taps (1, or 9 for 3×3). `xp`: `ci` planes of
    /// `plane` values (for 3×3 zero-padded: the image at rows 1..=h, columns 1..=w of width
    /// `w + 2`, zero elsewhere, `plane ≥ positions + 2·(w + 2) + 2`); `tmp`: `co` rows of
    /// `positions` (a multiple of `NB·L`).
    #[inline(always)]
    unsafe fn blocks<S: Lanes, const MB: usize, const NB: usize, const T: usize>(
        op: &DirectConv,
        xp: &[f32],
        plane: usize,
        positions: usize,
        tmp: &mut [f32],
    ) {
        let [ci, co] = op.channels;
        let k = if T == 9 { 3 } else { 1 };
        let wp = op.hw[1] + k - 1;
        let span = NB * S::L;
        assert!(op.k == k && positions.is_multiple_of(span) && plane >= positions + (k - 1) * (wp + 1));
        assert!(xp.len() >= ci * plane && tmp.len() >= co * positions && co.is_multiple_of(MB));
        assert!(op.packed.len() == co * ci * T && op.bias.len() == co);
        let offs: [usize; T] = std::array::from_fn(|t| (t / k) * wp + t % k);
        for m in 0..co / MB {
            let w = op.packed.as_ptr().add(m * ci * T * MB);
            let bias = &op.bias[m * MB..][..MB];
            for p0 in (0..positions).step_by(span) {
                let mut acc = [[S::splat(0.0); NB]; MB];
                for (j, row) in acc.iter_mut().enumerate() {
                    *row = [S::splat(bias[j]); NB];
                }
                for c in 0..ci {
                    let x = xp.as_ptr().add(c * plane + p0);
                    let wc = w.add(c * T * MB);
                    for (t, &off) in offs.iter().enumerate() {
                        let mut v = [S::splat(0.0); NB];
                        for (k, v) in v.iter_mut().enumerate() {
                            *v = S::load(x.add(off + k * S::L));
                        }
                        for (j, row) in acc.iter_mut().enumerate() {
                            let wv = S::splat(*wc.add(t * MB + j));
                            for (a, &v) in row.iter_mut().zip(&v) {
                                *a = S::fma(wv, v, *a);
                            }
                        }
                    }
                }
                let out = tmp.as_mut_ptr().add(m * MB * positions + p0);
                for (j, row) in acc.iter().enumerate() {
                    for (k, &a) in row.iter().enumerate() {
                        S::store(out.add(j * positions + k * S::L), a);
                    }
                }
            }
        }
    }
}

/// Runs `kernel` on (C, H, W) image `x` laid out as `kernel` needs it, into `out` (Co, H, W):
/// each channel a plane of `positions` output values (`H·(W + 2·pad)` rounded up to a whole
/// `span`), in which output (y, x) is at `y·(W + 2·pad) + x` and reads input (y + ky − pad,
/// x + kx − pad) at that index plus `ky·(W + 2·pad) + kx` of the zero-padded input plane (`plane`
/// values). `kernel(xp, plane, positions, tmp)` writes `tmp` (Co × `positions`); the padding
/// columns are then dropped. Unpadded layers whose planes are whole spans use `x` and `out`
/// themselves.
fn padded(
    x: &[f32],
    [ci, co]: [usize; 2],
    [h, w]: [usize; 2],
    pad: usize,
    span: usize,
    out: &mut [f32],
    kernel: impl FnOnce(&[f32], usize, usize, &mut [f32]),
) {
    let wp = w + 2 * pad;
    let positions = (h * wp).div_ceil(span) * span;
    if pad == 0 && positions == h * w {
        return kernel(x, positions, positions, out);
    }
    // The last block's farthest tap reads `positions - 1 + 2·pad·(wp + 1)`.
    let plane = positions + 2 * pad * (wp + 1);
    SCRATCH.with_borrow_mut(|(xp, tmp)| {
        xp.clear();
        xp.resize(ci * plane, 0.0);
        for (src, dst) in x.chunks_exact(h * w).zip(xp.chunks_exact_mut(plane)) {
            for (row, d) in src.chunks_exact(w).zip(dst[pad * (wp + 1)..].chunks_mut(wp)) {
                d[..w].copy_from_slice(row);
            }
        }
        tmp.resize(co * positions, 0.0);
        kernel(xp, plane, positions, tmp);
        for (src, dst) in tmp.chunks_exact(positions).zip(out.chunks_exact_mut(h * w)) {
            for (s, d) in src.chunks(wp).zip(dst.chunks_exact_mut(w)) {
                d.copy_from_slice(&s[..w]);
            }
        }
    });
}

/// A depthwise 3×3 convolution (one group per channel, one output per channel), stride 1, zero
/// padding 1, NCHW in and out: per output value the bias plus the nine taps in (ky, kx) order,
/// fused multiply-adds, over the flattened padded plane as [`DirectConv`] does.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Depthwise3x3 {
    isa: Isa,
    /// Channels (in = out).
    channels: usize,
    /// Height and width.
    hw: [usize; 2],
    /// Nine weights per channel, (ky, kx) order.
    weights: Vec<f32>,
    /// One bias per channel.
    bias: Vec<f32>,
}

// Equality is for tract's graph rewrites (equal weights are interchangeable).
impl Eq for Depthwise3x3 {}

impl std::hash::Hash for Depthwise3x3 {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.isa, self.channels, self.hw).hash(state);
        self.weights.iter().chain(&self.bias).for_each(|w| w.to_bits().hash(state));
    }
}

impl Depthwise3x3 {
    /// Convolves one (C, H, W) image into one (C, H, W) output, a channel at a time (its
    /// padded plane and output rows stay in the first-level cache).
    fn image(&self, x: &[f32], out: &mut [f32]) {
        let [h, w] = self.hw;
        let planes = x.chunks_exact(h * w).zip(out.chunks_exact_mut(h * w));
        for ((x, out), (weights, &bias)) in planes.zip(self.weights.chunks_exact(9).zip(&self.bias)) {
            let weights: &[f32; 9] = weights.try_into().expect("nine taps");
            padded(x, [1, 1], self.hw, 1, self.isa.span(), out, |xp, plane, positions, tmp| {
                assert!(xp.len() >= plane && tmp.len() >= positions && plane >= positions + 2 * (w + 3));
                // SAFETY: the instruction set was detected; the sizes are asserted above.
                unsafe {
                    match self.isa {
                        #[cfg(target_arch = "x86_64")]
                        Isa::Avx512 => x86::depthwise_avx512(weights, bias, w + 2, xp, positions, tmp),
                        #[cfg(target_arch = "x86_64")]
                        Isa::Avx2 => x86::depthwise_avx2(weights, bias, w + 2, xp, positions, tmp),
                    }
                }
            })
        }
    }
}

impl Op for Depthwise3x3 {
    fn name(&self) -> StaticName {
        "Depthwise3x3".into()
    }

    tract_onnx::tract_core::op_as_typed_op!();
}

impl EvalOp for Depthwise3x3 {
    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        eval_images(&inputs[0], "Depthwise3x3", [self.channels; 2], self.hw, |x, o| self.image(x, o))
    }

    tract_onnx::tract_core::op_out_of_plan!();
}

impl TypedOp for Depthwise3x3 {
    tract_onnx::tract_core::as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        output_fact(inputs, self.channels, self.hw)
    }
}

/// The (N, Co, H, W) output of `image` applied to each (C, H, W) image of `input`.
fn eval_images(
    input: &TValue,
    name: &str,
    [ci, co]: [usize; 2],
    [h, w]: [usize; 2],
    image: impl Fn(&[f32], &mut [f32]),
) -> TractResult<TVec<TValue>> {
    let s = input.shape().to_vec();
    if s.len() != 4 || s[1..] != [ci, h, w] {
        bail!("{name}: input shape {s:?}, wanted (N, {ci}, {h}, {w})");
    }
    let mut out = Tensor::zero::<f32>(&[s[0], co, h, w])?;
    {
        let src = input.try_as_plain_ram()?;
        let mut dst = out.try_as_plain_ram_mut()?;
        let (src, dst) = (src.as_slice::<f32>()?, dst.as_slice_mut::<f32>()?);
        for (x, o) in src.chunks_exact(ci * h * w).zip(dst.chunks_exact_mut(co * h * w)) {
            image(x, o);
        }
    }
    Ok(tvec![out.into_tvalue()])
}

/// The output fact (N, `co`, H, W) for input facts `inputs`.
fn output_fact(inputs: &[&TypedFact], co: usize, [h, w]: [usize; 2]) -> TractResult<TVec<TypedFact>> {
    let n = inputs[0].shape[0].clone();
    Ok(tvec!(f32::fact([n, co.to_dim(), h.to_dim(), w.to_dim()])))
}

impl Op for DirectConv {
    fn name(&self) -> StaticName {
        "DirectConv".into()
    }

    tract_onnx::tract_core::op_as_typed_op!();
}

impl EvalOp for DirectConv {
    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        eval_images(&inputs[0], "DirectConv", self.channels, self.hw, |x, o| self.image(x, o))
    }

    tract_onnx::tract_core::op_out_of_plan!();
}

impl TypedOp for DirectConv {
    tract_onnx::tract_core::as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        output_fact(inputs, self.channels[1], self.hw)
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// The instruction sets this CPU can run.
    fn isas() -> Vec<Isa> {
        let mut v = Vec::new();
        if std::is_x86_feature_detected!("avx512f") {
            v.push(Isa::Avx512);
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            v.push(Isa::Avx2);
        }
        v
    }

    /// A (C, H, W) image of small integers (sums of their products are exact in f32).
    fn image(c: usize, h: usize, w: usize, seed: usize) -> Vec<f32> {
        (0..c * h * w).map(|i| ((i * 7 + seed * 13) % 11) as f32 - 5.0).collect()
    }

    /// The textbook convolution, `groups` = 1 or C, stride 1, zero padding k/2.
    fn textbook(
        x: &[f32],
        [ci, co]: [usize; 2],
        [h, w]: [usize; 2],
        k: usize,
        dw: bool,
        wt: &[f32],
        b: &[f32],
    ) -> Vec<f32> {
        let pad = (k / 2) as isize;
        let mut out = vec![0f32; co * h * w];
        for o in 0..co {
            for y in 0..h {
                for xx in 0..w {
                    let mut acc = b[o];
                    let inputs: Vec<usize> = if dw { vec![o] } else { (0..ci).collect() };
                    for (j, &c) in inputs.iter().enumerate() {
                        for ky in 0..k {
                            for kx in 0..k {
                                let (iy, ix) =
                                    (y as isize + ky as isize - pad, xx as isize + kx as isize - pad);
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let per = if dw { 1 } else { ci };
                                acc += wt[((o * per + j) * k + ky) * k + kx]
                                    * x[(c * h + iy as usize) * w + ix as usize];
                            }
                        }
                    }
                    out[(o * h + y) * w + xx] = acc;
                }
            }
        }
        out
    }

    #[test]
    fn every_kernel_is_the_textbook_convolution() {
        // Integer data: every partial sum is exact, so any summation order gives the same bits.
        for isa in isas() {
            for (k, ci, co, h, w) in
                [(3, 3, 8, 5, 7), (3, 16, 16, 6, 6), (3, 5, 24, 12, 12), (1, 7, 8, 3, 3), (1, 16, 32, 4, 12)]
            {
                let x = image(ci, h, w, 1);
                let wt = image(co * ci * k * k, 1, 1, 2);
                let b: Vec<f32> = (0..co).map(|o| o as f32 - 3.0).collect();
                let op = DirectConv::new(isa, k, [ci, co], [h, w], &wt, b.clone());
                let mut out = vec![f32::NAN; co * h * w];
                op.image(&x, &mut out);
                assert_eq!(
                    out,
                    textbook(&x, [ci, co], [h, w], k, false, &wt, &b),
                    "{isa:?} k{k} {ci}->{co} {h}x{w}"
                );
            }
            for (c, h, w) in [(1, 1, 1), (3, 5, 7), (16, 96, 96), (4, 3, 40)] {
                let x = image(c, h, w, 3);
                let wt = image(c * 9, 1, 1, 4);
                let b: Vec<f32> = (0..c).map(|o| 2.0 - o as f32).collect();
                let op = Depthwise3x3 { isa, channels: c, hw: [h, w], weights: wt.clone(), bias: b.clone() };
                let mut out = vec![f32::NAN; c * h * w];
                op.image(&x, &mut out);
                assert_eq!(
                    out,
                    textbook(&x, [c, c], [h, w], 3, true, &wt, &b),
                    "{isa:?} depthwise {c} {h}x{w}"
                );
            }
        }
    }
}
