//! ResNet-18 for 32x32 images (the CIFAR variant, kuangliu/pytorch-cifar style).
//!
//! Stem: conv3x3 3->64 (stride 1, padding 1, no bias) + BatchNorm + slot, no pooling. Four
//! stages of two BasicBlocks (widths 64, 128, 256, 512; strides 1, 2, 2, 2), global average
//! pooling and `Linear(512 -> classes)`: 11,173,962 parameters for 10 classes, 17 slots.
//! Parameter names follow that PyTorch model (`conv1`, `bn1`, `layer1.0.conv1`,
//! `layer2.0.shortcut.0`, `linear`, ...).

use candle_core::{Device, Tensor, Var};

use super::{global_avg_pool, BatchNorm2d, Conv2d, Init, Linear, Network, Param, Scale};
use crate::activation::{Activation, Op};
use crate::infer::{Fuse, GraphBuilder, Value};
use crate::Result;

/// conv3x3 + BN + slot, conv3x3 + BN, plus the shortcut, then a slot (two slots).
#[derive(Clone, Debug)]
pub(crate) struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    /// 1x1 conv (stride s, no bias) + BN when the shape changes; identity otherwise.
    shortcut: Option<(Conv2d, BatchNorm2d)>,
}

impl BasicBlock {
    /// Number of activation slots a block uses.
    pub(crate) const SLOTS: usize = 2;

    /// A block `cin -> cout` with the first conv at `stride`, parameters `{prefix}.*`.
    pub(crate) fn new(
        init: &mut Init,
        prefix: &str,
        cin: usize,
        cout: usize,
        stride: usize,
    ) -> Result<Self> {
        let conv1 = Conv2d::new(
            init,
            &format!("{prefix}.conv1"),
            cin,
            cout,
            3,
            stride,
            1,
            1,
            false,
        )?;
        let bn1 = BatchNorm2d::new(init, &format!("{prefix}.bn1"), cout)?;
        let conv2 = Conv2d::new(
            init,
            &format!("{prefix}.conv2"),
            cout,
            cout,
            3,
            1,
            1,
            1,
            false,
        )?;
        let bn2 = BatchNorm2d::new(init, &format!("{prefix}.bn2"), cout)?;
        let shortcut = if stride != 1 || cin != cout {
            Some((
                Conv2d::new(
                    init,
                    &format!("{prefix}.shortcut.0"),
                    cin,
                    cout,
                    1,
                    stride,
                    0,
                    1,
                    false,
                )?,
                BatchNorm2d::new(init, &format!("{prefix}.shortcut.1"), cout)?,
            ))
        } else {
            None
        };
        Ok(Self {
            conv1,
            bn1,
            conv2,
            bn2,
            shortcut,
        })
    }

    /// `acts[1](bn2(conv2(acts[0](bn1(conv1(x))))) + shortcut(x))`.
    pub(crate) fn forward(&self, x: &Tensor, train: bool, acts: &[Activation]) -> Result<Tensor> {
        let out = self
            .bn1
            .forward_act(&self.conv1.forward(x)?, train, &acts[0])?;
        let short = match &self.shortcut {
            Some((conv, bn)) => bn.forward_t(&conv.forward(x)?, train)?,
            None => x.clone(),
        };
        self.bn2
            .forward_add_act(&self.conv2.forward(&out)?, &short, train, &acts[1])
    }

    /// The block in the inference graph: `act1(bn2(conv2(h)) + shortcut)` in one loop.
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
        let short = match &self.shortcut {
            Some((conv, bn)) => g.conv(x, conv, Some(bn), Fuse::default())?,
            None => x,
        };
        let fuse = Fuse {
            residual: Some(short),
            ..act(&acts[1])
        };
        g.conv(h, &self.conv2, Some(&self.bn2), fuse)
    }

    pub(crate) fn params(&self) -> Vec<Param> {
        let mut out = [
            self.conv1.params(),
            self.bn1.params(),
            self.conv2.params(),
            self.bn2.params(),
        ]
        .concat();
        if let Some((conv, bn)) = &self.shortcut {
            out.extend(conv.params());
            out.extend(bn.params());
        }
        out
    }

    pub(crate) fn buffers(&self) -> Vec<(String, Var)> {
        let mut out = [self.bn1.buffers(), self.bn2.buffers()].concat();
        if let Some((_, bn)) = &self.shortcut {
            out.extend(bn.buffers());
        }
        out
    }
}

/// ResNet-18 (CIFAR stem) with an activation slot after the stem and two per block.
pub struct ResNet18 {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    blocks: Vec<BasicBlock>,
    linear: Linear,
    acts: Vec<Activation>,
}

impl ResNet18 {
    /// Blocks per stage at full depth.
    pub const BLOCKS: [usize; 4] = [2, 2, 2, 2];
    /// Stage widths at full width.
    pub const WIDTHS: [usize; 4] = [64, 128, 256, 512];

    /// The model with PyTorch-default initial weights drawn from `seed`, ReLU in every slot.
    pub fn new(num_classes: usize, scale: Scale, seed: u64, device: &Device) -> Result<Self> {
        Self::from_init(&mut Init::new(seed, device), num_classes, scale)
    }

    /// The model with parameters drawn from `init` (whose dtype it takes); `scale.depth`
    /// scales the blocks per stage.
    pub fn from_init(init: &mut Init, num_classes: usize, scale: Scale) -> Result<Self> {
        scale.check()?;
        let stem = scale.channels(64);
        let conv1 = Conv2d::new(init, "conv1", 3, stem, 3, 1, 1, 1, false)?;
        let bn1 = BatchNorm2d::new(init, "bn1", stem)?;
        let mut blocks = Vec::new();
        let mut cin = stem;
        for (stage, (&n, &width)) in Self::BLOCKS.iter().zip(&Self::WIDTHS).enumerate() {
            let cout = scale.channels(width);
            for b in 0..scale.repeats(n) {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                let prefix = format!("layer{}.{b}", stage + 1);
                blocks.push(BasicBlock::new(init, &prefix, cin, cout, stride)?);
                cin = cout;
            }
        }
        let slots = 1 + BasicBlock::SLOTS * blocks.len();
        let acts = (0..slots)
            .map(|_| Activation::new(Op::Relu, init.device(), init.dtype()))
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

impl Network for ResNet18 {
    fn name(&self) -> &str {
        "resnet18"
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = self
            .bn1
            .forward_act(&self.conv1.forward(x)?, train, &self.acts[0])?;
        for (i, block) in self.blocks.iter().enumerate() {
            let s = 1 + BasicBlock::SLOTS * i;
            x = block.forward(&x, train, &self.acts[s..s + BasicBlock::SLOTS])?;
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
            let s = 1 + BasicBlock::SLOTS * i;
            x = block.build_inference(g, x, &self.acts[s..s + BasicBlock::SLOTS])?;
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
        out.extend(self.blocks.iter().flat_map(BasicBlock::params));
        out.extend(self.linear.params());
        out
    }

    fn buffers(&self) -> Vec<(String, Var)> {
        let mut out = self.bn1.buffers();
        out.extend(self.blocks.iter().flat_map(BasicBlock::buffers));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testutil::{check_full_model, check_grad, param_table, pseudo_random};
    use candle_core::DType;
    use candle_nn::Module;

    #[test]
    fn parameter_count_matches_pytorch() -> Result<()> {
        // conv3x3 weights 9*cin*cout, BN 2*c, 1x1 shortcut cin*cout + BN 2*cout:
        //   stem 9*3*64 + 128 = 1,856
        //   layer1: 2 * (2*(9*64*64) + 2*128) = 147,968
        //   layer2: (9*64*128 + 9*128*128 + 4*128) + (64*128 + 256) + (2*9*128*128 + 4*128)
        //         = 221,696 + 8,448 + 295,424 = 525,568
        //   layer3: (9*128*256 + 9*256*256 + 1,024) + (128*256 + 512) + (2*9*256*256 + 1,024)
        //         = 885,760 + 33,280 + 1,180,672 = 2,099,712
        //   layer4: (9*256*512 + 9*512*512 + 2,048) + (256*512 + 1,024) + (2*9*512*512 + 2,048)
        //         = 3,540,992 + 132,096 + 4,720,640 = 8,393,728
        //   linear 512*10 + 10 = 5,130
        //   total 1,856 + 147,968 + 525,568 + 2,099,712 + 8,393,728 + 5,130 = 11,173,962
        assert_eq!(
            1_856 + 147_968 + 525_568 + 2_099_712 + 8_393_728 + 5_130,
            11_173_962
        );
        let m = ResNet18::new(10, Scale::FULL, 0, &Device::Cpu)?;
        assert_eq!(m.num_parameters(), 11_173_962, "{:?}", param_table(&m));
        assert_eq!(m.num_slots(), 17);
        // Prunable: stem, 16 block convs, 3 shortcut convs, linear.
        let prunable: Vec<String> = m.prunable().into_iter().map(|p| p.name).collect();
        assert_eq!(prunable.len(), 1 + 16 + 3 + 1);
        assert!(prunable.contains(&"layer2.0.shortcut.0.weight".to_string()));
        assert!(!prunable
            .iter()
            .any(|n| n.contains("bn") || n.contains("shortcut.1")));
        assert_eq!(prunable.last().unwrap(), "linear.weight");
        // BN: stem + 2 per block + 3 shortcuts = 20, two buffers each.
        assert_eq!(m.buffers().len(), 40);
        // Depth 0.5: one block per stage, 1 + 2*4 slots.
        let shallow = ResNet18::new(
            10,
            Scale {
                width: 0.25,
                depth: 0.5,
            },
            0,
            &Device::Cpu,
        )?;
        assert_eq!(shallow.num_slots(), 9);
        Ok(())
    }

    fn block_check(cin: usize, cout: usize, stride: usize, hw: usize) -> Result<()> {
        let dev = Device::Cpu;
        let mut init = Init::with_dtype(2, &dev, DType::F64);
        let block = BasicBlock::new(&mut init, "b", cin, cout, stride)?;
        assert_eq!(block.shortcut.is_some(), stride != 1 || cin != cout);
        let acts = [
            Activation::new(Op::Swish, &dev, DType::F64)?,
            Activation::new(Op::Gelu, &dev, DType::F64)?,
        ];
        let x = Var::from_tensor(&pseudo_random(&[2, cin, hw, hw], 3)?)?;
        let out_hw = (hw - 1) / stride + 1;
        let y = block.forward(x.as_tensor(), true, &acts)?;
        assert_eq!(y.dims(), &[2, cout, out_hw, out_hw]);
        // The shortcut really is added: with the residual branch's BN scale at 0 the block is
        // act2(shortcut(x)).
        let bn2_gamma = &block.bn2.params()[0].var;
        let saved = bn2_gamma.as_tensor().copy()?;
        bn2_gamma.set(&bn2_gamma.zeros_like()?)?;
        let y0 = block.forward(x.as_tensor(), false, &acts)?;
        let short = match &block.shortcut {
            Some((conv, bn)) => bn.forward_t(&conv.forward(x.as_tensor())?, false)?,
            None => x.as_tensor().clone(),
        };
        let want = acts[1].forward(&short)?;
        let d: f64 = y0.sub(&want)?.abs()?.max_all()?.to_scalar()?;
        assert!(d < 1e-12, "shortcut mismatch {d}");
        bn2_gamma.set(&saved)?;

        let r = pseudo_random(&[2, cout, out_hw, out_hw], 4)?;
        let loss = || -> Result<Tensor> {
            Ok(block
                .forward(x.as_tensor(), true, &acts)?
                .mul(&r)?
                .sum_all()?)
        };
        check_grad("block x", &loss, &x, 40)?;
        check_grad(
            "block conv1.weight",
            &loss,
            &block.conv1.params()[0].var,
            20,
        )?;
        check_grad(
            "block conv2.weight",
            &loss,
            &block.conv2.params()[0].var,
            20,
        )?;
        if let Some((conv, _)) = &block.shortcut {
            check_grad("block shortcut.weight", &loss, &conv.params()[0].var, 20)?;
        }
        Ok(())
    }

    #[test]
    fn basic_block_identity() -> Result<()> {
        block_check(3, 3, 1, 4)
    }

    #[test]
    fn basic_block_projection() -> Result<()> {
        block_check(2, 4, 2, 4)?;
        block_check(2, 4, 2, 5)
    }

    #[test]
    fn full_model_at_quarter_width() -> Result<()> {
        let build = |seed: u64| -> Result<Box<dyn Network>> {
            Ok(Box::new(ResNet18::new(
                10,
                Scale::width(0.25),
                seed,
                &Device::Cpu,
            )?))
        };
        check_full_model(&build, &[2, 3, 32, 32], 10)
    }
}
