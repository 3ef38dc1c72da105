//! How a model describes itself to the graph: one call per layer, in forward order
//! ([`crate::model::Network::build_inference`]). The builder folds BatchNorm into the
//! weights, keeps only the non-zero weights, and records what each layer fuses.

use candle_core::{DType, Tensor};

use super::act::PointAct;
use super::conv::ConvNode;
use super::head::{LinearNode, SeNode};
use super::kernel::{Tap, TapList};
use super::{InferenceGraph, Kind, Node, ValueInfo};
use crate::activation::{Activation, Op};
use crate::model::{BatchNorm2d, Conv2d, Linear};
use crate::{Error, Result};

/// A feature map or vector inside a graph under construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Value(pub(crate) usize);

/// What a convolution takes into its output loop, in this order: `+ residual`, the
/// activation, a 2x2 max pool.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fuse<'a> {
    /// The activation slot that follows (after the residual).
    pub act: Option<&'a Activation>,
    /// A value of the output's shape added before the activation (a ResNet shortcut).
    pub residual: Option<Value>,
    /// A 2x2 max pool after the activation.
    pub pool: bool,
}

/// Collects a model's layers into an [`InferenceGraph`].
pub struct GraphBuilder {
    pub(crate) values: Vec<ValueInfo>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) model: String,
    pub(crate) input: [usize; 3],
}

fn f32_values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
}

impl GraphBuilder {
    /// A builder for `model` whose input is one (C, H, W) image per sample.
    pub(crate) fn new(model: &str, input: [usize; 3]) -> (Self, Value) {
        let [c, h, w] = input;
        let b = GraphBuilder {
            values: vec![ValueInfo::new(Kind::Maps { c, h, w })],
            nodes: Vec::new(),
            model: model.to_string(),
            input,
        };
        (b, Value(0))
    }

    fn value(&mut self, kind: Kind) -> Value {
        self.values.push(ValueInfo::new(kind));
        Value(self.values.len() - 1)
    }

    fn maps(&self, v: Value, layer: &str) -> Result<(usize, usize, usize)> {
        match self.values.get(v.0).map(|i| i.kind) {
            Some(Kind::Maps { c, h, w }) => Ok((c, h, w)),
            _ => Err(self.error(layer, "expects feature maps as input")),
        }
    }

    fn error(&self, layer: &str, what: &str) -> Error {
        Error::Config(format!("inference graph of {}: {layer} {what}", self.model))
    }

    /// `conv(x)`, then `bn` (folded into the weights and bias) and what `fuse` names.
    pub fn conv(
        &mut self,
        x: Value,
        conv: &Conv2d,
        bn: Option<&BatchNorm2d>,
        fuse: Fuse<'_>,
    ) -> Result<Value> {
        let name = conv.name.clone();
        let (cin, h, w) = self.maps(x, &name)?;
        let dims = conv.weight.dims().to_vec();
        let [cout, cin_g, kh, kw] = dims[..] else {
            return Err(self.error(&name, "has a weight that is not 4-D"));
        };
        let (s, p, groups) = (conv.stride, conv.padding, conv.groups);
        if cin_g * groups != cin || cout % groups != 0 || s == 0 || s > 2 {
            return Err(self.error(
                &name,
                &format!("does not fit its input: weight {dims:?}, {cin} channels, stride {s}"),
            ));
        }
        if h + 2 * p < kh || w + 2 * p < kw {
            return Err(self.error(
                &name,
                &format!("has a kernel larger than its {h}x{w} input"),
            ));
        }
        let (ho, wo) = ((h + 2 * p - kh) / s + 1, (w + 2 * p - kw) / s + 1);
        if fuse.pool && (s != 1 || ho % 2 != 0 || wo % 2 != 0 || h % 2 != 0) {
            return Err(self.error(&name, "cannot fuse a 2x2 pool (stride 2 or odd size)"));
        }
        if let Some(r) = fuse.residual {
            if self.maps(r, &name)? != (cout, ho, wo) {
                return Err(self.error(&name, "has a residual of another shape"));
            }
        }
        let mut weight = f32_values(conv.weight.as_tensor())?;
        let mut bias = match &conv.bias {
            Some(b) => f32_values(b.as_tensor())?,
            None => vec![0f32; cout],
        };
        if let Some(bn) = bn {
            let (scale, shift) = bn.eval_scale_shift()?;
            let (scale, shift) = (f32_values(&scale)?, f32_values(&shift)?);
            if scale.len() != cout {
                return Err(self.error(
                    &bn.name,
                    &format!("has {} channels, not {cout}", scale.len()),
                ));
            }
            for (co, row) in weight.chunks_mut(cin_g * kh * kw).enumerate() {
                row.iter_mut().for_each(|v| *v *= scale[co]);
                bias[co] = bias[co] * scale[co] + shift[co];
            }
        }
        let per_group = cout / groups;
        let rows = weight
            .chunks(cin_g * kh * kw)
            .enumerate()
            .map(|(co, row)| {
                let first = (co / per_group * cin_g) as u32;
                row.iter()
                    .enumerate()
                    .filter(|(_, &v)| v != 0.0)
                    .map(|(i, &v)| Tap {
                        plane: first + (i / (kh * kw)) as u32,
                        off: (i % (kh * kw)) as u32,
                        w: v,
                    })
                    .collect()
            })
            .collect();
        let act = fuse.act.map_or(Ok(PointAct::NONE), PointAct::from_slot)?;
        self.values[x.0].pad = self.values[x.0].pad.max(p);
        let (oh, ow) = if fuse.pool {
            (ho / 2, wo / 2)
        } else {
            (ho, wo)
        };
        let out = self.value(Kind::Maps {
            c: cout,
            h: oh,
            w: ow,
        });
        self.nodes.push(Node::Conv {
            node: ConvNode {
                name,
                cin,
                cout,
                groups,
                k: (kh, kw),
                stride: s,
                pad: p,
                ho,
                wo,
                taps: TapList::new(rows),
                bias,
                act,
                bn: bn.is_some(),
                pool: fuse.pool,
                residual: fuse.residual.is_some(),
                phases: Vec::new(),
            },
            input: x.0,
            residual: fuse.residual.map(|r| r.0),
            output: out.0,
        });
        Ok(out)
    }

    /// Squeeze-and-excitation from two 1x1 convolutions with bias (`act` after the first, a
    /// sigmoid after the second), its output `x * gate + shortcut`.
    pub fn squeeze_excite(
        &mut self,
        x: Value,
        fc1: &Conv2d,
        fc2: &Conv2d,
        act: &Activation,
        shortcut: Option<Value>,
    ) -> Result<Value> {
        let (c, h, w) = self.maps(x, &fc1.name)?;
        if let Some(s) = shortcut {
            if self.maps(s, &fc1.name)? != (c, h, w) {
                return Err(self.error(&fc1.name, "has a shortcut of another shape"));
            }
        }
        let fc1n = self.dense_layer(&fc1.name, &fc1.weight, fc1.bias.as_ref(), Some(act), c)?;
        let hidden = fc1n.bias.len();
        let mut fc2n = self.dense_layer(&fc2.name, &fc2.weight, fc2.bias.as_ref(), None, hidden)?;
        fc2n.act = PointAct::plain(Op::Sigmoid);
        if fc2n.bias.len() != c {
            return Err(self.error(
                &fc2.name,
                &format!("gives {} channels, not {c}", fc2n.bias.len()),
            ));
        }
        let out = self.value(Kind::Maps { c, h, w });
        self.nodes.push(Node::Se {
            node: SeNode {
                name: fc1.name.clone(),
                fc1: fc1n,
                fc2: fc2n,
            },
            input: x.0,
            short: shortcut.map(|s| s.0),
            output: out.0,
        });
        Ok(out)
    }

    /// A weight `(out, fin, ...)` as a linear layer over its non-zero entries.
    fn dense_layer(
        &self,
        name: &str,
        weight: &candle_core::Var,
        bias: Option<&candle_core::Var>,
        act: Option<&Activation>,
        fin: usize,
    ) -> Result<LinearNode> {
        let w = f32_values(weight.as_tensor())?;
        let fout = weight.dim(0)?;
        if fout * fin != w.len() {
            return Err(self.error(name, &format!("has {} weights, not {fout}x{fin}", w.len())));
        }
        let rows = w
            .chunks(fin)
            .map(|row| {
                row.iter()
                    .enumerate()
                    .filter(|(_, &v)| v != 0.0)
                    .map(|(i, &v)| Tap {
                        plane: i as u32,
                        off: 0,
                        w: v,
                    })
                    .collect()
            })
            .collect();
        Ok(LinearNode {
            name: name.to_string(),
            fin,
            weights: TapList::new(rows),
            bias: match bias {
                Some(b) => f32_values(b.as_tensor())?,
                None => vec![0f32; fout],
            },
            act: act.map_or(Ok(PointAct::NONE), PointAct::from_slot)?,
        })
    }

    /// The per-channel mean over the spatial positions.
    pub fn global_avg_pool(&mut self, x: Value) -> Result<Value> {
        let (c, _, _) = self.maps(x, "global_avg_pool")?;
        let out = self.value(Kind::Vector(c));
        self.nodes.push(Node::Gap {
            input: x.0,
            output: out.0,
        });
        Ok(out)
    }

    /// Feature maps as one vector per sample, in (C, H, W) order.
    pub fn flatten(&mut self, x: Value) -> Result<Value> {
        let (c, h, w) = self.maps(x, "flatten")?;
        let out = self.value(Kind::Vector(c * h * w));
        self.nodes.push(Node::Flatten {
            input: x.0,
            output: out.0,
        });
        Ok(out)
    }

    /// A linear layer, then `act` if given.
    pub fn linear(&mut self, x: Value, lin: &Linear, act: Option<&Activation>) -> Result<Value> {
        let fin = match self.values.get(x.0).map(|i| i.kind) {
            Some(Kind::Vector(len)) => len,
            _ => return Err(self.error(&lin.name, "expects a vector per sample")),
        };
        let node = self.dense_layer(&lin.name, &lin.weight, Some(&lin.bias), act, fin)?;
        let out = self.value(Kind::Vector(node.bias.len()));
        self.nodes.push(Node::Linear {
            node,
            input: x.0,
            output: out.0,
        });
        Ok(out)
    }

    /// The finished graph with `output` as its logits.
    pub(crate) fn finish(self, output: Value) -> Result<InferenceGraph> {
        InferenceGraph::new(self, output)
    }
}
