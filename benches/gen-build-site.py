#!/usr/bin/env python3
"""Writes a site of N packages in a deep and wide graph (for benches/build.sh).

Layer l has W packages; each depends on up to 3 packages of the layer above,
so the graph is DEPTH = N / W deep. Each builder does a little real work
(checksums its inputs) so that parallelism has something to win.
"""
import os
import random
import sys

out_dir = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 500
width = int(sys.argv[3]) if len(sys.argv) > 3 else 25
rng = random.Random(42)
os.makedirs(out_dir, exist_ok=True)
lines = ['site = "bench-build"', ""]
layers = []
for i in range(n):
    layer = i // width
    name = f"p{i:04d}"
    deps = []
    if layer > 0:
        above = layers[layer - 1]
        deps = sorted(rng.sample(above, min(3, len(above))))
    if len(layers) <= layer:
        layers.append([])
    layers[layer].append(name)
    inputs = ", ".join(deps)
    cat_inputs = " ".join(f"${{{d}}}/data" for d in deps)
    lines.append(f"package {name} {{")
    if deps:
        lines.append(f"  inputs = [{inputs}]")
    lines.append('  build = """')
    lines.append("    mkdir -p $out")
    lines.append(f"    echo {name} > $out/data")
    if deps:
        lines.append(f"    cat {cat_inputs} | sort | head -c 4096 >> $out/data")
    # A little CPU work, deterministic.
    lines.append("    i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done")
    lines.append('  """')
    lines.append("}")
    lines.append("")
last = layers[-1]
lines.append("class all {")
for name in last:
    lines.append(f'  service s{name} {{ exec = "${{{name}}}/data" }}')
lines.append("}")
with open(os.path.join(out_dir, "site.conf"), "w") as f:
    f.write("\n".join(lines) + "\n")
