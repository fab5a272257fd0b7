"""``python -m deploy.local up|down|status``: drive the local stack before/without the CLI."""

from __future__ import annotations

import argparse
import sys
import time

from deploy.local.stack import ServiceStatus, StackError, down, status, up


def _print(statuses: list[ServiceStatus]) -> None:
    for st in statuses:
        state = "answering" if st.answering else ("running" if st.running else "stopped")
        pid = f"pid {st.pid}" if st.pid else "-"
        extra = f"  ({st.detail})" if st.detail else ""
        print(f"{st.name:<14} {st.version:<7} {st.url:<22} {state:<10} {pid:<10} "
              f"log {st.log}{extra}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--timeout", type=float, default=180, help="up: seconds to wait")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            t0 = time.monotonic()
            _print(up(args.timeout))
            print(f"stack up in {time.monotonic() - t0:.1f} s")
        elif args.command == "down":
            for line in down():
                print(line)
        else:
            statuses = status()
            _print(statuses)
            return 0 if all(s.running and s.answering for s in statuses) else 3
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
