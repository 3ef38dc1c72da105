#!/usr/bin/env python3
"""Reference values for safs' activation operators, following PyTorch's definitions.

Plain Python (math module only): where PyTorch has the operator, the formula is the one in
PyTorch's documentation (quoted per function); the others follow the SAFS paper's sources.
Run from this directory:  python3 pytorch_reference.py  ->  pytorch_reference.json
"""

import json
import math

XS = [-20.0, -6.0, -3.5, -1.0, -0.25, 0.25, 1.0, 2.5, 6.5, 20.0, 50.0]


def relu(x):
    # torch.nn.ReLU: ReLU(x) = (x)^+ = max(0, x)
    return max(0.0, x)


def relu6(x):
    # torch.nn.ReLU6: ReLU6(x) = min(max(0, x), 6)
    return min(max(0.0, x), 6.0)


def hardswish(x):
    # torch.nn.Hardswish: 0 if x <= -3, x if x >= +3, x*(x+3)/6 otherwise
    if x <= -3.0:
        return 0.0
    if x >= 3.0:
        return x
    return x * (x + 3.0) / 6.0


def sigmoid(x):
    # torch.sigmoid: 1 / (1 + exp(-x)), evaluated without overflow
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def silu(x):
    # torch.nn.SiLU: silu(x) = x * sigma(x)
    return x * sigmoid(x)


def softplus(x, beta=1.0, threshold=20.0):
    # torch.nn.Softplus: 1/beta * log(1 + exp(beta * x)); reverts to the linear function
    # when input * beta > threshold
    if x * beta > threshold:
        return x
    return math.log1p(math.exp(beta * x)) / beta


def tanhsoft1(x, a=0.87):
    # TanhSoft-1 (Biswas et al. 2020): tanh(a x) * ln(1 + e^x), a fixed to 0.87
    return math.tanh(a * x) * softplus(x)


def acon(x, p1=1.0, p2=0.25, beta=1.0):
    # ACON-C (Ma et al. 2021): (p1 - p2) x sigmoid(beta (p1 - p2) x) + p2 x
    return (p1 - p2) * x * sigmoid(beta * (p1 - p2) * x) + p2 * x


def gelu(x):
    # torch.nn.GELU(approximate='none'): GELU(x) = x * Phi(x) = x * 0.5 * (1 + erf(x / sqrt 2))
    # (erfc form, identical in exact arithmetic, keeps the tail precise)
    return x * 0.5 * math.erfc(-x / math.sqrt(2.0))


def srs(x, a=2.0, b=3.0):
    # Soft-Root-Sign (Zhou et al. 2020): x / (x/a + e^(-x/b))
    return x / (x / a + math.exp(-x / b))


def elu(x, alpha=1.0):
    # torch.nn.ELU: x if x > 0, alpha * (exp(x) - 1) if x <= 0
    return x if x > 0 else alpha * math.expm1(x)


def selu(x):
    # torch.nn.SELU: scale * (max(0, x) + min(0, alpha * (exp(x) - 1)))
    alpha = 1.6732632423543772848170429916717
    scale = 1.0507009873554804934193349852946
    return scale * (max(0.0, x) + min(0.0, alpha * math.expm1(x)))


def tanh(x):
    # torch.tanh: (e^x - e^-x) / (e^x + e^-x)
    return math.tanh(x)


def logsigmoid(x):
    # torch.nn.LogSigmoid: log(1 / (1 + exp(-x))), evaluated stably
    return min(x, 0.0) - math.log1p(math.exp(-abs(x)))


def symlog(x):
    # DreamerV3 (Hafner et al. 2023): sign(x) ln(|x| + 1)
    return math.copysign(math.log1p(abs(x)), x)


def symexp(x):
    # inverse of symlog (Hafner et al. 2023): sign(x) (exp(|x|) - 1), with |x| clamped at 20
    # as safs defines it (only the point 50 reaches the clamp)
    return math.copysign(math.expm1(min(abs(x), 20.0)), x)


def identity(x):
    return x


OPS = {
    "relu": relu,
    "relu6": relu6,
    "hardswish": hardswish,
    "swish": silu,
    "tanhsoft1": tanhsoft1,
    "acon": acon,
    "gelu": gelu,
    "srs": srs,
    "elu": elu,
    "selu": selu,
    "tanh": tanh,
    "sigmoid": sigmoid,
    "softplus": softplus,
    "logsigmoid": logsigmoid,
    "symlog": symlog,
    "symexp": symexp,
    "identity": identity,
}

if __name__ == "__main__":
    table = {name: [[x, f(x)] for x in XS] for name, f in OPS.items()}
    lines = ["  %s: %s" % (json.dumps(name), json.dumps(rows)) for name, rows in table.items()]
    with open("pytorch_reference.json", "w") as out:
        out.write("{\n" + ",\n".join(lines) + "\n}\n")
