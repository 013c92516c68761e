"""The ``ntkeq`` command line: run a study, report it, compute a kernel.

Subcommands
-----------
``ntkeq run``
    Run (or resume) a study; the flags come from :mod:`ntkeq.study.cli_run`.
``ntkeq sweep --widths LIST``
    Run the study's networks at several widths (:mod:`ntkeq.study.sweep`).
``ntkeq report DIR``
    Rebuild the report of a results folder from its store alone.
``ntkeq kernel NAME X1 [X2] -o OUT``
    Gram matrix of a closed-form kernel on inputs saved as ``.npy`` or
    ``.csv``.
``ntkeq presets``
    List the shipped study presets.

Exit status: 0 on success, 1 for an unexpected internal error, 2 for a usage
or input error (one line on stderr, nothing written), 130 when interrupted.
``ntkeq run`` may return other codes, documented with its flags.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

REPORT_FORMATS = ("markdown", "csv", "json", "latex")
KERNEL_VARIANTS = ("exact", "as-published")
MATRIX_SUFFIXES = (".npy", ".csv")

_PARAM_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INT = re.compile(r"^[+-]?\d+$")


class CLIError(Exception):
    """A usage or input error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line and do not exit."""

    def error(self, message: str) -> NoReturn:
        if "COMMAND" in message:
            message += " (one of run, sweep, report, kernel, presets; see ntkeq --help)"
        raise CLIError(message)


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def _one_line(text: object) -> str:
    """Collapse a message to one line."""
    return " ".join(str(text).split())


def _error_line(message: object, stream: TextIO | None = None) -> None:
    print(f"ntkeq: error: {_one_line(message)}", file=stream or sys.stderr)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Print a warning as one line on stderr."""
    print(
        f"ntkeq: warning: {_one_line(message)} ({category.__name__})",
        file=file or sys.stderr,
    )


def _version() -> str:
    from ntkeq import __version__

    return __version__


def parse_param(text: str) -> tuple[str, int | float | list[float]]:
    """Parse one ``--param key=value`` argument.

    The value is an int (``3``), a float (``1.5``, ``1e-3``) or a comma list
    of floats (``1,1.5``).

    Parameters
    ----------
    text : str
        The argument, ``key=value``.

    Returns
    -------
    tuple
        ``(key, value)``.

    Raises
    ------
    CLIError
        If the argument is not ``key=value`` with a number or number list.

    Examples
    --------
    >>> parse_param("depth=2"), parse_param("sigma_w=1,1.5")
    (('depth', 2), ('sigma_w', [1.0, 1.5]))
    >>> parse_param("ridge=1e-3")
    ('ridge', 0.001)
    """
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not _PARAM_KEY.match(key) or not raw:
        raise CLIError(
            f"--param {text!r} is not key=value; use e.g. --param depth=2 or "
            "--param sigma_w=1,1.5"
        )
    try:
        if "," in raw:
            return key, [float(part) for part in raw.split(",")]
        if _INT.match(raw):
            return key, int(raw)
        return key, float(raw)
    except ValueError:
        raise CLIError(
            f"--param {key}={raw!r}: the value must be an int, a float or a "
            "comma list of floats (e.g. 1,1.5)"
        ) from None


# ---------------------------------------------------------------------------
# ntkeq kernel
# ---------------------------------------------------------------------------


def _load_matrix(path_text: str, role: str) -> Any:
    """Read an (n, d) float64 array from ``.npy`` or ``.csv``."""
    import numpy as np

    path = Path(path_text)
    suffix = path.suffix.lower()
    if suffix not in MATRIX_SUFFIXES:
        raise CLIError(
            f"{role} file {path_text!r} has suffix {path.suffix!r}; use .npy or .csv"
        )
    if not path.is_file():
        raise CLIError(f"{role} file {path_text!r} does not exist")
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        else:
            array = np.loadtxt(path, delimiter=",", ndmin=2, comments="#")
        array = np.asarray(array, dtype=np.float64)
    except (ValueError, OSError, TypeError) as exc:
        raise CLIError(
            f"could not read {role} file {path_text!r} as a numeric array "
            f"({_one_line(exc)}); save an (n, d) float array with numpy.save or "
            "as comma-separated numbers"
        ) from None
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise CLIError(
            f"{role} in {path_text!r} has shape {array.shape}; "
            "a non-empty 2-D array (n, d) is required"
        )
    if not np.all(np.isfinite(array)):
        raise CLIError(f"{role} in {path_text!r} has NaN or infinite entries")
    return array


def _check_output(path_text: str) -> Path:
    """Refuse an output path that cannot be written, before any work."""
    path = Path(path_text)
    if path.suffix.lower() not in MATRIX_SUFFIXES:
        raise CLIError(
            f"output {path_text!r} has suffix {path.suffix!r}; use .npy or .csv"
        )
    if path.is_dir():
        raise CLIError(f"output {path_text!r} is a folder; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise CLIError(f"output folder {str(parent)!r} does not exist")
    from ntkeq.study.store import can_write

    if not can_write(parent) or (path.exists() and not os.access(path, os.W_OK)):
        raise CLIError(f"output {path_text!r} is not writable")
    return path


def _save_matrix(matrix: Any, path: Path) -> None:
    """Write a matrix atomically as .npy or .csv (17 significant digits)."""
    import numpy as np

    fd, tmp_text = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    tmp = Path(tmp_text)
    try:
        with os.fdopen(fd, "wb") as handle:
            if path.suffix.lower() == ".npy":
                np.save(handle, matrix, allow_pickle=False)
            else:
                np.savetxt(handle, matrix, delimiter=",", fmt="%.17g")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _cmd_kernel(args: argparse.Namespace) -> int:
    import numpy as np

    # Validate everything before computing or writing.
    params: dict[str, Any] = {}
    for text in args.param or []:
        key, value = parse_param(text)
        if key in params:
            raise CLIError(f"--param {key} is given twice; give each key once")
        params[key] = value
    out = _check_output(args.output)

    from ntkeq.kernels import kernel

    try:
        k = kernel(args.name, variant=args.variant, **params)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    except TypeError as exc:
        raise CLIError(f"kernel {args.name!r}: {exc}") from None

    x1 = _load_matrix(args.x1, "X1")
    x2 = _load_matrix(args.x2, "X2") if args.x2 is not None else None
    if x2 is not None and x2.shape[1] != x1.shape[1]:
        raise CLIError(
            f"X1 has {x1.shape[1]} columns but X2 has {x2.shape[1]}; "
            "both need the same input dimension d"
        )

    start = time.perf_counter()
    matrix = np.asarray(k(x1, x2), dtype=np.float64)
    elapsed = time.perf_counter() - start
    expected = (x1.shape[0], (x2 if x2 is not None else x1).shape[0])
    if matrix.shape != expected:
        raise RuntimeError(
            f"kernel {args.name!r} returned shape {matrix.shape}, expected {expected}"
        )
    if not np.all(np.isfinite(matrix)):
        warnings.warn(
            f"the {args.name} Gram matrix has non-finite entries; check the "
            "inputs' scale and the kernel parameters",
            RuntimeWarning,
            stacklevel=1,
        )

    _save_matrix(matrix, out)
    logger.info("kernel %s %s in %.3f s", args.name, matrix.shape, elapsed)
    if not args.quiet:
        print(f"wrote {out} ({matrix.shape[0]} x {matrix.shape[1]})")
    return EXIT_OK


# ---------------------------------------------------------------------------
# ntkeq report
# ---------------------------------------------------------------------------


def _cmd_report(args: argparse.Namespace) -> int:
    out_dir = Path(args.dir)
    if not out_dir.is_dir():
        raise CLIError(f"results folder {args.dir!r} does not exist")
    from ntkeq.study.store import can_write

    if not args.no_figures and not can_write(out_dir):
        raise CLIError(
            f"results folder {args.dir!r} is not writable; "
            "use --no-figures to print the report only"
        )
    try:
        from ntkeq.study.store import open_results
    except ImportError as exc:
        raise CLIError(
            f"the results store is not available in this installation ({exc})"
        ) from None

    from ntkeq.study.report import render_report, write_report

    results = open_results(out_dir)
    text = render_report(results, args.format)
    if not args.no_figures:
        for path in write_report(results, out_dir):
            logger.info("wrote %s", path)
    sys.stdout.write(text)
    sys.stdout.flush()
    return EXIT_OK


# ---------------------------------------------------------------------------
# ntkeq presets
# ---------------------------------------------------------------------------


def _cmd_presets(args: argparse.Namespace) -> int:
    try:
        from ntkeq.study.config import list_presets
    except ImportError as exc:
        raise CLIError(
            f"study presets are not available in this installation ({exc})"
        ) from None
    presets = list_presets()
    width = max((len(name) for name, _ in presets), default=0)
    for name, description in presets:
        print(f"{name:<{width}}  {_one_line(description)}".rstrip())
    return EXIT_OK


# ---------------------------------------------------------------------------
# ntkeq run
# ---------------------------------------------------------------------------


def _add_run(subparsers: Any) -> None:
    """Attach ``ntkeq run``; without the study runner, a clear error."""
    help_text = "run or resume a study (the paper's table and boxplot)"
    try:
        from ntkeq.study.cli_run import add_run_arguments, run_command
    except Exception as exc:  # the runner is optional; other commands still work
        reason = _one_line(exc)
        run = subparsers.add_parser("run", help=help_text, add_help=False)

        def unavailable(args: argparse.Namespace) -> int:
            raise CLIError(
                f"'ntkeq run' is not available in this installation ({reason}); "
                "'ntkeq report', 'ntkeq kernel' and 'ntkeq presets' still work"
            )

        run.set_defaults(func=unavailable, accepts_extra=True)
        return

    run = subparsers.add_parser("run", help=help_text, description=help_text)
    add_run_arguments(run)
    run.set_defaults(func=run_command)


def _add_sweep(subparsers: Any) -> None:
    """Attach ``ntkeq sweep``; without the study runner, a clear error."""
    help_text = "run the study's networks at several widths and fit the trend"
    try:
        from ntkeq.study.sweep import add_sweep_arguments, sweep_command
    except Exception as exc:  # the runner is optional; other commands still work
        reason = _one_line(exc)
        sweep = subparsers.add_parser("sweep", help=help_text, add_help=False)

        def unavailable(args: argparse.Namespace) -> int:
            raise CLIError(
                f"'ntkeq sweep' is not available in this installation ({reason})"
            )

        sweep.set_defaults(func=unavailable, accepts_extra=True)
        return

    sweep = subparsers.add_parser("sweep", help=help_text, description=help_text)
    add_sweep_arguments(sweep)
    sweep.set_defaults(func=sweep_command)


# ---------------------------------------------------------------------------
# Parser and entry point
# ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``ntkeq`` argument parser with all subcommands."""
    parser = _Parser(
        prog="ntkeq",
        description=(
            "Does a wide ReLU network behave like kernel regression with its "
            "neural tangent kernel? Run the study, report it, compute kernels."
        ),
        epilog="Exit status: 0 ok, 1 internal error, 2 usage or input error, "
        "130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"ntkeq {_version()}")
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument(
        "-v",
        "--verbose",
        dest="global_verbose",
        action="count",
        default=0,
        help="log progress to stderr (-vv for debug detail and tracebacks)",
    )
    loud.add_argument(
        "-q",
        "--quiet",
        dest="global_quiet",
        action="store_true",
        help="only errors on stderr",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True

    _add_run(subparsers)
    _add_sweep(subparsers)

    report = subparsers.add_parser(
        "report",
        help="rebuild the report of a results folder",
        description="Rebuild the table, layer-change analysis and boxplot of a "
        "results folder from its results.sqlite alone, print the report, and "
        "rewrite report.md, report.json, boxplot.png and boxplot.svg there.",
    )
    report.add_argument("dir", metavar="DIR", help="results folder of 'ntkeq run'")
    report.add_argument(
        "--format",
        choices=REPORT_FORMATS,
        default="markdown",
        help="format printed to stdout (default: markdown)",
    )
    report.add_argument(
        "--no-figures",
        action="store_true",
        help="print only; do not (re)write report files and figures in DIR",
    )
    report.set_defaults(func=_cmd_report)

    kern = subparsers.add_parser(
        "kernel",
        help="Gram matrix of a kernel on saved inputs",
        description="Compute the Gram matrix K(X1, X2) (or K(X1, X1)) of a "
        "closed-form kernel and save it as .npy or .csv.",
    )
    kern.add_argument("name", metavar="NAME", help="kernel name, e.g. NTKB1, GP2, K1")
    kern.add_argument("x1", metavar="X1", help="inputs (n1, d) as .npy or .csv")
    kern.add_argument(
        "x2", metavar="X2", nargs="?", help="second inputs (n2, d); default X1"
    )
    kern.add_argument("-o", "--output", required=True, help="output file, .npy or .csv")
    kern.add_argument(
        "--variant",
        choices=KERNEL_VARIANTS,
        default="exact",
        help="the paper's equations (exact) or the published script's formulas",
    )
    kern.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="kernel parameter: int, float or comma list of floats "
        "(repeatable), e.g. --param sigma_w=1,1.5 --param depth=2",
    )
    kern.set_defaults(func=_cmd_kernel)

    presets = subparsers.add_parser(
        "presets",
        help="list the shipped study presets",
        description="One line per preset: its name and what it runs.",
    )
    presets.set_defaults(func=_cmd_presets)
    return parser


def _configure_logging(verbose: int, quiet: bool) -> logging.Handler:
    """Send the package's log records to stderr at the requested level."""
    level = logging.WARNING
    if quiet:
        level = logging.ERROR
    elif verbose == 1:
        level = logging.INFO
    elif verbose >= 2:
        level = logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("ntkeq: %(levelname)s: %(message)s"))
    package = logging.getLogger("ntkeq")
    package.addHandler(handler)
    package.setLevel(level)
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ntkeq`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit status: 0 ok, 1 internal error, 2 usage or input error (one
        line on stderr), 130 interrupted; ``ntkeq run`` may add its own.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args, extra = build_parser().parse_known_args(argv)
        if extra and not getattr(args, "accepts_extra", False):
            raise CLIError(f"unrecognized arguments: {' '.join(extra)}")
    except CLIError as exc:
        _error_line(exc)
        return EXIT_USAGE
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except KeyboardInterrupt:
        _error_line("interrupted")
        return EXIT_INTERRUPTED

    # `ntkeq run` has its own -v/-q; either position counts.
    verbose = args.global_verbose + int(getattr(args, "verbose", 0) or 0)
    quiet = args.global_quiet or bool(getattr(args, "quiet", False))
    args.verbose, args.quiet = verbose, quiet
    handler = _configure_logging(verbose, quiet)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            if quiet:
                warnings.simplefilter("ignore")
            return int(func(args))
    except KeyboardInterrupt:
        _error_line("interrupted")
        return EXIT_INTERRUPTED
    except (CLIError, ValueError) as exc:
        if verbose >= 2:
            traceback.print_exc()
        _error_line(exc)
        return EXIT_USAGE
    except Exception as exc:
        if verbose >= 1:
            traceback.print_exc()
            _error_line(f"internal error: {type(exc).__name__}: {exc}")
        else:
            _error_line(
                f"internal error: {type(exc).__name__}: {exc} "
                "(run with -v for the traceback)"
            )
        return EXIT_INTERNAL
    finally:
        logging.getLogger("ntkeq").removeHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
