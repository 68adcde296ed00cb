#!/usr/bin/env python3
"""Times NVIDIA's official PyTorch StyleGAN2/StyleGAN3 generators on the CPU, for the same
network sizes `stylegraph bench` measures, so both can be compared on one machine in one
session (docs/performance.md).

The official code is not part of this project: pass the path of a checkout of
https://github.com/NVlabs/stylegan3 with --repo (its `training/` and `torch_utils/` are
imported from there). Needs Python with torch, numpy, scipy, requests and setuptools < 81 (the
official code imports `pkg_resources`). Weights are random (speed does
not depend on them); the construction arguments are those of the official training configs
(`train.py --cfg stylegan3-t|stylegan3-r|stylegan2`, conv_clamp 256), batch 1, fp32 (the
official layers use fp16 only on CUDA). On the CPU the custom CUDA ops fall back to their
reference PyTorch implementations, which is what the official scripts run there.

Each network runs in its own child process, so the reported peak memory (ru_maxrss) is that
network's own. Output: one line per network, and with --json a list of objects.

    python3 scripts/bench_official.py --repo /path/to/stylegan3 --threads 2 --runs 3
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

# name -> (module, image resolution, construction kwargs beyond the common ones)
NETWORKS = {
    "stylegan3-t-256": ("stylegan3", 256, dict(channel_base=16384, channel_max=512)),
    "stylegan3-t-1024": ("stylegan3", 1024, dict(channel_base=32768, channel_max=512)),
    "stylegan3-r-1024": (
        "stylegan3",
        1024,
        dict(channel_base=65536, channel_max=1024, conv_kernel=1, use_radial_filters=True),
    ),
    "stylegan2-1024": (
        "stylegan2",
        1024,
        dict(channel_base=32768, channel_max=512, fused_modconv_default="inference_only"),
    ),
}


def build(repo, name):
    sys.path.insert(0, repo)
    from training import networks_stylegan2, networks_stylegan3  # noqa: E402  (from --repo)

    family, res, extra = NETWORKS[name]
    mapping_layers = 8 if family == "stylegan2" else 2
    module = networks_stylegan2 if family == "stylegan2" else networks_stylegan3
    return module.Generator(
        z_dim=512,
        c_dim=0,
        w_dim=512,
        img_resolution=res,
        img_channels=3,
        mapping_kwargs=dict(num_layers=mapping_layers),
        conv_clamp=256,
        **extra,
    ).eval()


def measure_one(args):
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    g = build(args.repo, args.one)
    build_s = time.perf_counter() - t0
    times = []
    with torch.no_grad():
        for i in range(args.warmup + args.runs):
            z = torch.randn([1, g.z_dim])
            t = time.perf_counter()
            img = g(z, None, truncation_psi=1, noise_mode="const")
            el = time.perf_counter() - t
            if i >= args.warmup:
                times.append(el)
    assert tuple(img.shape) == (1, 3, g.img_resolution, g.img_resolution)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(
        json.dumps(
            dict(
                name=args.one,
                threads=args.threads,
                torch=torch.__version__,
                build_s=build_s,
                run_s=times,
                median_s=statistics.median(times),
                peak_rss_mib=rss_mib,
            )
        )
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repo", required=True, help="checkout of NVlabs/stylegan3")
    p.add_argument("--networks", default=",".join(NETWORKS), help="comma-separated names")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--json", help="write the results to this file too")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        measure_one(args)
        return
    results = []
    for name in args.networks.split(","):
        if name not in NETWORKS:
            sys.exit(f"unknown network {name!r}; known: {', '.join(NETWORKS)}")
        cmd = [sys.executable, __file__, "--repo", args.repo, "--one", name]
        cmd += ["--threads", str(args.threads), "--runs", str(args.runs)]
        cmd += ["--warmup", str(args.warmup)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        results.append(r)
        print(
            f"{name:18} {r['median_s']:8.3f} s/img (median of {args.runs}, "
            f"{r['threads']} threads)  peak RSS {r['peak_rss_mib']:7.0f} MiB  "
            f"torch {r['torch']}",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
