//! Activation functions and the activation slots of a network.
//!
//! SAFS (Loni et al. 2023) searches, for every layer of a sparse network, over a small set of
//! unary operators ([`op::SEARCH_SPACE`]: relu6, hardswish, swish, tanhsoft1, acon, gelu, srs,
//! elu, tanh, softplus, logsigmoid, symlog, symexp) and then tunes a learnable input and output
//! scale per layer, `f(x) = beta * op(alpha * x)`. [`Op`] is one such operator (plus a few
//! extras such as relu and identity); [`Activation`] is one layer's slot holding an operator
//! and its scales.

pub(crate) mod fast;
pub mod op;
pub mod params;
pub(crate) mod pointwise;
pub mod slot;

pub use op::{Op, ALL, SEARCH_SPACE};
pub use params::OpParams;
pub use slot::Activation;
pub mod plan;

pub use plan::ActivationPlan;
