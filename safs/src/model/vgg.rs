//! VGG with BatchNorm for 32x32 images: the common CIFAR VGG (kuangliu/pytorch-cifar style).
//!
//! Every 3x3 convolution (padding 1, with bias) is followed by BatchNorm and an activation
//! slot; `M` is a 2x2 max pool. After the five pools a 32x32 input is 1x1, so the classifier
//! is a single `Linear(512 -> classes)`.
//!
//! The SAFS reference code's "VGG-16" actually builds configuration A, which is VGG-11
//! (8 convolutions). Both are offered: [`VggConfig::Vgg16`] (configuration D, 13
//! convolutions, `vgg16`) and [`VggConfig::Vgg11`] (configuration A, `vgg11`).
//!
//! Parameter names follow PyTorch's `nn.Sequential` indices of that model: conv `k` is
//! `features.{k}`, its BatchNorm `features.{k+1}` (the activation is `k+2`, a pool one index),
//! and the last layer is `classifier`.

use candle_core::{Device, Tensor, Var};

use super::{max_pool2d, BatchNorm2d, Conv2d, Init, Linear, Network, Param, Scale};
use crate::activation::{Activation, Op};
use crate::infer::{Fuse, GraphBuilder, Value};
use crate::{Error, Result};

/// The two VGG depths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VggConfig {
    /// Configuration A: 8 convolutions (what the SAFS reference calls VGG-16).
    Vgg11,
    /// Configuration D: 13 convolutions.
    Vgg16,
}

/// A max pool in a configuration list.
const M: usize = 0;

impl VggConfig {
    /// The layer list: output channels of each conv, `0` for a 2x2 max pool.
    pub fn layers(self) -> &'static [usize] {
        match self {
            VggConfig::Vgg11 => &[64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M],
            VggConfig::Vgg16 => &[
                64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M,
            ],
        }
    }

    /// The model name (`vgg11`, `vgg16`).
    pub fn name(self) -> &'static str {
        match self {
            VggConfig::Vgg11 => "vgg11",
            VggConfig::Vgg16 => "vgg16",
        }
    }
}

/// conv3x3 (padding 1, bias) + BatchNorm + activation: the VGG unit.
#[derive(Clone, Debug)]
pub(crate) struct ConvBnUnit {
    conv: Conv2d,
    bn: BatchNorm2d,
}

impl ConvBnUnit {
    /// A unit `cin -> cout` with parameters `{conv_name}.*` and `{bn_name}.*`.
    pub(crate) fn new(
        init: &mut Init,
        conv_name: &str,
        bn_name: &str,
        cin: usize,
        cout: usize,
    ) -> Result<Self> {
        Ok(Self {
            conv: Conv2d::new(init, conv_name, cin, cout, 3, 1, 1, 1, true)?,
            bn: BatchNorm2d::new(init, bn_name, cout)?,
        })
    }

    /// `act(bn(conv(x)))`.
    pub(crate) fn forward(&self, x: &Tensor, train: bool, act: &Activation) -> Result<Tensor> {
        self.bn.forward_act(&self.conv.forward(x)?, train, act)
    }

    fn params(&self) -> Vec<Param> {
        [self.conv.params(), self.bn.params()].concat()
    }
}

#[derive(Clone, Debug)]
enum Item {
    Unit(ConvBnUnit),
    Pool,
}

/// VGG-11 or VGG-16 with BatchNorm for (N, 3, 32, 32) input; one slot per convolution.
pub struct Vgg {
    config: VggConfig,
    items: Vec<Item>,
    classifier: Linear,
    acts: Vec<Activation>,
}

impl Vgg {
    /// The model with PyTorch-default initial weights drawn from `seed`, ReLU in every slot.
    pub fn new(
        config: VggConfig,
        num_classes: usize,
        scale: Scale,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        Self::from_init(&mut Init::new(seed, device), config, num_classes, scale)
    }

    /// The model with parameters drawn from `init` (whose dtype it takes).
    pub fn from_init(
        init: &mut Init,
        config: VggConfig,
        num_classes: usize,
        scale: Scale,
    ) -> Result<Self> {
        scale.check()?;
        if scale.depth != 1.0 {
            return Err(Error::Config(format!(
                "{} has no depth option, got depth {}",
                config.name(),
                scale.depth
            )));
        }
        let mut items = Vec::new();
        let mut cin = 3;
        let mut index = 0;
        for &layer in config.layers() {
            if layer == M {
                items.push(Item::Pool);
                index += 1;
            } else {
                let cout = scale.channels(layer);
                let conv = format!("features.{index}");
                let bn = format!("features.{}", index + 1);
                items.push(Item::Unit(ConvBnUnit::new(init, &conv, &bn, cin, cout)?));
                cin = cout;
                index += 3;
            }
        }
        let slots = items.iter().filter(|i| matches!(i, Item::Unit(_))).count();
        let acts = (0..slots)
            .map(|_| Activation::new(Op::Relu, init.device(), init.dtype()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config,
            items,
            classifier: Linear::new(init, "classifier", cin, num_classes)?,
            acts,
        })
    }

    /// Which VGG this is.
    pub fn config(&self) -> VggConfig {
        self.config
    }
}

impl Network for Vgg {
    fn name(&self) -> &str {
        self.config.name()
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let dims = x.dims();
        if dims.len() != 4 || dims[1] != 3 || dims[2] != 32 || dims[3] != 32 {
            return Err(Error::Config(format!(
                "{} expects (N, 3, 32, 32) input, got shape {dims:?}",
                self.name()
            )));
        }
        let mut x = x.clone();
        let mut slot = 0;
        for item in &self.items {
            x = match item {
                Item::Unit(u) => {
                    slot += 1;
                    u.forward(&x, train, &self.acts[slot - 1])?
                }
                Item::Pool => max_pool2d(&x, 2)?,
            };
        }
        self.classifier.forward(&x.flatten_from(1)?)
    }

    fn build_inference(&self, g: &mut GraphBuilder, mut x: Value) -> Result<Value> {
        let mut slot = 0;
        for (i, item) in self.items.iter().enumerate() {
            if let Item::Unit(u) = item {
                let fuse = Fuse {
                    act: Some(&self.acts[slot]),
                    pool: matches!(self.items.get(i + 1), Some(Item::Pool)),
                    ..Fuse::default()
                };
                x = g.conv(x, &u.conv, Some(&u.bn), fuse)?;
                slot += 1;
            }
        }
        let x = g.flatten(x)?;
        g.linear(x, &self.classifier, None)
    }

    fn activations(&self) -> &[Activation] {
        &self.acts
    }

    fn activations_mut(&mut self) -> &mut [Activation] {
        &mut self.acts
    }

    fn parameters(&self) -> Vec<Param> {
        let mut out: Vec<Param> = self
            .items
            .iter()
            .flat_map(|i| match i {
                Item::Unit(u) => u.params(),
                Item::Pool => Vec::new(),
            })
            .collect();
        out.extend(self.classifier.params());
        out
    }

    fn buffers(&self) -> Vec<(String, Var)> {
        self.items
            .iter()
            .flat_map(|i| match i {
                Item::Unit(u) => u.bn.buffers(),
                Item::Pool => Vec::new(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testutil::{check_full_model, check_grad, param_table, pseudo_random};
    use crate::model::ParamKind;
    use candle_core::DType;

    #[test]
    fn parameter_counts_match_pytorch() -> Result<()> {
        // Per conv unit cin -> cout: 9*cin*cout weights + cout bias + 2*cout BN = 9*cin*cout + 3*cout.
        //   3->64: 1,920   64->64: 37,056   64->128: 74,112   128->128: 147,840
        //   128->256: 295,680   256->256: 590,592   256->512: 1,181,184   512->512: 2,360,832
        //   classifier 512*10 + 10 = 5,130
        // VGG-16 (D): 1,920 + 37,056 + 74,112 + 147,840 + 295,680 + 2*590,592 + 1,181,184
        //   + 5*2,360,832 + 5,130 = 14,728,266
        // VGG-11 (A): 1,920 + 74,112 + 295,680 + 590,592 + 1,181,184 + 3*2,360,832 + 5,130
        //   = 9,231,114
        let unit = |cin: usize, cout: usize| 9 * cin * cout + 3 * cout;
        assert_eq!(
            unit(3, 64)
                + unit(64, 64)
                + unit(64, 128)
                + unit(128, 128)
                + unit(128, 256)
                + 2 * unit(256, 256)
                + unit(256, 512)
                + 5 * unit(512, 512)
                + 5130,
            14_728_266
        );
        let dev = Device::Cpu;
        let m16 = Vgg::new(VggConfig::Vgg16, 10, Scale::FULL, 0, &dev)?;
        assert_eq!(m16.num_parameters(), 14_728_266, "{:?}", param_table(&m16));
        assert_eq!(m16.num_slots(), 13);
        let m11 = Vgg::new(VggConfig::Vgg11, 10, Scale::FULL, 0, &dev)?;
        assert_eq!(m11.num_parameters(), 9_231_114, "{:?}", param_table(&m11));
        assert_eq!(m11.num_slots(), 8);

        // prunable: the 13 conv weights and the classifier weight, nothing else.
        let prunable: Vec<String> = m16.prunable().into_iter().map(|p| p.name).collect();
        assert_eq!(prunable.len(), 14);
        assert_eq!(prunable[0], "features.0.weight");
        assert_eq!(prunable[1], "features.3.weight");
        assert_eq!(prunable[2], "features.7.weight");
        assert_eq!(prunable[13], "classifier.weight");
        let norms = m16
            .parameters()
            .into_iter()
            .filter(|p| p.kind == ParamKind::Norm)
            .count();
        assert_eq!(norms, 26);
        assert_eq!(m16.buffers().len(), 26);
        assert_eq!(m16.buffers()[0].0, "features.1.running_mean");
        Ok(())
    }

    #[test]
    fn unit_shapes_and_gradients() -> Result<()> {
        let dev = Device::Cpu;
        let mut init = Init::with_dtype(1, &dev, DType::F64);
        let unit = ConvBnUnit::new(&mut init, "c", "b", 2, 3)?;
        let mut act = Activation::new(Op::Swish, &dev, DType::F64)?;
        act.set_scales(1.3, 0.8)?;
        let x = Var::from_tensor(&pseudo_random(&[2, 2, 4, 4], 1)?)?;
        let r = pseudo_random(&[2, 3, 4, 4], 2)?;
        assert_eq!(
            unit.forward(x.as_tensor(), true, &act)?.dims(),
            &[2, 3, 4, 4]
        );
        for train in [true, false] {
            let loss = || -> Result<Tensor> {
                Ok(unit
                    .forward(x.as_tensor(), train, &act)?
                    .mul(&r)?
                    .sum_all()?)
            };
            check_grad("vgg unit x", &loss, &x, 40)?;
            check_grad("vgg unit conv.weight", &loss, &unit.params()[0].var, 20)?;
            check_grad("vgg unit conv.bias", &loss, &unit.params()[1].var, 3)?;
        }
        Ok(())
    }

    #[test]
    fn full_models_at_quarter_width() -> Result<()> {
        for config in [VggConfig::Vgg11, VggConfig::Vgg16] {
            let build = |seed: u64| -> Result<Box<dyn Network>> {
                Ok(Box::new(Vgg::new(
                    config,
                    10,
                    Scale::width(0.25),
                    seed,
                    &Device::Cpu,
                )?))
            };
            check_full_model(&build, &[2, 3, 32, 32], 10)?;
            assert_eq!(build(0)?.name(), config.name());
        }
        Ok(())
    }

    #[test]
    fn rejects_other_input_sizes() -> Result<()> {
        let m = Vgg::new(VggConfig::Vgg11, 10, Scale::width(0.125), 0, &Device::Cpu)?;
        let x = Tensor::zeros((2, 3, 16, 16), DType::F32, &Device::Cpu)?;
        let err = m.forward_t(&x, false).unwrap_err().to_string();
        assert!(err.contains("[2, 3, 16, 16]"), "{err}");
        Ok(())
    }
}
