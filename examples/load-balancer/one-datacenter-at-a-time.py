#!/usr/bin/env python3
"""An external rollout policy: one datacenter at a time, one host at a time.

ferry writes the plan as JSON on stdin (rollout/EXTERNAL-POLICY.md) and
reads the batches as JSON from stdout. This policy keeps ferry's stages (so
dependency order holds: the web servers before the load balancer that lists
them) and, inside each stage, updates the datacenters in name order, one host
per batch, the first host of each stage as a canary.
"""
import json
import sys

plan = json.load(sys.stdin)
changing = [h for h in plan["hosts"] if h["changes"]]
batches = []
for stage in plan["stages"]:
    hosts = [h for h in changing if h["class"] in stage]
    hosts.sort(key=lambda h: (h["labels"].get("datacenter", ""), h["name"]))
    for index, host in enumerate(hosts):
        batches.append({"hosts": [host["name"]], "canary": index == 0})
json.dump({"version": 1, "batches": batches}, sys.stdout)
