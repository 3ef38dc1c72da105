"""The PyTorch side of the benchmark harness: the same rows as `safs/examples/bench.rs`.

`python torch_bench.py ROW [--reps N] [--threads T]` prints one JSON line (median ms per
repetition, items/s, peak RSS, parameter count). The models are written here to match the
safs architectures layer for layer; benches/compare.py checks the parameter counts agree.
"""

import argparse
import json
import warnings
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

MODELS = {
    # name: (batch, channels, side, classes)
    "lenet5": (256, 1, 28, 10),
    "vgg16": (64, 3, 32, 10),
    "resnet18": (64, 3, 32, 10),
    "efficientnet_b0": (64, 3, 16, 1000),
}


class LeNet5(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(256, 120), nn.Linear(120, 84), nn.Linear(84, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2).flatten(1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class VGG16(nn.Module):
    CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]

    def __init__(self, classes):
        super().__init__()
        layers, cin = [], 3
        for v in self.CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
                cin = v
        self.features, self.classifier = nn.Sequential(*layers), nn.Linear(512, classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64)
        blocks, cin = [], 64
        for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            blocks += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers, self.linear = nn.Sequential(*blocks), nn.Linear(512, classes)

    def forward(self, x):
        x = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1))


class MBConv(nn.Module):
    """safs::model::efficientnet's block: expand, depthwise, project, SE, reference shortcut."""

    def __init__(self, cin, cout, expansion, stride):
        super().__init__()
        planes = expansion * cin
        self.stride, self.same = stride, stride == 1 and cin == cout
        self.conv1, self.bn1 = nn.Conv2d(cin, planes, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, groups=planes, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = nn.Conv2d(planes, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride == 1 and cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        hidden = max(1, cout // 16)
        self.fc1, self.fc2 = nn.Conv2d(cout, hidden, 1), nn.Conv2d(hidden, cout, 1)

    def forward(self, x):
        out = F.silu(self.bn1(self.conv1(x)))
        out = F.silu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        se = torch.sigmoid(self.fc2(F.silu(self.fc1(F.adaptive_avg_pool2d(out, 1)))))
        short = out if self.stride != 1 else (x if self.same else self.shortcut(x))
        return out * se + short


class EfficientNetB0(nn.Module):
    CFG = [(1, 16, 1, 2), (6, 24, 2, 1), (6, 40, 2, 2), (6, 80, 3, 2), (6, 112, 3, 1), (6, 192, 4, 2), (6, 320, 1, 2)]

    def __init__(self, classes):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32)
        blocks, cin = [], 32
        for e, out, n, s in self.CFG:
            for i in range(n):
                blocks.append(MBConv(cin, out, e, s if i == 0 else 1))
                cin = out
        self.layers, self.linear = nn.Sequential(*blocks), nn.Linear(320, classes)

    def forward(self, x):
        x = self.layers(F.silu(self.bn1(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1))


BUILD = {"lenet5": LeNet5, "vgg16": VGG16, "resnet18": ResNet18, "efficientnet_b0": EfficientNetB0}


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return None


def timed(reps, fn):
    fn()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def batch(name):
    b, c, side, classes = MODELS[name]
    x = torch.randn(b, c, side, side)
    y = torch.tensor([(i * 7) % classes for i in range(b)])
    return x, y


def train_row(name, reps):
    model = BUILD[name](MODELS[name][3]).train()
    x, y = batch(name)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return timed(reps, step), x.shape[0], sum(p.numel() for p in model.parameters())


def prune_layerwise(model, rate):
    """PyTorch's l1_unstructured on every conv and linear weight, applied permanently."""
    import torch.nn.utils.prune as prune

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            prune.l1_unstructured(m, "weight", amount=rate)
            prune.remove(m, "weight")


class CsrConv(nn.Module):
    """A convolution as unfold + torch.sparse CSR matmul (PyTorch has no sparse CPU conv)."""

    def __init__(self, conv):
        super().__init__()
        w = conv.weight.detach()
        self.weight = w.reshape(w.shape[0], -1).to_sparse_csr()
        self.bias = None if conv.bias is None else conv.bias.detach()
        self.k, self.stride, self.padding = conv.kernel_size, conv.stride, conv.padding

    def forward(self, x):
        n, _, h, w = x.shape
        cols = F.unfold(x, self.k, padding=self.padding, stride=self.stride)  # (N, K, L)
        k, l = cols.shape[1], cols.shape[2]
        y = torch.sparse.mm(self.weight, cols.transpose(0, 1).reshape(k, n * l))
        ho = (h + 2 * self.padding[0] - self.k[0]) // self.stride[0] + 1
        y = y.reshape(-1, n, l).transpose(0, 1).reshape(n, -1, ho, l // ho)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


class CsrLinear(nn.Module):
    def __init__(self, lin):
        super().__init__()
        self.weight = lin.weight.detach().to_sparse_csr()
        self.bias = lin.bias.detach()

    def forward(self, x):
        return torch.sparse.mm(self.weight, x.t()).t() + self.bias


def to_csr(module):
    """Every conv with one group and every linear layer in torch.sparse CSR, in place;
    depthwise convolutions stay dense (CSR does not apply to grouped ones)."""
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d) and child.groups == 1:
            setattr(module, name, CsrConv(child))
        elif isinstance(child, nn.Linear):
            setattr(module, name, CsrLinear(child))
        else:
            to_csr(child)


def infer_row(name, impl, rate, batch_size, reps):
    """Eval-mode forward of the model pruned `rate`% layer-wise, dense or with CSR weights."""
    if impl not in ("dense", "csr"):
        raise SystemExit(f"unknown inference implementation {impl!r}")
    model = BUILD[name](MODELS[name][3])
    prune_layerwise(model, int(rate) / 100)
    x, _ = batch(name)
    with torch.no_grad():  # BatchNorm statistics of the pruned network, as in bench.rs
        for _ in range(3):
            model(x)
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    x = x[: int(batch_size.lstrip("b"))].contiguous()
    if impl == "csr":
        with torch.no_grad():
            want = model(x)
            to_csr(model)
            got = model(x)
        scale = want.abs().max().clamp(min=1.0)
        if (got - want).abs().max() > 1e-4 * scale:
            raise SystemExit(f"{name}: the CSR model's logits differ from the dense model's")

    def run():
        with torch.no_grad():
            model(x)

    return timed(reps, run), x.shape[0], params


def op_row(op, mode, reps):
    b = 64
    if op == "conv3x3":
        args, fn = [torch.randn(b, 64, 32, 32), torch.randn(64, 64, 3, 3)], lambda a: F.conv2d(a[0], a[1], padding=1)
    elif op == "conv3x3_s2":
        args, fn = [torch.randn(b, 64, 32, 32), torch.randn(128, 64, 3, 3)], lambda a: F.conv2d(a[0], a[1], stride=2, padding=1)
    elif op == "depthwise3x3":
        args, fn = [torch.randn(b, 96, 16, 16), torch.randn(96, 1, 3, 3)], lambda a: F.conv2d(a[0], a[1], padding=1, groups=96)
    elif op == "batchnorm":
        args = [torch.randn(b, 64, 32, 32), torch.randn(64), torch.randn(64)]
        fn = lambda a: F.batch_norm(a[0], None, None, a[1], a[2], training=True, eps=1e-5)
    elif op == "maxpool2":
        args, fn = [torch.randn(b, 64, 32, 32)], lambda a: F.max_pool2d(a[0], 2)
    elif op == "relu":
        args, fn = [torch.randn(b, 64, 32, 32)], lambda a: F.relu(a[0])
    elif op == "linear":
        args, fn = [torch.randn(b, 1024), torch.randn(1024, 1024)], lambda a: F.linear(a[0], a[1])
    else:
        raise SystemExit(f"unknown op {op!r}")
    for a in args:
        a.requires_grad_(True)
    if mode == "fwd":
        def run():
            with torch.no_grad():
                fn(args)
    elif mode == "fwdbwd":
        def run():
            for a in args:
                a.grad = None
            fn(args).sum().backward()
    else:
        raise SystemExit(f"unknown op mode {mode!r}")
    return timed(reps, run), b, 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("row")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    warnings.filterwarnings("ignore")  # CSR "beta state", NumPy absent: not results
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    parts = a.row.split("/")
    if parts[0] == "train":
        times, items, params = train_row(parts[1], a.reps)
    elif parts[0] == "infer":
        times, items, params = infer_row(*parts[1:5], a.reps)
    elif parts[0] == "op":
        times, items, params = op_row(parts[1], parts[2], a.reps)
    else:
        raise SystemExit(f"unknown row {a.row!r}")
    ms = statistics.median(times)
    print(json.dumps({
        "row": a.row, "impl": f"pytorch-{torch.__version__}", "threads": torch.get_num_threads(),
        "median_ms": ms, "items_per_s": items / (ms / 1e3), "peak_rss_mib": peak_rss_mib(),
        "params": params, "times_ms": times, "dtype": "F32",
    }))


if __name__ == "__main__":
    main()
