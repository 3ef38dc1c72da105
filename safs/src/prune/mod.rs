//! Magnitude pruning: masks that zero the smallest weights and stay applied.
//!
//! Layer-wise pruning ("LWM" in the paper) follows PyTorch's
//! `torch.nn.utils.prune.l1_unstructured`: in each layer, the `round(rate * n)` weights
//! of smallest magnitude are zeroed (Python's `round`, ties to even).

mod magnitude;
mod masks;
mod report;

pub use magnitude::{global_magnitude, layerwise_magnitude, PruneMethod};
pub use masks::Masks;
pub use report::{sparsity_report, LayerSparsity};
