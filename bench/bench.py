"""Measure the program: evaluation time, resources, 1Password calls, and no-op stability.

    python -m bench.bench            # 9 runs a measurement
    python -m bench.bench --quick    # 3 runs (CI); exits 1 only if the no-op check finds a difference

Everything is evaluated offline (cluster_secrets/offline.py): the real SDKs, fake engine and providers.
"""

import argparse
import cProfile
import gc
import platform
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path

from cluster_secrets import offline
from cluster_secrets.desired import evaluate_stack

ROOT = Path(__file__).resolve().parent.parent
SDKS = "import pulumi, pulumi_kubernetes, pulumi_onepassword, pulumi_random, pulumiverse_time, bcrypt"


def evaluate(stack: str, config: dict | None = None) -> offline.Evaluation:
    """One evaluation of a converged stack, as `plan` does it (a secondary reads its primary's outputs)."""
    return evaluate_stack(ROOT, stack, config=config)


def timed(stack: str, runs: int, config: dict | None = None) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        evaluate(stack, config)
        times.append(time.perf_counter() - started)
    return times


def process_seconds(code: str, runs: int) -> float:
    """Median wall time of a fresh interpreter running `code`."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def differences(first: offline.Evaluation, second: offline.Evaluation) -> list[str]:
    """Resources (and outputs) whose inputs differ between two evaluations with the same state."""
    before = {r.name: (r.type, r.inputs, sorted(r.dependencies)) for r in first.registrations}
    after = {r.name: (r.type, r.inputs, sorted(r.dependencies)) for r in second.registrations}
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    return changed + (["(stack outputs)"] if first.outputs != second.outputs else [])


BUCKETS = (  # (label, fragments of a profiled function's file or name), first match wins
    ("bcrypt (cost 10)", ("bcrypt",)),
    ("program (components/, __main__.py)", (str(ROOT / "components"), str(ROOT / "__main__.py"))),
    ("reading Pulumi.yaml and the stack file (YAML)", ("/yaml/",)),
    ("provider SDKs", ("pulumi_kubernetes", "pulumi_random", "pulumi_onepassword", "pulumiverse_time")),
    ("Pulumi SDK runtime", ("/pulumi/",)),
    ("asyncio, threads, protobuf", ("asyncio", "select", "_thread", "protobuf", "grpc", "concurrent")),
)


def where_time_goes(stack: str) -> str:
    """One evaluation's own time (cProfile, main thread), by bucket, largest first."""
    evaluate(stack)  # warm
    profile = cProfile.Profile()
    profile.enable()
    evaluate(stack)
    profile.disable()
    totals = dict.fromkeys([label for label, _ in BUCKETS] + ["other (builtins, stdlib)"], 0.0)
    for (path, _, function), row in pstats.Stats(profile).stats.items():  # type: ignore[attr-defined]
        where = f"{path} {function}"
        label = next(
            (label for label, fragments in BUCKETS if any(f in where for f in fragments)), "other (builtins, stdlib)"
        )
        totals[label] += row[2]  # time in the function itself
    ordered = sorted(totals.items(), key=lambda item: -item[1])
    return ", ".join(f"{label} {seconds * 1000:.0f} ms" for label, seconds in ordered)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench")
    parser.add_argument("--quick", action="store_true", help="3 runs a measurement (CI)")
    runs = 3 if parser.parse_args(argv).quick else 9

    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.system()}; median of {runs} runs"
    )
    imports = process_seconds(SDKS, runs)
    program = process_seconds("import gc; from bench.bench import evaluate; evaluate('homelab'); gc.collect()", runs)
    print(
        f"process importing the SDKs only: {imports:.2f}s; importing and evaluating homelab: {program:.2f}s "
        f"(x{program / imports:.2f})"
    )

    failed = False
    for stack in ("homelab", "homelab-2"):
        first = evaluate(stack)
        second = evaluate(stack)
        reads = sorted(token.split(":")[-1] for token, _ in first.monitor.invokes if token.startswith("onepassword:"))
        items = [r for r in first.registrations if r.type == "onepassword:index/item:Item"]
        changed = differences(first, second)
        failed = failed or bool(changed)
        also = " (with homelab's, for its outputs)" if stack != "homelab" else ""
        milliseconds = statistics.median(timed(stack, runs)) * 1000
        print(
            f"{stack}: {len(first.registrations)} resources, evaluation {milliseconds:.0f} ms "
            f"in process{also}; 1Password reads {len(reads)} ({', '.join(reads)}), 1Password items {len(items)} "
            f"(written only when created or changed); no-op re-run differs in: {', '.join(changed) or 'nothing'}"
        )

    for count in (10, 100, 1000):
        namespaces = [f"app-{index}" for index in range(count)]
        seconds = statistics.median(timed("homelab", runs, {"storeNamespaces": namespaces}))
        print(f"homelab with {count} storeNamespaces: {seconds * 1000:.0f} ms")
    print(f"where one homelab evaluation spends its time: {where_time_goes('homelab')}")
    gc.collect()  # the event loops of many evaluations go now, not noisily at interpreter exit
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
