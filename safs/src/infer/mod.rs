//! Sparse inference: a pruned network compiled into an inference-only graph.
//!
//! [`InferenceGraph::build`] asks the model to describe its layers
//! ([`crate::model::Network::build_inference`]) and keeps, per convolution, only what the
//! forward pass needs:
//!
//! - BatchNorm (eval mode) folded into the weights and bias: `w' = w * s`, `b' = b * s + t`;
//! - the non-zero weights alone, each a *tap*: an input plane, a shift, a value;
//! - the activation `beta * op(alpha * x)` (any of the 17 operators), the ResNet residual
//!   and a following 2x2 max pool applied in the loop that writes the output.
//!
//! Feature maps live in a channel-major layout with zero borders and the images of a
//! sub-batch side by side at each position ([`planes`]), so a tap is a shifted contiguous
//! run of its input plane, a convolution is, per output channel, a sum of shifted runs
//! computed 64 outputs at a time in registers ([`kernel`]) with no im2col copy, and an
//! output row of all the images is one run with no border computed. Depthwise and dense
//! few-channel layers use the same loop with every non-zero weight as a tap; stride 2 runs
//! over the input's four phases.
//!
//! The graph gives the eval-mode logits of the dense model within f32 rounding (tests:
//! every model, every operator, real MNIST predictions exactly).

mod act;
mod builder;
mod conv;
mod head;
mod kernel;
mod planes;

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

pub use builder::{Fuse, GraphBuilder, Value};
use conv::ConvNode;
use head::{LinearNode, SeNode};
use planes::Planes;

use crate::model::Network;
use crate::{Error, Result};

/// Images per sub-batch, each run through the whole network on one thread. With the images
/// side by side, 8 fills a vector per position; against 4, 16 and 32 it was the fastest
/// for ResNet-18 at 99% in most runs (VGG-16 and EfficientNet-B0 gain a little more from
/// 16-32; batch 64, 2 threads; docs/benchmarks.md).
const SUB_BATCH: usize = 8;

/// The shape of a value: feature maps or one vector per sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Maps { c: usize, h: usize, w: usize },
    Vector(usize),
}

/// A value's shape and storage: zero border and trailing slack its readers need.
#[derive(Clone, Debug)]
pub(crate) struct ValueInfo {
    pub kind: Kind,
    pub pad: usize,
    pub slack: usize,
}

impl ValueInfo {
    fn new(kind: Kind) -> Self {
        Self {
            kind,
            pad: 0,
            slack: 0,
        }
    }
}

/// One step of the graph; inputs and outputs are value indices.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    Conv {
        node: ConvNode,
        input: usize,
        residual: Option<usize>,
        output: usize,
    },
    Se {
        node: SeNode,
        input: usize,
        short: Option<usize>,
        output: usize,
    },
    Gap {
        input: usize,
        output: usize,
    },
    Flatten {
        input: usize,
        output: usize,
    },
    Linear {
        node: LinearNode,
        input: usize,
        output: usize,
    },
}

impl Node {
    fn inputs(&self) -> Vec<usize> {
        match self {
            Node::Conv {
                input, residual, ..
            } => [Some(*input), *residual].into_iter().flatten().collect(),
            Node::Se { input, short, .. } => [Some(*input), *short].into_iter().flatten().collect(),
            Node::Gap { input, .. } | Node::Flatten { input, .. } | Node::Linear { input, .. } => {
                vec![*input]
            }
        }
    }

    fn output(&self) -> usize {
        match self {
            Node::Conv { output, .. }
            | Node::Se { output, .. }
            | Node::Gap { output, .. }
            | Node::Flatten { output, .. }
            | Node::Linear { output, .. } => *output,
        }
    }
}

/// One layer of a graph as [`InferenceGraph::layers`] reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSummary {
    /// The layer's parameter prefix, e.g. `features.0`.
    pub name: String,
    /// `conv`, `depthwise`, `squeeze-excite` or `linear`.
    pub kind: &'static str,
    /// Weights of the layer.
    pub weights: usize,
    /// Non-zero weights kept.
    pub stored: usize,
    /// What the output loop applies after the sums, e.g. `bn+relu+pool`.
    pub fused: String,
}

/// A network compiled for inference on the CPU (f32) at one input size.
#[derive(Clone, Debug)]
pub struct InferenceGraph {
    model: String,
    input: [usize; 3],
    values: Vec<ValueInfo>,
    nodes: Vec<Node>,
    output: usize,
    /// Index of the last node reading each value (its buffer is freed after it).
    last_use: Vec<usize>,
}

/// A value's buffer while the graph runs.
enum Buf {
    Maps(Planes),
    Vector(Vec<f32>),
}

impl InferenceGraph {
    /// Compiles `model` (in its current state: weights, BatchNorm statistics, activation
    /// plan and scales) for inputs of one (C, H, W) size.
    pub fn build(model: &dyn Network, input: [usize; 3]) -> Result<Self> {
        let (mut b, x) = GraphBuilder::new(model.name(), input);
        let out = model.build_inference(&mut b, x)?;
        b.finish(out)
    }

    pub(crate) fn new(b: GraphBuilder, output: Value) -> Result<Self> {
        let GraphBuilder {
            mut values,
            mut nodes,
            model,
            input,
        } = b;
        if !matches!(values.get(output.0).map(|v| v.kind), Some(Kind::Vector(_))) {
            return Err(Error::Config(format!(
                "inference graph of {model}: the output is not a vector per sample"
            )));
        }
        // Now that every reader has said how much border it needs, place the taps.
        for node in &mut nodes {
            if let Node::Conv { node, input, .. } = node {
                let v = &values[*input];
                let Kind::Maps { w, .. } = v.kind else {
                    unreachable!("the builder checks a convolution's input")
                };
                node.place(v.pad, w);
                if node.stride == 1 {
                    values[*input].slack = kernel::BLOCK;
                }
            }
        }
        let mut last_use = vec![usize::MAX; values.len()];
        for (i, node) in nodes.iter().enumerate() {
            for v in node.inputs() {
                last_use[v] = i;
            }
        }
        Ok(Self {
            model,
            input,
            values,
            nodes,
            output: output.0,
            last_use,
        })
    }

    /// The (C, H, W) size the graph was built for.
    pub fn input_size(&self) -> [usize; 3] {
        self.input
    }

    /// Number of classes (length of the output vector).
    pub fn num_outputs(&self) -> usize {
        let Kind::Vector(n) = self.values[self.output].kind else {
            unreachable!("InferenceGraph::new checks that the output is a vector")
        };
        n
    }

    /// The layers in forward order, with their stored weights and fusions.
    pub fn layers(&self) -> Vec<LayerSummary> {
        let mut out = Vec::new();
        for node in &self.nodes {
            match node {
                Node::Conv { node, .. } => {
                    let depthwise = node.groups > 1 && node.groups == node.cin;
                    let mut fused = Vec::new();
                    if node.bn {
                        fused.push("bn");
                    }
                    if node.residual {
                        fused.push("residual");
                    }
                    if node.act != act::PointAct::NONE {
                        fused.push(node.act.op.name());
                    }
                    if node.pool {
                        fused.push("pool");
                    }
                    out.push(LayerSummary {
                        name: node.name.clone(),
                        kind: if depthwise { "depthwise" } else { "conv" },
                        weights: node.cout * node.cin / node.groups * node.k.0 * node.k.1,
                        stored: node.taps.nnz(),
                        fused: fused.join("+"),
                    });
                }
                Node::Se { node, .. } => out.push(LayerSummary {
                    name: node.name.clone(),
                    kind: "squeeze-excite",
                    weights: node.fc1.fin * node.fc1.bias.len()
                        + node.fc2.fin * node.fc2.bias.len(),
                    stored: node.fc1.weights.nnz() + node.fc2.weights.nnz(),
                    fused: "gate+shortcut".into(),
                }),
                Node::Linear { node, .. } => out.push(LayerSummary {
                    name: node.name.clone(),
                    kind: "linear",
                    weights: node.fin * node.bias.len(),
                    stored: node.weights.nnz(),
                    fused: if node.act == act::PointAct::NONE {
                        String::new()
                    } else {
                        node.act.op.name().to_string()
                    },
                }),
                Node::Gap { .. } | Node::Flatten { .. } => {}
            }
        }
        out
    }

    /// Logits `(N, classes)` (f32) for an `(N, C, H, W)` batch on the CPU.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let [c, h, w] = self.input;
        if dims.len() != 4 || dims[1..] != [c, h, w] {
            return Err(Error::Config(format!(
                "inference graph of {}: built for (N, {c}, {h}, {w}) input, got {dims:?}",
                self.model
            )));
        }
        let n = dims[0];
        let data: Vec<f32> = x
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        let classes = self.num_outputs();
        let image = c * h * w;
        let logits = if n > SUB_BATCH {
            // One sub-batch per task, its layers run on one thread: the feature maps of a
            // few images stay in that core's cache, where a whole batch's would not (so
            // this pays on one thread too).
            let parts: Vec<Result<Vec<f32>>> = data
                .par_chunks(SUB_BATCH * image)
                .map(|part| self.run(part, part.len() / image, false))
                .collect();
            let mut out = Vec::with_capacity(n * classes);
            for p in parts {
                out.extend(p?);
            }
            out
        } else {
            self.run(&data, n, true)?
        };
        Ok(Tensor::from_vec(logits, (n, classes), &Device::Cpu)?)
    }

    /// The logits of `n` images (`data` in NCHW order); `par` splits each layer over
    /// rayon's pool.
    fn run(&self, data: &[f32], n: usize, par: bool) -> Result<Vec<f32>> {
        let [c, h, w] = self.input;
        let info = &self.values[0];
        let mut bufs: Vec<Option<Buf>> = (0..self.values.len()).map(|_| None).collect();
        bufs[0] = Some(Buf::Maps(Planes::from_nchw(
            data,
            [n, c, h, w],
            info.pad,
            info.slack,
            par,
        )));
        for (i, node) in self.nodes.iter().enumerate() {
            let out = self.run_node(node, &bufs, n, par)?;
            bufs[node.output()] = Some(out);
            for v in node.inputs() {
                if self.last_use[v] == i && v != self.output {
                    bufs[v] = None;
                }
            }
        }
        match bufs[self.output].take() {
            Some(Buf::Vector(v)) => Ok(v),
            _ => Err(Error::Config(format!(
                "inference graph of {}: the output was not computed",
                self.model
            ))),
        }
    }

    fn maps<'a>(&self, bufs: &'a [Option<Buf>], v: usize) -> Result<&'a Planes> {
        match &bufs[v] {
            Some(Buf::Maps(p)) => Ok(p),
            _ => Err(self.missing(v)),
        }
    }

    fn missing(&self, v: usize) -> Error {
        Error::Config(format!(
            "inference graph of {}: value {v} read before it was computed or after it was freed",
            self.model
        ))
    }

    /// The zeroed output buffer of a convolution or SE block (both write feature maps).
    fn alloc(&self, v: usize, n: usize) -> Planes {
        let info = &self.values[v];
        let Kind::Maps { c, h, w } = info.kind else {
            unreachable!("the builder gives convolutions and SE blocks feature-map outputs")
        };
        Planes::zeros(c, n, h, w, info.pad, info.slack)
    }

    fn run_node(&self, node: &Node, bufs: &[Option<Buf>], n: usize, par: bool) -> Result<Buf> {
        Ok(match node {
            Node::Conv {
                node,
                input,
                residual,
                output,
            } => {
                let x = self.maps(bufs, *input)?;
                let r = residual.map(|r| self.maps(bufs, r)).transpose()?;
                let mut out = self.alloc(*output, n);
                node.run(x, r, &mut out, par);
                Buf::Maps(out)
            }
            Node::Se {
                node,
                input,
                short,
                output,
            } => {
                let x = self.maps(bufs, *input)?;
                let s = short.map(|s| self.maps(bufs, s)).transpose()?;
                let mut out = self.alloc(*output, n);
                node.run(x, s, &mut out, par);
                Buf::Maps(out)
            }
            Node::Gap { input, .. } => Buf::Vector(head::global_avg_pool(self.maps(bufs, *input)?)),
            Node::Flatten { input, .. } => {
                Buf::Vector(head::flatten(self.maps(bufs, *input)?, par))
            }
            Node::Linear { node, input, .. } => match &bufs[*input] {
                Some(Buf::Vector(v)) => Buf::Vector(node.run(v, n, par)),
                _ => return Err(self.missing(*input)),
            },
        })
    }
}

#[cfg(test)]
mod tests;
