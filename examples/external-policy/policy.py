#!/usr/bin/env python3
"""A ferry external rollout policy: one datacenter at a time, smallest first.

ferry writes the plan (schema version 1, see rollout/EXTERNAL-POLICY.md)
on stdin and reads the batches from stdout. This policy:

- keeps ferry's class stages (the dependency order: db before web);
- within a stage, rolls out one datacenter at a time, the datacenter with the
  fewest hosts in the whole fleet first, so a bad release hurts the least;
- makes the first batch of each stage a canary of `policy.canary` hosts
  (at least one) from that smallest datacenter;
- cuts each datacenter into batches of `policy.batch` hosts (count or percent
  of the datacenter, rounded up).

The grouping label is the policy's `group_by`, or `datacenter` if unset.
Standard library only. Exits non-zero with a message on stderr on bad input.
"""
import json
import math
import sys


def batch_limit(batch, hosts):
    if "count" in batch:
        return max(1, batch["count"])
    return max(1, math.ceil(hosts * batch["percent"] / 100))


def main():
    plan = json.load(sys.stdin)
    if plan.get("version") != 1:
        sys.exit(f"policy.py understands plan version 1, got {plan.get('version')!r}")
    policy = plan["policy"]
    label = policy.get("group_by") or "datacenter"

    fleet_size = {}
    for host in plan["hosts"]:
        dc = host["labels"].get(label, "")
        fleet_size[dc] = fleet_size.get(dc, 0) + 1

    batches = []
    for stage_classes in plan["stages"]:
        changing = [h for h in plan["hosts"] if h["changes"] and h["class"] in stage_classes]
        by_dc = {}
        for host in changing:
            by_dc.setdefault(host["labels"].get(label, ""), []).append(host["name"])
        canary = max(1, policy["canary"])
        for dc in sorted(by_dc, key=lambda d: (fleet_size[d], d)):
            names = by_dc[dc]
            limit = batch_limit(policy["batch"], len(names))
            group = dc or None
            if canary:
                size = min(canary, limit, len(names))
                batches.append({"hosts": names[:size], "canary": True, "group": group})
                names = names[size:]
                canary = 0
            for start in range(0, len(names), limit):
                batches.append({"hosts": names[start:start + limit], "group": group})

    json.dump({"version": 1, "batches": batches}, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
