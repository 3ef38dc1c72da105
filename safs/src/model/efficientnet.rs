//! EfficientNet-B0 as the SAFS reference builds it: the compact small-input variant
//! (kuangliu/pytorch-cifar's first EfficientNet), for ImageNet-16 (16x16) or any size.
//!
//! Stem: conv3x3 3->32 (stride 1, padding 1, no bias) + BatchNorm + slot. Then 16 MBConv
//! blocks from [`EFFICIENTNET_B0_CFG`], global average pooling and `Linear(320 -> classes)`
//! (no 1280-channel head). Every block is
//!
//! ```text
//! out = slot(bn1(conv1x1_expand(x)))          always, also at expansion 1
//! out = slot(bn2(depthwise3x3_stride_s(out)))
//! out = bn3(conv1x1_project(out))
//! se  = sigmoid(fc2(slot(fc1(avgpool(out)))))  fc1: out -> out/16 (floor, min 1), both with bias
//! y   = out * se + shortcut
//! ```
//!
//! where the shortcut is `x` (stride 1, equal widths), `bn(conv1x1(x))` (stride 1, widths
//! differ) or `out` itself (stride 2). With these choices the model has 2,912,089 parameters
//! for 10 classes and 3,229,879 for 1000, the reference's counts; dropping the expand conv at
//! expansion 1 or the SE biases gives other totals (see the tests). 49 slots; swish by default.
//! Parameter names follow that PyTorch model (`conv1`, `bn1`, `layers.{i}.conv1`, ...,
//! `layers.{i}.shortcut.0`, `layers.{i}.fc1`, `linear`).

use candle_core::{Device, Tensor, Var};
use candle_nn::Module;

use super::{global_avg_pool, BatchNorm2d, Conv2d, Init, Linear, Network, Param, Scale};
use crate::activation::{Activation, Op};
use crate::infer::{Fuse, GraphBuilder, Value};
use crate::Result;

/// The block groups: (expansion, output channels, repeats, stride of the group's first block).
pub const EFFICIENTNET_B0_CFG: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 2),
    (6, 24, 2, 1),
    (6, 40, 2, 2),
    (6, 80, 3, 2),
    (6, 112, 3, 1),
    (6, 192, 4, 2),
    (6, 320, 1, 2),
];

/// Squeeze-and-excitation: global average pool, 1x1 conv to `c/16`, slot, 1x1 conv back, sigmoid.
#[derive(Clone, Debug)]
pub(crate) struct SqueezeExcite {
    fc1: Conv2d,
    fc2: Conv2d,
}

impl SqueezeExcite {
    /// SE on `channels` channels with `max(1, channels / 16)` hidden channels.
    pub(crate) fn new(init: &mut Init, prefix: &str, channels: usize) -> Result<Self> {
        let hidden = (channels / 16).max(1);
        Ok(Self {
            fc1: Conv2d::new(
                init,
                &format!("{prefix}.fc1"),
                channels,
                hidden,
                1,
                1,
                0,
                1,
                true,
            )?,
            fc2: Conv2d::new(
                init,
                &format!("{prefix}.fc2"),
                hidden,
                channels,
                1,
                1,
                0,
                1,
                true,
            )?,
        })
    }

    /// The (N, C, 1, 1) channel weights in (0, 1) for `x`.
    pub(crate) fn weights(&self, x: &Tensor, act: &Activation) -> Result<Tensor> {
        let (n, c, _, _) = x.dims4()?;
        let w = global_avg_pool(x)?.reshape((n, c, 1, 1))?;
        let w = act.forward(&self.fc1.forward(&w)?)?;
        Ok(Op::Sigmoid.apply(&self.fc2.forward(&w)?)?)
    }

    fn params(&self) -> Vec<Param> {
        [self.fc1.params(), self.fc2.params()].concat()
    }
}

/// What a block adds to its SE-weighted output.
#[derive(Clone, Debug)]
pub(crate) enum Shortcut {
    /// The input itself (stride 1, equal widths).
    Identity,
    /// 1x1 conv (no bias) + BN of the input (stride 1, widths differ).
    Projection(Conv2d, BatchNorm2d),
    /// The block's own output before SE (stride 2), as the reference does.
    Out,
}

/// One MBConv block (expand, depthwise, project, SE, shortcut); three slots.
#[derive(Clone, Debug)]
pub(crate) struct MbConv {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    conv3: Conv2d,
    bn3: BatchNorm2d,
    shortcut: Shortcut,
    se: SqueezeExcite,
}

impl MbConv {
    /// Number of activation slots a block uses.
    pub(crate) const SLOTS: usize = 3;

    /// A block `cin -> cout` with `expansion * cin` inner channels and the depthwise conv at
    /// `stride`; parameters `{prefix}.*`.
    pub(crate) fn new(
        init: &mut Init,
        prefix: &str,
        cin: usize,
        cout: usize,
        expansion: usize,
        stride: usize,
    ) -> Result<Self> {
        let planes = expansion * cin;
        let p = |s: &str| format!("{prefix}.{s}");
        let conv1 = Conv2d::new(init, &p("conv1"), cin, planes, 1, 1, 0, 1, false)?;
        let bn1 = BatchNorm2d::new(init, &p("bn1"), planes)?;
        let conv2 = Conv2d::new(
            init,
            &p("conv2"),
            planes,
            planes,
            3,
            stride,
            1,
            planes,
            false,
        )?;
        let bn2 = BatchNorm2d::new(init, &p("bn2"), planes)?;
        let conv3 = Conv2d::new(init, &p("conv3"), planes, cout, 1, 1, 0, 1, false)?;
        let bn3 = BatchNorm2d::new(init, &p("bn3"), cout)?;
        let shortcut = if stride != 1 {
            Shortcut::Out
        } else if cin != cout {
            Shortcut::Projection(
                Conv2d::new(init, &p("shortcut.0"), cin, cout, 1, 1, 0, 1, false)?,
                BatchNorm2d::new(init, &p("shortcut.1"), cout)?,
            )
        } else {
            Shortcut::Identity
        };
        let se = SqueezeExcite::new(init, prefix, cout)?;
        Ok(Self {
            conv1,
            bn1,
            conv2,
            bn2,
            conv3,
            bn3,
            shortcut,
            se,
        })
    }

    /// The block's output; `acts` are its three slots (expand, depthwise, SE).
    pub(crate) fn forward(&self, x: &Tensor, train: bool, acts: &[Activation]) -> Result<Tensor> {
        let out = self
            .bn1
            .forward_act(&self.conv1.forward(x)?, train, &acts[0])?;
        let out = self
            .bn2
            .forward_act(&self.conv2.forward(&out)?, train, &acts[1])?;
        let out = self.bn3.forward_t(&self.conv3.forward(&out)?, train)?;
        let short = match &self.shortcut {
            Shortcut::Identity => x.clone(),
            Shortcut::Projection(conv, bn) => bn.forward_t(&conv.forward(x)?, train)?,
            Shortcut::Out => out.clone(),
        };
        let w = self.se.weights(&out, &acts[2])?;
        Ok(out.broadcast_mul(&w)?.add(&short)?)
    }

    /// The block in the inference graph; the gate and the shortcut run in one pass.
    pub(crate) fn build_inference(
        &self,
        g: &mut GraphBuilder,
        x: Value,
        acts: &[Activation],
    ) -> Result<Value> {
        let act = |a| Fuse {
            act: Some(a),
            ..Fuse::default()
        };
        let h = g.conv(x, &self.conv1, Some(&self.bn1), act(&acts[0]))?;
        let h = g.conv(h, &self.conv2, Some(&self.bn2), act(&acts[1]))?;
        let out = g.conv(h, &self.conv3, Some(&self.bn3), Fuse::default())?;
        let short = match &self.shortcut {
            Shortcut::Identity => x,
            Shortcut::Projection(conv, bn) => g.conv(x, conv, Some(bn), Fuse::default())?,
            Shortcut::Out => out,
        };
        g.squeeze_excite(out, &self.se.fc1, &self.se.fc2, &acts[2], Some(short))
    }

    pub(crate) fn params(&self) -> Vec<Param> {
        let mut out = [
            self.conv1.params(),
            self.bn1.params(),
            self.conv2.params(),
            self.bn2.params(),
            self.conv3.params(),
            self.bn3.params(),
        ]
        .concat();
        if let Shortcut::Projection(conv, bn) = &self.shortcut {
            out.extend(conv.params());
            out.extend(bn.params());
        }
        out.extend(self.se.params());
        out
    }

    pub(crate) fn buffers(&self) -> Vec<(String, Var)> {
        let mut out = [self.bn1.buffers(), self.bn2.buffers(), self.bn3.buffers()].concat();
        if let Shortcut::Projection(_, bn) = &self.shortcut {
            out.extend(bn.buffers());
        }
        out
    }
}

/// EfficientNet-B0 (reference small-input variant) with swish in every slot by default.
pub struct EfficientNetB0 {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    blocks: Vec<MbConv>,
    linear: Linear,
    acts: Vec<Activation>,
}

impl EfficientNetB0 {
    /// The model with PyTorch-default initial weights drawn from `seed`, swish in every slot.
    pub fn new(num_classes: usize, scale: Scale, seed: u64, device: &Device) -> Result<Self> {
        Self::from_init(&mut Init::new(seed, device), num_classes, scale)
    }

    /// The model with parameters drawn from `init` (whose dtype it takes); `scale.depth`
    /// scales every group's repeats.
    pub fn from_init(init: &mut Init, num_classes: usize, scale: Scale) -> Result<Self> {
        scale.check()?;
        let stem = scale.channels(32);
        let conv1 = Conv2d::new(init, "conv1", 3, stem, 3, 1, 1, 1, false)?;
        let bn1 = BatchNorm2d::new(init, "bn1", stem)?;
        let mut blocks = Vec::new();
        let mut cin = stem;
        for (expansion, out, repeats, stride) in EFFICIENTNET_B0_CFG {
            let cout = scale.channels(out);
            for r in 0..scale.repeats(repeats) {
                let s = if r == 0 { stride } else { 1 };
                let prefix = format!("layers.{}", blocks.len());
                blocks.push(MbConv::new(init, &prefix, cin, cout, expansion, s)?);
                cin = cout;
            }
        }
        let slots = 1 + MbConv::SLOTS * blocks.len();
        let acts = (0..slots)
            .map(|_| Activation::new(Op::Swish, init.device(), init.dtype()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            conv1,
            bn1,
            blocks,
            linear: Linear::new(init, "linear", cin, num_classes)?,
            acts,
        })
    }
}

impl Network for EfficientNetB0 {
    fn name(&self) -> &str {
        "efficientnet_b0"
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = self
            .bn1
            .forward_act(&self.conv1.forward(x)?, train, &self.acts[0])?;
        for (i, block) in self.blocks.iter().enumerate() {
            let s = 1 + MbConv::SLOTS * i;
            x = block.forward(&x, train, &self.acts[s..s + MbConv::SLOTS])?;
        }
        self.linear.forward(&global_avg_pool(&x)?)
    }

    fn build_inference(&self, g: &mut GraphBuilder, x: Value) -> Result<Value> {
        let stem = Fuse {
            act: Some(&self.acts[0]),
            ..Fuse::default()
        };
        let mut x = g.conv(x, &self.conv1, Some(&self.bn1), stem)?;
        for (i, block) in self.blocks.iter().enumerate() {
            let s = 1 + MbConv::SLOTS * i;
            x = block.build_inference(g, x, &self.acts[s..s + MbConv::SLOTS])?;
        }
        let x = g.global_avg_pool(x)?;
        g.linear(x, &self.linear, None)
    }

    fn activations(&self) -> &[Activation] {
        &self.acts
    }

    fn activations_mut(&mut self) -> &mut [Activation] {
        &mut self.acts
    }

    fn parameters(&self) -> Vec<Param> {
        let mut out = [self.conv1.params(), self.bn1.params()].concat();
        out.extend(self.blocks.iter().flat_map(MbConv::params));
        out.extend(self.linear.params());
        out
    }

    fn buffers(&self) -> Vec<(String, Var)> {
        let mut out = self.bn1.buffers();
        out.extend(self.blocks.iter().flat_map(MbConv::buffers));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testutil::{check_full_model, check_grad, param_table, pseudo_random};
    use candle_core::DType;

    /// An independent count of the reference architecture under each reading of its
    /// ambiguous points: expand conv at expansion 1, SE conv biases.
    fn formula_count(classes: usize, expand_at_1: bool, se_bias: bool) -> usize {
        let mut p = 9 * 3 * 32 + 2 * 32;
        let mut cin = 32;
        for (e, out, n, s) in EFFICIENTNET_B0_CFG {
            for i in 0..n {
                let stride = if i == 0 { s } else { 1 };
                let planes = e * cin;
                if e != 1 || expand_at_1 {
                    p += cin * planes + 2 * planes;
                }
                p += 9 * planes + 2 * planes; // depthwise + BN
                p += planes * out + 2 * out; // project + BN
                if stride == 1 && cin != out {
                    p += cin * out + 2 * out;
                }
                let se = (out / 16).max(1);
                p += 2 * out * se + if se_bias { se + out } else { 0 };
                cin = out;
            }
        }
        p + 320 * classes + classes
    }

    #[test]
    fn parameter_counts_match_the_reference() -> Result<()> {
        // Only "expand conv always, SE convs with bias" gives the reference's counts.
        assert_eq!(formula_count(10, true, true), 2_912_089);
        assert_eq!(formula_count(1000, true, true), 3_229_879);
        assert_eq!(formula_count(10, false, true), 2_911_001);
        assert_eq!(formula_count(10, true, false), 2_910_170);
        // 1000 - 10 classes differ by 990 * (320 + 1) = 317,790 = 3,229,879 - 2,912,089.
        assert_eq!(990 * 321, 3_229_879 - 2_912_089);
        let dev = Device::Cpu;
        let m10 = EfficientNetB0::new(10, Scale::FULL, 0, &dev)?;
        assert_eq!(m10.num_parameters(), 2_912_089, "{:?}", param_table(&m10));
        assert_eq!(m10.num_slots(), 49);
        assert_eq!(m10.blocks.len(), 16);
        let m1000 = EfficientNetB0::new(1000, Scale::FULL, 0, &dev)?;
        assert_eq!(m1000.num_parameters(), 3_229_879);
        assert!(m10.plan().ops().iter().all(|op| *op == Op::Swish));
        // Prunable: stem + 16 * (expand, depthwise, project, fc1, fc2) + 2 projection
        // shortcuts (blocks 1 and 8, the stride-1 groups' width changes) + linear.
        let prunable: Vec<String> = m10.prunable().into_iter().map(|p| p.name).collect();
        assert_eq!(prunable.len(), 1 + 16 * 5 + 2 + 1, "{prunable:?}");
        assert!(prunable.contains(&"layers.1.shortcut.0.weight".to_string()));
        assert!(prunable.contains(&"layers.0.fc1.weight".to_string()));
        assert!(!prunable
            .iter()
            .any(|n| n.ends_with(".bias") || n.contains("bn")));
        let shortcuts: Vec<usize> = m10
            .blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| matches!(b.shortcut, Shortcut::Projection(..)))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(shortcuts, [1, 8]);
        let outs = m10
            .blocks
            .iter()
            .filter(|b| matches!(b.shortcut, Shortcut::Out))
            .count();
        assert_eq!(outs, 5); // the first block of each stride-2 group
                             // Depth 0.5: repeats 1,1,1,2,2,2,1 = 10 blocks.
        let shallow = EfficientNetB0::new(
            10,
            Scale {
                width: 0.25,
                depth: 0.5,
            },
            0,
            &dev,
        )?;
        assert_eq!(shallow.num_slots(), 1 + 3 * 10);
        Ok(())
    }

    fn slots(dev: &Device) -> Result<Vec<Activation>> {
        [Op::Swish, Op::Gelu, Op::Tanh]
            .into_iter()
            .map(|op| Activation::new(op, dev, DType::F64))
            .collect()
    }

    /// Builds a block in f64, checks its output against its parts and its gradients.
    fn block_check(
        cin: usize,
        cout: usize,
        expansion: usize,
        stride: usize,
        hw: usize,
    ) -> Result<()> {
        let dev = Device::Cpu;
        let mut init = Init::with_dtype(5, &dev, DType::F64);
        let block = MbConv::new(&mut init, "blk", cin, cout, expansion, stride)?;
        let acts = slots(&dev)?;
        let x = Var::from_tensor(&pseudo_random(&[2, cin, hw, hw], 6)?)?;
        let out_hw = (hw - 1) / stride + 1;
        let y = block.forward(x.as_tensor(), true, &acts)?;
        assert_eq!(y.dims(), &[2, cout, out_hw, out_hw]);

        // y == out * se(out) + shortcut, with the parts computed here (eval mode: pure).
        let xt = x.as_tensor();
        let out = acts[0].forward(&block.bn1.forward_t(&block.conv1.forward(xt)?, false)?)?;
        let out = acts[1].forward(&block.bn2.forward_t(&block.conv2.forward(&out)?, false)?)?;
        let out = block.bn3.forward_t(&block.conv3.forward(&out)?, false)?;
        let w = block.se.weights(&out, &acts[2])?;
        let short = match (&block.shortcut, stride, cin == cout) {
            (Shortcut::Identity, 1, true) => xt.clone(),
            (Shortcut::Projection(c, b), 1, false) => b.forward_t(&c.forward(xt)?, false)?,
            (Shortcut::Out, 2, _) => out.clone(),
            _ => panic!("wrong shortcut for stride {stride}, {cin} -> {cout}"),
        };
        let want = out.broadcast_mul(&w)?.add(&short)?;
        let got = block.forward(xt, false, &acts)?;
        let d: f64 = got.sub(&want)?.abs()?.max_all()?.to_scalar()?;
        assert!(d < 1e-12, "block output mismatch {d}");

        let r = pseudo_random(&[2, cout, out_hw, out_hw], 7)?;
        let loss = || -> Result<Tensor> {
            Ok(block
                .forward(x.as_tensor(), true, &acts)?
                .mul(&r)?
                .sum_all()?)
        };
        check_grad("mbconv x", &loss, &x, 40)?;
        check_grad("mbconv expand", &loss, &block.conv1.params()[0].var, 12)?;
        check_grad("mbconv depthwise", &loss, &block.conv2.params()[0].var, 12)?;
        check_grad("mbconv se.fc1", &loss, &block.se.fc1.params()[0].var, 8)?;
        if let Shortcut::Projection(conv, _) = &block.shortcut {
            check_grad("mbconv shortcut", &loss, &conv.params()[0].var, 8)?;
        }
        Ok(())
    }

    #[test]
    fn mbconv_identity_shortcut() -> Result<()> {
        block_check(3, 3, 2, 1, 4)
    }

    #[test]
    fn mbconv_projection_shortcut() -> Result<()> {
        block_check(2, 3, 2, 1, 4)
    }

    #[test]
    fn mbconv_stride2_out_shortcut() -> Result<()> {
        block_check(2, 3, 1, 2, 4)?;
        block_check(2, 3, 2, 2, 5)
    }

    #[test]
    fn squeeze_excite_shapes_and_gradients() -> Result<()> {
        let dev = Device::Cpu;
        let mut init = Init::with_dtype(8, &dev, DType::F64);
        let se = SqueezeExcite::new(&mut init, "se", 40)?;
        assert_eq!(se.fc1.params()[0].var.dims(), &[2, 40, 1, 1]); // 40 / 16 = 2
        assert_eq!(
            SqueezeExcite::new(&mut init, "s", 8)?.fc1.params()[0]
                .var
                .dims()[0],
            1
        );
        let act = Activation::new(Op::Swish, &dev, DType::F64)?;
        let x = Var::from_tensor(&pseudo_random(&[2, 40, 3, 3], 9)?)?;
        let w = se.weights(x.as_tensor(), &act)?;
        assert_eq!(w.dims(), &[2, 40, 1, 1]);
        let vals: Vec<f64> = w.flatten_all()?.to_vec1()?;
        assert!(vals.iter().all(|v| *v > 0.0 && *v < 1.0));
        let r = pseudo_random(&[2, 40, 1, 1], 10)?;
        let loss =
            || -> Result<Tensor> { Ok(se.weights(x.as_tensor(), &act)?.mul(&r)?.sum_all()?) };
        check_grad("se x", &loss, &x, 30)?;
        check_grad("se fc1.weight", &loss, &se.fc1.params()[0].var, 20)?;
        check_grad("se fc2.bias", &loss, &se.fc2.params()[1].var, 20)?;
        Ok(())
    }

    #[test]
    fn full_model_at_quarter_width_any_input_size() -> Result<()> {
        let build = |seed: u64| -> Result<Box<dyn Network>> {
            Ok(Box::new(EfficientNetB0::new(
                10,
                Scale::width(0.25),
                seed,
                &Device::Cpu,
            )?))
        };
        check_full_model(&build, &[2, 3, 16, 16], 10)?;
        let m = build(0)?;
        let x = pseudo_random(&[2, 3, 32, 32], 1)?.to_dtype(DType::F32)?;
        assert_eq!(m.forward_t(&x, true)?.dims(), &[2, 10]);
        Ok(())
    }
}
