"""Command line: ``python -m course_lib COMMAND ...``.

Commands: ``upscale``, ``evaluate``, ``train``, ``compare``, ``list-pretrained``, ``data``. Each lives in the module
that owns the idea (``models``, ``evaluate``, ``train``, ...) as a ``cli(argv) -> int`` function; this file only
dispatches, and prints a :class:`~course_lib.errors.CourseError` as one line (exit status 2).
"""

from __future__ import annotations

import importlib
import os
import sys

from .errors import CourseError

COMMANDS = {
    "upscale": ("course_lib.upscale", "upscale an image to any scale or size"),
    "evaluate": ("course_lib.evaluate", "PSNR / SSIM / LR-PSNR tables (paper or standard protocol)"),
    "train": ("course_lib.train", "train a model from a config file"),
    "compare": ("course_lib.compare", "train rows x seeds at equal budget and print the seed spread beside them"),
    "list-pretrained": ("course_lib.models", "list the checkpoints shipped with the course"),
    "data": ("course_lib.data", "list, fetch and verify the datasets (data list | fetch NAME | verify)"),
}


def usage() -> str:
    lines = ["usage: python -m course_lib COMMAND [options]   (COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name:<16} {doc}" for name, (_, doc) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    cli = getattr(module, "cli_list_pretrained" if command == "list-pretrained" else "cli")
    try:
        return int(cli(rest) or 0)
    except CourseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed early: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes stdout
        return 0


if __name__ == "__main__":
    sys.exit(main())
