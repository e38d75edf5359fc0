"""./cluster-secrets: deploy, check and plan cluster-secrets stacks.

`plan` goes one way: desired.py evaluates the stack, render.py renders its charts (--render),
plan.py formats and diffs; `--diff REF` plans the base with its own code (review.py).
"""

import argparse
import os
import sys
from pathlib import Path

from cluster_secrets import adopt, charts, converge, deploy, desired, init, plan, recovery, render, review, status
from cluster_secrets.errors import UsageError
from components.errors import ConfigError

PROJECT_DIR = Path(__file__).resolve().parent.parent
EXIT_CODES = """exit codes:
  0    done (status: every link OK)
  1    a Pulumi operation failed, or 1Password or the cluster could not be read (status: a link is broken)
  2    bad arguments, stack file, config or environment
  3    the Argo CD hand-off did not converge
  127  no Pulumi CLI"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="./cluster-secrets",
        description="Bootstraps a cluster's secret management from 1Password: Connect, External Secrets, Argo CD.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in (
        ("up", "deploy a stack, repeating `pulumi up` until the Argo CD hand-off is complete"),
        ("preview", "pulumi preview of a stack against its cluster"),
        ("destroy", "pulumi destroy of a stack (asks first)"),
        ("status", "check the chain in the live cluster, link by link"),
        ("adopt", "take over what the reference setup made by hand: objects, releases, 1Password items (asks first)"),
    ):
        command = commands.add_parser(name, help=text, description=text, epilog=EXIT_CODES)
        command.formatter_class = argparse.RawDescriptionHelpFormatter
        command.add_argument("stack", help="stack name, e.g. homelab")
        if name in ("destroy", "adopt"):
            command.add_argument("--yes", action="store_true", help=f"{name} without asking")
        if name == "preview":
            command.add_argument("--refresh", action="store_true", help="read every resource from the cluster first")
            command.add_argument(
                "--expect-no-changes", action="store_true", help="fail (exit 1) when it would change anything: drift"
            )
    starting = commands.add_parser(
        "init",
        help="write a new stack file (with --create-1password, also what it needs in 1Password)",
        epilog=EXIT_CODES,
    )
    starting.formatter_class = argparse.RawDescriptionHelpFormatter
    starting.add_argument("stack", help="stack name, e.g. mycluster")
    init.add_arguments(starting)
    planning = commands.add_parser(
        "plan", help="the desired state of a stack, offline (no cluster, 1Password or CLI)", epilog=EXIT_CODES
    )
    planning.formatter_class = argparse.RawDescriptionHelpFormatter
    planning.add_argument("stack", help="stack name, e.g. homelab")
    planning.add_argument("--new-stack", action="store_true", help="plan a first deployment, not a converged stack")
    planning.add_argument("--diff", metavar="REF", help="show how the desired state changed since git REF")
    planning.add_argument("--render", action="store_true", help="also show what each Helm chart renders (needs helm)")
    planning.add_argument("--charts", type=Path, metavar="DIR", help="chart packages with an index.yaml, for --render")
    planning.add_argument("--output", type=Path, metavar="FILE", help="write the plan to FILE instead of stdout")
    planning.add_argument("--program-dir", type=Path, default=PROJECT_DIR, help=argparse.SUPPRESS)
    comparing = commands.add_parser("diff", help="compare two plan files", epilog=EXIT_CODES)
    comparing.formatter_class = argparse.RawDescriptionHelpFormatter
    comparing.add_argument("base", type=Path, help="the older plan (plan --output)")
    comparing.add_argument("head", type=Path, help="the newer plan")
    return parser.parse_args(argv)


def complain(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def say(line: str) -> None:
    print(line, flush=True)


def plan_command(args: argparse.Namespace) -> int:
    if args.charts and not args.render:
        raise UsageError("--charts DIR is for --render")
    if args.charts and not (args.charts / "index.yaml").exists():
        raise UsageError(f"--charts {args.charts}: no index.yaml there (expected a folder of chart packages)")
    stack = desired.of_stack(args.program_dir, args.stack, args.new_stack)
    warnings = list(stack.warnings)
    if args.render:
        # A pinned version the repository lacks, or a values key its chart lacks (charts.py).
        releases = [r["inputs"] for r in stack.state["resources"] if r["type"] == render.HELM_RELEASE]
        errors, chart_warnings = charts.check(releases, stack.config, charts.Repositories(local=args.charts))
        if errors:
            raise UsageError("\n".join(errors))
        warnings += chart_warnings
    state = render.with_manifests(stack.state, args.charts) if args.render else stack.state
    for warning in warnings:
        complain(f"warning: {warning}")
    if stack.stand_ins:
        complain(f"plan: placeholders stand in for the 1Password reads of {', '.join(stack.stand_ins)}")
    text = plan.format_plan(state)
    if args.diff:
        options = [
            option for flag, option in (("new_stack", "--new-stack"), ("render", "--render")) if getattr(args, flag)
        ]
        if args.charts:
            options += ["--charts", str(args.charts.resolve())]
        text = review.diff_against(
            args.program_dir, args.diff, args.stack, text, options, lambda warning: complain(f"warning: {warning}")
        )
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return converge.EXIT_OK


def diff_command(args: argparse.Namespace) -> int:
    texts = []
    for path in (args.base, args.head):
        try:
            texts.append(path.read_text())
        except OSError as error:
            raise UsageError(f"{path}: cannot be read ({error.strerror})") from None
    changes = plan.diff(texts[0], texts[1], str(args.base), str(args.head))
    sys.stdout.write(changes or "No change to the desired state.\n")
    return converge.EXIT_OK


def confirmed(command: str, stack: str, question: str) -> bool:
    """Ask for the stack name before `destroy` or `adopt` (unless --yes)."""
    if not sys.stdin.isatty():
        raise UsageError(f"{command} {stack}: nothing to ask on (no terminal); add --yes to {command} without asking")
    return input(f"{question} Type the stack name to confirm: ").strip() == stack


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        if args.command == "plan":
            return plan_command(args)
        if args.command == "diff":
            return diff_command(args)
        if args.command == "status":
            return status.run(PROJECT_DIR, args.stack, os.environ, say=say, complain=complain)
        if args.command == "init":
            options = init.options_from(args)
            return deploy.guarded(
                "init",
                lambda: init.run(PROJECT_DIR, args.stack, options, say, init.terminal_ask(), os.environ),
                complain,
            )
        if args.command == "adopt":
            question = f"Take this over into stack {args.stack} and converge it?"
            return deploy.guarded(
                "adopt",
                lambda: adopt.run(
                    PROJECT_DIR,
                    args.stack,
                    os.environ,
                    say,
                    lambda _: args.yes or confirmed("adopt", args.stack, question),
                    deploy.Checks(),
                ),
                complain,
            )
        question = f"Destroy everything stack {args.stack} made in its cluster?"
        if args.command == "destroy" and not args.yes and not confirmed("destroy", args.stack, question):
            complain("Not destroyed.")
            return converge.EXIT_USAGE
        previewing = None
        if args.command == "preview":
            previewing = {"refresh": args.refresh, "expect_no_changes": args.expect_no_changes}
        return deploy.run(args.command, PROJECT_DIR, args.stack, say=say, complain=complain, preview_options=previewing)
    except (UsageError, ConfigError) as error:
        complain(f"error: {error}")
        return converge.EXIT_USAGE
    except (KeyboardInterrupt, recovery.Cancelled):  # plan, diff and status only read: nothing to report
        complain("Interrupted.")
        return converge.EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
