//! LeNet-5 for 28x28 grey images, as the SAFS reference builds it.

use candle_core::{DType, Device, Tensor};
use candle_nn::Module;

use super::{max_pool2d, Conv2d, Init, Linear, Network, Param};
use crate::activation::{Activation, Op};
use crate::infer::{Fuse, GraphBuilder, Value};
use crate::Result;

/// conv 1->6 k5, pool 2, conv 6->16 k5, pool 2, fc 256->120->84->classes; an activation
/// slot after conv1, conv2, fc1 and fc2 (44,426 parameters for 10 classes).
pub struct LeNet5 {
    conv1: Conv2d,
    conv2: Conv2d,
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
    acts: Vec<Activation>,
}

impl LeNet5 {
    /// A LeNet-5 with PyTorch-default initial weights drawn from `seed`, ReLU in every slot.
    pub fn new(num_classes: usize, seed: u64, device: &Device) -> Result<Self> {
        let mut init = Init::new(seed, device);
        let acts = (0..4)
            .map(|_| Activation::new(Op::Relu, device, DType::F32))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            conv1: Conv2d::new(&mut init, "conv1", 1, 6, 5, 1, 0, 1, true)?,
            conv2: Conv2d::new(&mut init, "conv2", 6, 16, 5, 1, 0, 1, true)?,
            fc1: Linear::new(&mut init, "fc1", 16 * 4 * 4, 120)?,
            fc2: Linear::new(&mut init, "fc2", 120, 84)?,
            fc3: Linear::new(&mut init, "fc3", 84, num_classes)?,
            acts,
        })
    }
}

impl Network for LeNet5 {
    fn name(&self) -> &str {
        "lenet5"
    }

    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        let x = max_pool2d(&self.acts[0].forward(&self.conv1.forward(x)?)?, 2)?;
        let x = max_pool2d(&self.acts[1].forward(&self.conv2.forward(&x)?)?, 2)?;
        let x = x.flatten_from(1)?;
        let x = self.acts[2].forward(&self.fc1.forward(&x)?)?;
        let x = self.acts[3].forward(&self.fc2.forward(&x)?)?;
        self.fc3.forward(&x)
    }

    fn build_inference(&self, g: &mut GraphBuilder, x: Value) -> Result<Value> {
        let a = &self.acts;
        let then = |act| Fuse {
            act: Some(act),
            pool: true,
            ..Fuse::default()
        };
        let x = g.conv(x, &self.conv1, None, then(&a[0]))?;
        let x = g.conv(x, &self.conv2, None, then(&a[1]))?;
        let x = g.flatten(x)?;
        let x = g.linear(x, &self.fc1, Some(&a[2]))?;
        let x = g.linear(x, &self.fc2, Some(&a[3]))?;
        g.linear(x, &self.fc3, None)
    }

    fn activations(&self) -> &[Activation] {
        &self.acts
    }

    fn activations_mut(&mut self) -> &mut [Activation] {
        &mut self.acts
    }

    fn parameters(&self) -> Vec<Param> {
        [
            self.conv1.params(),
            self.conv2.params(),
            self.fc1.params(),
            self.fc2.params(),
            self.fc3.params(),
        ]
        .concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::ActivationPlan;

    #[test]
    fn parameter_count_matches_pytorch() -> Result<()> {
        // torch: sum(p.numel()) for the same LeNet-5 = 44,426.
        let m = LeNet5::new(10, 0, &Device::Cpu)?;
        assert_eq!(m.num_parameters(), 44_426);
        assert_eq!(m.num_slots(), 4);
        let names: Vec<String> = m.prunable().into_iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            [
                "conv1.weight",
                "conv2.weight",
                "fc1.weight",
                "fc2.weight",
                "fc3.weight"
            ]
        );
        Ok(())
    }

    #[test]
    fn forward_shape_and_seeded_init() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (3, 1, 28, 28), &dev)?;
        let a = LeNet5::new(10, 7, &dev)?;
        let b = LeNet5::new(10, 7, &dev)?;
        let c = LeNet5::new(10, 8, &dev)?;
        let ya = a.forward_t(&x, true)?;
        assert_eq!(ya.dims(), &[3, 10]);
        let yb = b.forward_t(&x, true)?;
        let yc = c.forward_t(&x, true)?;
        let d_ab = ya.sub(&yb)?.abs()?.max_all()?.to_scalar::<f32>()?;
        let d_ac = ya.sub(&yc)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert_eq!(d_ab, 0.0);
        assert!(d_ac > 0.0);
        Ok(())
    }

    #[test]
    fn plan_round_trip() -> Result<()> {
        let mut m = LeNet5::new(10, 0, &Device::Cpu)?;
        let plan: ActivationPlan = "swish,gelu,relu6,symlog".parse()?;
        m.set_plan(&plan)?;
        assert_eq!(m.plan(), plan);
        assert!(m.set_plan(&ActivationPlan::uniform(Op::Relu, 3)).is_err());
        Ok(())
    }
}
