//! Choosing where tensors live: `cpu`, `cuda` or `cuda:N`.

use candle_core::Device;

use crate::{Error, Result};

/// Parses a device name; asking for CUDA in a build without the `cuda` feature is an error.
pub fn parse_device(name: &str) -> Result<Device> {
    let lower = name.trim().to_ascii_lowercase();
    if lower == "cpu" {
        return Ok(Device::Cpu);
    }
    let ordinal = match lower.strip_prefix("cuda") {
        Some("") => 0,
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| {
                Error::Config(format!("bad device '{name}'; use cpu, cuda or cuda:N"))
            })?,
        None => {
            return Err(Error::Config(format!(
                "unknown device '{name}'; use cpu, cuda or cuda:N"
            )))
        }
    };
    if !candle_core::utils::cuda_is_available() {
        return Err(Error::Config(format!(
            "device '{name}' asked for, but this build of safs has no CUDA support \
             (rebuild with `--features cuda`)"
        )));
    }
    Ok(Device::new_cuda(ordinal)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(parse_device("cpu").unwrap().is_cpu());
        assert!(parse_device("tpu").unwrap_err().to_string().contains("tpu"));
        assert!(parse_device("cuda:x").is_err());
        if !candle_core::utils::cuda_is_available() {
            let err = parse_device("cuda:0").unwrap_err().to_string();
            assert!(err.contains("--features cuda"), "{err}");
        }
    }
}
