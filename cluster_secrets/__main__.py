"""python -m cluster_secrets {up,preview,destroy,plan,diff} ...

Exit codes: 0 done, 1 a Pulumi operation failed, 2 bad arguments or environment,
3 the Argo CD hand-off did not converge, 127 no Pulumi CLI.
"""

import argparse
import sys
from pathlib import Path

from cluster_secrets import converge, deploy, plan

PROJECT_DIR = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m cluster_secrets", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("up", "deploy a stack, repeating `pulumi up` until the Argo CD hand-off is complete"),
        ("preview", "pulumi preview of a stack against its cluster"),
        ("destroy", "pulumi destroy of a stack"),
    ):
        commands.add_parser(name, help=text).add_argument("stack", help="stack name, e.g. homelab")
    planning = commands.add_parser("plan", help="the desired state of a stack, offline (no cluster, 1Password or CLI)")
    planning.add_argument("stack")
    planning.add_argument("--new-stack", action="store_true", help="plan a first deployment, not a converged stack")
    planning.add_argument("--diff", metavar="REF", help="show how the desired state changed since git REF")
    planning.add_argument("--output", type=Path, help="write the plan to this file instead of stdout")
    planning.add_argument("--program-dir", type=Path, default=PROJECT_DIR, help=argparse.SUPPRESS)
    comparing = commands.add_parser("diff", help="compare two plan files")
    comparing.add_argument("base", type=Path)
    comparing.add_argument("head", type=Path)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.command == "plan":
        try:
            if args.diff:
                text = plan.diff_against(args.program_dir, args.diff, args.stack, args.new_stack)
            else:
                text = plan.plan(args.program_dir, args.stack, args.new_stack)
        except plan.PlanError as error:
            print(f"error: {error}", file=sys.stderr)
            return converge.EXIT_FAILED
        if args.output:
            args.output.write_text(text)
        else:
            sys.stdout.write(text)
        return converge.EXIT_OK
    if args.command == "diff":
        stack = args.head.stem
        changes = plan.diff(args.base.read_text(), args.head.read_text(), stack)
        sys.stdout.write(changes or "No change to the desired state.\n")
        return converge.EXIT_OK
    return deploy.run(args.command, PROJECT_DIR, args.stack, say=lambda line: print(line, flush=True))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
