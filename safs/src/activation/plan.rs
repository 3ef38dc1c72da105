//! The Stage 1 genome: one operator per activation slot.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::Op;
use crate::{Error, Result};

/// One operator per activation slot of a network, in forward order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActivationPlan(pub Vec<Op>);

impl ActivationPlan {
    /// The same operator in every one of `slots` slots.
    pub fn uniform(op: Op, slots: usize) -> Self {
        Self(vec![op; slots])
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the plan has no slot.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The operators in slot order.
    pub fn ops(&self) -> &[Op] {
        &self.0
    }

    /// An error unless the plan has exactly `slots` entries.
    pub fn check_len(&self, slots: usize, model: &str) -> Result<()> {
        if self.len() != slots {
            return Err(Error::Config(format!(
                "activation plan '{self}' has {} operators but {model} has {slots} activation slots",
                self.len()
            )));
        }
        Ok(())
    }
}

impl fmt::Display for ActivationPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|op| op.name()).collect();
        f.write_str(&names.join(","))
    }
}

impl FromStr for ActivationPlan {
    type Err = Error;

    /// Parses "relu,swish,gelu" (commas, optional spaces).
    fn from_str(s: &str) -> Result<Self> {
        let ops = s
            .split(',')
            .map(|t| t.trim().parse::<Op>())
            .collect::<Result<Vec<_>>>()?;
        Ok(Self(ops))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_display_round_trip() {
        let p: ActivationPlan = "relu, swish,gelu,symexp".parse().unwrap();
        assert_eq!(p.ops(), &[Op::Relu, Op::Swish, Op::Gelu, Op::Symexp]);
        assert_eq!(p.to_string(), "relu,swish,gelu,symexp");
        assert_eq!(p.to_string().parse::<ActivationPlan>().unwrap(), p);
    }

    #[test]
    fn wrong_length_names_model() {
        let p = ActivationPlan::uniform(Op::Relu, 3);
        let err = p.check_len(4, "lenet5").unwrap_err().to_string();
        assert!(
            err.contains("lenet5") && err.contains('3') && err.contains('4'),
            "{err}"
        );
        assert!("relu,bogus".parse::<ActivationPlan>().is_err());
    }
}
