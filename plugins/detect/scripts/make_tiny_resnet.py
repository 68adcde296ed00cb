"""Makes the test checkpoints of the CNN detector (run once; outputs are committed).

The published detector of Wang et al. 2020 is a torchvision ResNet-50 ([3, 4, 6, 3] bottleneck
blocks) with one output, saved as ``torch.save({'model': state_dict, ...})``. Its weights are
~95 MB and cannot be downloaded here, so this script builds a network with the same structure
and parameter names but tiny widths, fills it with random weights and random batch-norm
statistics, and saves it the same way. It also records the logits torch computes for a
procedural test image with Wang et al.'s preprocessing (ToTensor + ImageNet Normalize, optional
centre crop), which the Rust test compares against.

Usage (needs torch; nothing in the product or its tests needs Python):
    python make_tiny_resnet.py OUT_DIR
"""

import json
import sys

import torch
import torch.nn as nn

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


class Bottleneck(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        cout = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        idt = x if self.downsample is None else self.downsample(x)
        return torch.relu(y + idt)


class TinyResNet(nn.Module):
    """torchvision's ResNet layout with configurable widths."""

    def __init__(self, stem, planes, blocks, classes=1):
        super().__init__()
        self.conv1 = nn.Conv2d(3, stem, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        cin = stem
        for i, (p, n) in enumerate(zip(planes, blocks)):
            layer = []
            for j in range(n):
                layer.append(Bottleneck(cin, p, 2 if (i > 0 and j == 0) else 1))
                cin = p * 4
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = nn.functional.max_pool2d(x, 3, stride=2, padding=1)
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
        x = x.mean(dim=[2, 3])
        return self.fc(x)


def test_image(h, w):
    """The procedural RGB image the Rust test rebuilds: uint8 [H, W, 3]."""
    ys = torch.arange(h).view(h, 1, 1)
    xs = torch.arange(w).view(1, w, 1)
    cs = torch.arange(3).view(1, 1, 3)
    return ((xs * 7 + ys * 13 + cs * 50 + (xs * ys) % 17) % 256).to(torch.uint8)


def preprocess(img, crop):
    x = img.permute(2, 0, 1).to(torch.float32) / 255.0
    if crop:
        h, w = x.shape[1:]
        top = int(round((h - crop) / 2.0))
        left = int(round((w - crop) / 2.0))
        x = x[:, top:top + crop, left:left + crop]
    m = torch.tensor(MEAN).view(3, 1, 1)
    s = torch.tensor(STD).view(3, 1, 1)
    return ((x - m) / s).unsqueeze(0)


def main(out):
    torch.manual_seed(20200101)
    net = TinyResNet(stem=8, planes=[4, 8, 12, 16], blocks=[3, 4, 6, 3])
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("conv1.weight") or ".conv" in name or "downsample.0" in name:
                fan_in = p[0].numel()
                p.normal_(0.0, (1.0 / fan_in) ** 0.5)
            elif name.startswith("fc."):
                p.normal_(0.0, 0.3)
            elif name.endswith(".weight"):  # batch-norm gamma
                p.uniform_(0.5, 1.5)
            else:  # batch-norm beta
                p.normal_(0.0, 0.1)
        for name, b in net.named_buffers():
            if name.endswith("running_mean"):
                b.normal_(0.0, 0.1)
            elif name.endswith("running_var"):
                b.uniform_(0.5, 1.5)
    net.eval()
    ref = {}
    img = test_image(70, 64)
    with torch.no_grad():
        for crop in [0, 48]:
            ref[f"crop{crop}"] = float(net(preprocess(img, crop))[0, 0])
    state = {"model": net.state_dict(), "total_steps": 0}
    torch.save(state, f"{out}/tiny_resnet.pth")
    torch.save({"weights": torch.zeros(2)}, f"{out}/no_model_key.pth")
    ref["image"] = "rgb[y][x][c] = (7x + 13y + 50c + (x*y mod 17)) mod 256, 70x64"
    ref["torch"] = torch.__version__
    with open(f"{out}/tiny_resnet_reference.json", "w") as f:
        json.dump(ref, f, indent=1)
    print(ref)


if __name__ == "__main__":
    main(sys.argv[1])
